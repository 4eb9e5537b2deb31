//! Embedding lookups and bags: the backward against central differences in f64 (the dense
//! path), the row-sparse gradient against the dense one bit for bit, the bag's forward against
//! the same sums written with lookups, and the errors.

mod common;
use common::{assert_close, leaf};
use ferrograd_tensor::{gradcheck, BagMode, DType, GradcheckOptions, Rng, Tensor};

fn ids(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

#[test]
fn bags_pass_gradcheck_for_the_table_and_the_per_sample_weights() {
    let idx = ids(&[3, 0, 3, 1, 4, 4, 2]);
    let off = ids(&[0, 2, 2, 5]); // bag 1 is empty
    let x = vec![leaf(&[5, 3], -1.0, 1.0, 1), leaf(&[7], 0.2, 1.5, 2)];
    let f =
        |x: &[Tensor]| Tensor::embedding_bag(&x[0], &idx, &off, Some(&x[1]), BagMode::Sum, false);
    gradcheck(f, &x, GradcheckOptions::default()).unwrap();
    let f = |x: &[Tensor]| Tensor::embedding_bag(&x[0], &idx, &off, None, BagMode::Mean, false);
    gradcheck(f, &x[..1], GradcheckOptions::default()).unwrap();
    let f = |x: &[Tensor]| Tensor::embedding_sparse(&x[0], &idx, false);
    gradcheck(f, &x[..1], GradcheckOptions::default()).unwrap();
}

#[test]
fn a_bag_is_the_weighted_sum_of_its_lookups() {
    let w = leaf(&[6, 4], -1.0, 1.0, 3);
    let idx = ids(&[5, 1, 1, 0, 2]);
    let psw = leaf(&[5], 0.0, 2.0, 4);
    let off = ids(&[0, 3, 3]);
    let y = Tensor::embedding_bag(&w, &idx, &off, Some(&psw), BagMode::Sum, false).unwrap();
    assert_eq!(y.dims(), &[3, 4]);
    let rows = Tensor::embedding(&w, &idx)
        .unwrap()
        .mul(&psw.reshape([5, 1]).unwrap())
        .unwrap();
    let first = rows.narrow(0, 0, 3).unwrap().sum(&[0], false).unwrap();
    let last = rows.narrow(0, 3, 2).unwrap().sum(&[0], false).unwrap();
    let got = y.to_vec_f64();
    assert_close(&got[..4], &first.to_vec_f64(), 1e-15, 0.0, "bag 0");
    assert_eq!(&got[4..8], &[0.0; 4], "an empty bag is zeros");
    assert_close(&got[8..], &last.to_vec_f64(), 1e-15, 0.0, "bag 2");
    let m = Tensor::embedding_bag(&w, &idx, &off, None, BagMode::Mean, false).unwrap();
    let mean0 = Tensor::embedding(&w, &ids(&[5, 1, 1]))
        .unwrap()
        .mean(&[0], false)
        .unwrap();
    assert_close(
        &m.to_vec_f64()[..4],
        &mean0.to_vec_f64(),
        1e-15,
        0.0,
        "mean bag",
    );
}

/// The same loss through a sparse and a dense lookup of the same f32 table: the sparse gradient
/// holds the distinct rows, ascending, each bitwise the dense gradient's row; a second use of
/// the table in the same graph adds to it.
#[test]
fn the_row_sparse_gradient_is_the_dense_one_bit_for_bit() {
    let mut rng = Rng::new(9);
    let table = Tensor::randn([50, 8], DType::F32, &mut rng).unwrap();
    let lookups = ids(&[7, 3, 7, 49, 0, 3, 7, 12]);
    let scale = Tensor::randn([8, 8], DType::F32, &mut rng).unwrap();
    let loss = |w: &Tensor, sparse: bool| {
        let a = Tensor::embedding_sparse(w, &lookups, sparse).unwrap();
        let b = Tensor::embedding_bag(w, &lookups, &ids(&[0, 3, 5]), None, BagMode::Mean, sparse)
            .unwrap();
        let s = a.mul(&scale).unwrap().sum_all().unwrap();
        s.add(&b.tanh().unwrap().sum_all().unwrap()).unwrap()
    };
    let dense = table.detach().requires_grad_(true).unwrap();
    loss(&dense, false).backward().unwrap();
    let sparse = table.detach().requires_grad_(true).unwrap();
    loss(&sparse, true).backward().unwrap();
    assert!(
        sparse.grad().is_none(),
        "sparse lookups leave the dense gradient empty"
    );
    let g = sparse.sparse_grad().expect("a row-sparse gradient");
    assert_eq!(g.rows, vec![0, 3, 7, 12, 49]);
    let want = dense.grad().unwrap().to_vec::<f32>().unwrap();
    let got = g.to_dense().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    sparse.zero_grad();
    assert!(sparse.sparse_grad().is_none());
}

#[test]
fn bad_lookups_are_errors_naming_the_values() {
    let w = leaf(&[4, 2], -1.0, 1.0, 5);
    let e = Tensor::embedding_sparse(&w, &ids(&[1, 4]), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 4") && e.contains("size 4"), "{e}");
    let e = Tensor::embedding_bag(&w, &ids(&[1, 2]), &ids(&[1]), None, BagMode::Sum, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("start at 0"), "{e}");
    let e = Tensor::embedding_bag(
        &w,
        &ids(&[1, 2]),
        &ids(&[0, 2, 1]),
        None,
        BagMode::Sum,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not decrease"), "{e}");
    let e = Tensor::embedding_bag(
        &w,
        &ids(&[1]),
        &ids(&[0]),
        Some(&leaf(&[2], 0.0, 1.0, 1)),
        BagMode::Sum,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("per_sample_weights must be [1]"), "{e}");
    let e = Tensor::embedding_bag(
        &w,
        &ids(&[1]),
        &ids(&[0]),
        Some(&leaf(&[1], 0.0, 1.0, 1)),
        BagMode::Mean,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mode Sum"), "{e}");
}
