//! Optimizers on row-sparse gradients against PyTorch: two tables looked up with
//! `Embedding::with_sparse(true)` train a small matrix factorisation for 12 steps under
//! SparseAdam, Adagrad and SGD, and both tables match PyTorch's after every step (1e-10
//! relative in f64, 1e-5 in f32). The fixture tests/fixtures/torch_sparse.json comes from
//! tests/fixtures/gen_torch_sparse.py. Also: for SGD and Adagrad the lazy sparse update is the
//! dense update bit for bit, and the rows a batch did not touch keep their SparseAdam moments.

use ferrograd_nn::optim::{Adagrad, Optimizer, Sgd, SparseAdam};
use ferrograd_nn::{Embedding, Forward, ParamGroup};
use ferrograd_tensor::{DType, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/torch_sparse.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn table(v: &[f64], rows: usize, dtype: DType, sparse: bool) -> Embedding {
    let w = Tensor::from_vec(v.to_vec(), [rows, 4])
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    Embedding::from_weight(w).unwrap().with_sparse(sparse)
}

fn make(name: &str, kw: &Value, params: Vec<Tensor>) -> Box<dyn Optimizer> {
    let lr = kw["lr"].as_f64().unwrap();
    match name {
        "sparse_adam" => {
            let betas = kw.get("betas").map_or((0.9, 0.999), |b| {
                (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())
            });
            let eps = kw.get("eps").map_or(1e-8, |e| e.as_f64().unwrap());
            Box::new(
                SparseAdam::with_groups(vec![ParamGroup::new(params, lr, 0.0)], betas, eps)
                    .unwrap(),
            )
        }
        "adagrad" => Box::new(
            Adagrad::with_groups(
                vec![ParamGroup::new(params, lr, 0.0)],
                kw["lr_decay"].as_f64().unwrap(),
                kw["initial_accumulator_value"].as_f64().unwrap(),
                1e-10,
            )
            .unwrap(),
        ),
        "sgd" => Box::new(Sgd::new(params, lr, 0.0, 0.0).unwrap()),
        _ => unreachable!(),
    }
}

/// One step's loss: the mean squared error of the dot products of the looked-up rows.
fn loss(eu: &Embedding, ei: &Embedding, batch: &Value, dtype: DType) -> Tensor {
    let ids = |v: &Value| {
        let v: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        let n = v.len();
        Tensor::from_vec(v, [n]).unwrap()
    };
    let (u, i) = (ids(&batch[0]), ids(&batch[1]));
    let t = floats(&batch[2]);
    let n = t.len();
    let target = Tensor::from_vec(t, [n]).unwrap().to_dtype(dtype).unwrap();
    let pred = eu
        .forward(&u)
        .unwrap()
        .mul(&ei.forward(&i).unwrap())
        .unwrap()
        .sum(&[-1], false)
        .unwrap();
    let d = pred.sub(&target).unwrap();
    d.mul(&d).unwrap().mean_all().unwrap()
}

fn train(fx: &Value, case: &Value, sparse: bool) -> Vec<[Vec<f64>; 2]> {
    let dtype = if case["dtype"] == "f64" {
        DType::F64
    } else {
        DType::F32
    };
    let eu = table(&floats(&fx["users0"]), 12, dtype, sparse);
    let ei = table(&floats(&fx["items0"]), 9, dtype, sparse);
    let name = case["optimizer"].as_str().unwrap();
    let mut opt = make(
        name,
        &case["kwargs"],
        vec![eu.weight.clone(), ei.weight.clone()],
    );
    let mut out = Vec::new();
    for b in fx["batches"].as_array().unwrap() {
        opt.zero_grad();
        loss(&eu, &ei, b, dtype).backward().unwrap();
        if sparse {
            assert!(eu.weight.grad().is_none() && eu.weight.sparse_grad().is_some());
        }
        opt.step().unwrap();
        out.push([eu.weight.to_vec_f64(), ei.weight.to_vec_f64()]);
    }
    out
}

#[test]
fn sparse_trajectories_match_pytorch() {
    let fx = fixture();
    for case in fx["cases"].as_array().unwrap() {
        let what = format!("{} {} {}", case["optimizer"], case["kwargs"], case["dtype"]);
        let tol = if case["dtype"] == "f64" { 1e-10 } else { 1e-5 };
        let ours = train(&fx, case, true);
        for (step, (got, want)) in ours
            .iter()
            .zip(case["trajectory"].as_array().unwrap())
            .enumerate()
        {
            for (k, name) in ["users", "items"].iter().enumerate() {
                for (j, (a, b)) in got[k].iter().zip(floats(&want[k])).enumerate() {
                    assert!(
                        (a - b).abs() <= tol * b.abs().max(1e-2),
                        "{what}: step {}: {name}[{j}]: ours {a} vs PyTorch {b}",
                        step + 1
                    );
                }
            }
        }
    }
}

#[test]
fn lazy_sgd_and_adagrad_are_the_dense_update_bit_for_bit() {
    let fx = fixture();
    for case in fx["cases"].as_array().unwrap() {
        if case["optimizer"] == "sparse_adam" {
            continue;
        }
        let (s, d) = (train(&fx, case, true), train(&fx, case, false));
        assert_eq!(s.len(), d.len());
        for (a, b) in s.iter().zip(&d) {
            for k in 0..2 {
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&a[k]),
                    bits(&b[k]),
                    "{} {}",
                    case["optimizer"],
                    case["dtype"]
                );
            }
        }
    }
}

#[test]
fn rows_a_batch_did_not_touch_keep_their_values_and_moments() {
    let w = Tensor::from_vec((0..20).map(|v| v as f32 * 0.1).collect::<Vec<_>>(), [5, 4]).unwrap();
    let e = Embedding::from_weight(w).unwrap().with_sparse(true);
    let mut opt = SparseAdam::new(vec![e.weight.clone()], 0.1, 0.0).unwrap();
    let before = e.weight.to_vec::<f32>().unwrap();
    let ids = Tensor::from_vec(vec![1i64, 3, 1], [3]).unwrap();
    e.forward(&ids)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    opt.step().unwrap();
    let after = e.weight.to_vec::<f32>().unwrap();
    for r in 0..5 {
        let same = before[r * 4..(r + 1) * 4] == after[r * 4..(r + 1) * 4];
        assert_eq!(same, r != 1 && r != 3, "row {r}");
    }
    let sd = opt.state_dict().unwrap();
    let m = sd
        .iter()
        .find(|(k, _)| k.contains("exp_avg") && !k.contains("sq"))
        .unwrap()
        .1;
    let m = m.to_vec::<f32>().unwrap();
    assert!(m[..4].iter().all(|&v| v == 0.0) && m[4..8].iter().all(|&v| v != 0.0));
}

#[test]
fn a_dense_gradient_under_sparse_adam_gets_adams_update_bit_for_bit() {
    use ferrograd_nn::optim::Adam;
    // PyTorch's SparseAdam refuses dense gradients: a layer beside the embeddings goes to an
    // Adam of the same settings, so that is the rule a dense gradient gets here
    let start: Vec<f32> = (0..12).map(|v| (v as f32 * 0.37).sin()).collect();
    let run = |sparse_adam: bool| {
        let p = Tensor::from_vec(start.clone(), [3, 4])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let mut opt: Box<dyn Optimizer> = if sparse_adam {
            Box::new(SparseAdam::new(vec![p.clone()], 0.05, 0.0).unwrap())
        } else {
            Box::new(Adam::new(vec![p.clone()], 0.05, 0.0).unwrap())
        };
        for _ in 0..5 {
            opt.zero_grad();
            p.mul(&p).unwrap().sum_all().unwrap().backward().unwrap();
            opt.step().unwrap();
        }
        p.to_vec::<f32>().unwrap()
    };
    let (s, a) = (run(true), run(false));
    assert_ne!(s, start);
    assert_eq!(
        s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
