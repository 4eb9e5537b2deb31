//! Creation, views without copies, reading back, printing, and determinism across thread counts.

use ferrograd_tensor::{DType, Rng, Tensor};

#[test]
fn views_share_storage_and_contiguous_copies_only_when_needed() {
    let x = Tensor::arange(0.0, 24.0, 1.0, DType::F32)
        .unwrap()
        .reshape([2, 3, 4])
        .unwrap();
    let views = [
        x.reshape([6, 4]).unwrap(),
        x.transpose(0, 2).unwrap(),
        x.permute(&[1, 2, 0]).unwrap(),
        x.narrow(1, 1, 2).unwrap(),
        x.unsqueeze(0).unwrap(),
        x.narrow(0, 0, 1).unwrap().squeeze(0).unwrap(),
        x.narrow(1, 0, 1).unwrap().broadcast_to([2, 5, 4]).unwrap(),
        x.split(2, 2).unwrap()[1].clone(),
    ];
    for v in &views {
        assert!(v.shares_storage(&x), "{:?} copied", v.dims());
    }
    assert!(x.contiguous().unwrap().shares_storage(&x));
    let t = x.transpose(0, 2).unwrap();
    assert!(!t.is_contiguous());
    let c = t.contiguous().unwrap();
    assert!(c.is_contiguous() && !c.shares_storage(&x));
    assert_eq!(t.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
    // transpose(0, 2) of arange: element [k, j, i] = i*12 + j*4 + k
    assert_eq!(&c.to_vec::<f32>().unwrap()[..4], &[0.0, 12.0, 4.0, 16.0]);
    assert_eq!(
        x.narrow(2, 1, 2).unwrap().to_vec::<f32>().unwrap()[..4],
        [1.0, 2.0, 5.0, 6.0]
    );
    // reshape of a non-dense view copies
    assert!(!t.reshape([24]).unwrap().shares_storage(&x));
    assert_eq!(x.reshape_infer(&[-1, 6]).unwrap().dims(), &[4, 6]);
}

#[test]
fn creation_functions() {
    assert_eq!(
        Tensor::zeros([2, 2], DType::F64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![0.0; 4]
    );
    assert_eq!(
        Tensor::ones([3], DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![1.0; 3]
    );
    assert_eq!(
        Tensor::full([2], 7.5, DType::F64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![7.5, 7.5]
    );
    assert_eq!(
        Tensor::arange(1.0, 2.0, 0.25, DType::F64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![1.0, 1.25, 1.5, 1.75]
    );
    assert_eq!(
        Tensor::linspace(0.0, 1.0, 5, DType::F64)
            .unwrap()
            .to_vec::<f64>()
            .unwrap(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(
        Tensor::eye(3, DType::F32).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    );
    let x = Tensor::from_slice(&[1i64, 2, 3], [3]).unwrap();
    assert_eq!(x.dtype(), DType::I64);
    assert_eq!(Tensor::scalar(2.5f64).item().unwrap(), 2.5);
    assert_eq!(Tensor::zeros_like(&x).to_vec::<i64>().unwrap(), vec![0; 3]);
    assert!(x.to_vec::<f32>().is_err());
    assert!(Tensor::from_vec(vec![1.0f32; 5], [2, 3]).is_err());
    assert!(Tensor::arange(0.0, 1.0, 0.0, DType::F32).is_err());
    assert!(Tensor::ones([2], DType::F32).unwrap().item().is_err());
}

#[test]
fn seeded_random_tensors_are_reproducible_and_distributed() {
    let a = Tensor::randn([1000], DType::F64, &mut Rng::new(3))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let b = Tensor::randn([1000], DType::F64, &mut Rng::new(3))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(a, b);
    let c = Tensor::randn([1000], DType::F64, &mut Rng::new(4))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_ne!(a, c);
    let u = Tensor::uniform([10_000], -2.0, 3.0, DType::F32, &mut Rng::new(5)).unwrap();
    let v = u.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|&x| (-2.0..3.0).contains(&x)));
    assert!((u.mean_all().unwrap().item().unwrap() - 0.5).abs() < 0.05);
    let r = Tensor::rand_like(&u, &mut Rng::new(6)).unwrap();
    assert_eq!((r.dims(), r.dtype()), (u.dims(), DType::F32));
    // the stream is fixed: these exact values are what every machine produces for seed 0
    let fixed = Tensor::rand([3], DType::F64, &mut Rng::new(0))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    let again = Tensor::rand([3], DType::F64, &mut Rng::new(0))
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(fixed, again);
}

#[test]
fn display_matches_pytorch_style() {
    let x = Tensor::from_vec(vec![1.0f32, 2.5, -3.0, 4.0], [2, 2]).unwrap();
    assert_eq!(
        x.to_string(),
        "tensor([[ 1.0000,  2.5000],\n        [-3.0000,  4.0000]], shape=[2, 2], dtype=f32)"
    );
    let i = Tensor::from_vec(vec![1i64, 20, 3], [3]).unwrap();
    assert_eq!(i.to_string(), "tensor([ 1, 20,  3], shape=[3], dtype=i64)");
    let big = Tensor::arange(0.0, 2000.0, 1.0, DType::F32)
        .unwrap()
        .reshape([40, 50])
        .unwrap();
    let s = big.to_string();
    assert!(s.contains("...") && s.lines().count() < 12, "{s}");
    assert!(
        s.starts_with("tensor([[   0.,    1.,    2.,  ...,   47.,   48.,   49.],"),
        "{s}"
    );
    let w = Tensor::ones([2], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    assert!(w.to_string().ends_with("requires_grad=true)"));
    assert!(w
        .mul_scalar(2.0)
        .unwrap()
        .to_string()
        .contains("grad_fn=mul_scalar"));
    assert_eq!(
        format!("{:?}", Tensor::scalar(0.5f64)),
        "tensor(0.5000, shape=[], dtype=f64)"
    );
}

/// Runs `f` on a rayon pool of `n` threads.
fn on_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    let work = || {
        let mut rng = Rng::new(11);
        let a = Tensor::randn([300, 257], DType::F32, &mut rng)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let b = Tensor::randn([257, 190], DType::F32, &mut rng).unwrap();
        let x = Tensor::randn([8, 3, 20, 20], DType::F32, &mut rng).unwrap();
        let w = Tensor::randn([6, 3, 5, 5], DType::F32, &mut rng)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        // a batch of three: one task, so the products themselves may use the threads
        let x1 = Tensor::randn([3, 1, 28, 28], DType::F32, &mut rng).unwrap();
        let w1 = Tensor::randn([6, 1, 5, 5], DType::F32, &mut rng)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let pad2 = ferrograd_tensor::Conv2dOptions {
            padding: (2, 2),
            ..Default::default()
        };
        let m = a.matmul(&b).unwrap();
        let s = m.softmax(1).unwrap().sum(&[0], false).unwrap();
        let c = x.conv2d(&w, None, Default::default()).unwrap();
        let c1 = x1.conv2d(&w1, None, pad2).unwrap();
        let big = Tensor::randn([1 << 20], DType::F32, &mut rng).unwrap();
        let e = big.exp().unwrap().sum_all().unwrap();
        // inference layers: weights packed once (a wide one and a thin output layer)
        let xi = Tensor::randn([260, 300], DType::F32, &mut rng).unwrap();
        let wi = Tensor::randn([70, 300], DType::F32, &mut rng).unwrap();
        let wo = Tensor::randn([10, 70], DType::F32, &mut rng).unwrap();
        let inf = ferrograd_tensor::no_grad(|| {
            let h = xi.linear_relu(&wi, None)?;
            h.linear(&wo, None)?.add(&h.linear(&wo, None)?)
        })
        .unwrap();
        let loss = m
            .tanh()
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&c.square().unwrap().mean_all().unwrap())
            .unwrap()
            .add(&c1.square().unwrap().mean_all().unwrap())
            .unwrap();
        loss.backward().unwrap();
        [
            m.to_vec::<f32>().unwrap(),
            s.to_vec::<f32>().unwrap(),
            c.to_vec::<f32>().unwrap(),
            e.to_vec::<f32>().unwrap(),
            a.grad().unwrap().to_vec::<f32>().unwrap(),
            w.grad().unwrap().to_vec::<f32>().unwrap(),
            c1.to_vec::<f32>().unwrap(),
            w1.grad().unwrap().to_vec::<f32>().unwrap(),
            inf.to_vec::<f32>().unwrap(),
        ]
    };
    let one = on_threads(1, work);
    let two = on_threads(2, work);
    let four = on_threads(4, work);
    for (k, ((x, y), z)) in one.iter().zip(&two).zip(&four).enumerate() {
        assert!(x == y && y == z, "result {k} differs between thread counts");
    }
}

/// Elementwise ops on strided views (permuted, broadcast along any dim, narrowed) give what an
/// index-by-index computation gives, below and above the parallel threshold.
#[test]
fn elementwise_ops_on_strided_views_match_index_arithmetic() -> ferrograd_tensor::Result<()> {
    let mut rng = Rng::new(7);
    for &(d0, d1, d2) in &[(3usize, 4usize, 5usize), (16, 64, 48)] {
        let a = Tensor::randn([d0, d1, d2], DType::F32, &mut rng)?;
        let av = a.to_vec::<f32>()?;
        let at = |i: usize, j: usize, k: usize| av[(i * d1 + j) * d2 + k];
        // permuted view [d2, d0, d1]
        let p = a.permute(&[2, 0, 1])?;
        let want: Vec<f32> = (0..d2)
            .flat_map(|k| (0..d0).flat_map(move |i| (0..d1).map(move |j| (i, j, k))))
            .map(|(i, j, k)| at(i, j, k) * 2.0)
            .collect();
        assert_eq!(
            p.mul_scalar(2.0)?.to_vec::<f32>()?,
            want,
            "unary on a permuted view"
        );
        assert_eq!(p.contiguous()?.to_vec::<f32>()?.len(), want.len());
        // broadcast operands: a row [d2], a column [d0, d1, 1], a scalar-like [1, 1, 1]
        let row = Tensor::randn([d2], DType::F32, &mut rng)?;
        let col = Tensor::randn([d0, d1, 1], DType::F32, &mut rng)?;
        let (rv, cv) = (row.to_vec::<f32>()?, col.to_vec::<f32>()?);
        let got = a.add(&row)?.to_vec::<f32>()?;
        let got2 = col.sub(&a)?.to_vec::<f32>()?;
        for i in 0..d0 {
            for j in 0..d1 {
                for (k, &r) in rv.iter().enumerate() {
                    let at_ = (i * d1 + j) * d2 + k;
                    assert_eq!(got[at_], at(i, j, k) + r);
                    assert_eq!(got2[at_], cv[i * d1 + j] - at(i, j, k));
                }
            }
        }
        // both operands strided: a permuted view plus a transposed one of the same shape
        let b = Tensor::randn([d1, d2, d0], DType::F32, &mut rng)?;
        let bv = b.to_vec::<f32>()?;
        let sum = p.add(&b.permute(&[1, 2, 0])?)?.to_vec::<f32>()?;
        let mut n = 0;
        for k in 0..d2 {
            for i in 0..d0 {
                for j in 0..d1 {
                    assert_eq!(sum[n], at(i, j, k) + bv[(j * d2 + k) * d0 + i]);
                    n += 1;
                }
            }
        }
    }
    Ok(())
}

/// `linear_relu` gives exactly `linear` then `relu`: fused (no graph) through our kernel (one and
/// several blocks of the inner dimension, edge tiles), through the generic path (thin shapes,
/// f64), with and without bias; and with a graph, the same gradients.
#[test]
fn fused_linear_relu_matches_linear_then_relu() {
    let mut rng = Rng::new(21);
    for dtype in [DType::F32, DType::F64] {
        for (n, k, o) in [(64, 800, 500), (30, 300, 50), (7, 20, 10), (100, 500, 10)] {
            let x = Tensor::randn([n, k], dtype, &mut rng).unwrap();
            let w = Tensor::randn([o, k], dtype, &mut rng).unwrap();
            let b = Tensor::randn([o], dtype, &mut rng).unwrap();
            for bias in [Some(&b), None] {
                let want = x.linear(&w, bias).unwrap().relu().unwrap();
                let got = ferrograd_tensor::no_grad(|| x.linear_relu(&w, bias)).unwrap();
                let (want, got) = (
                    want.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap(),
                    got.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap(),
                );
                assert!(want.contains(&0.0) && want.iter().any(|&v| v > 0.0));
                assert_eq!(want, got, "{dtype:?} {n}x{k}x{o} bias {}", bias.is_some());
            }
        }
    }
    let grads = |fused: bool| {
        let mut rng = Rng::new(5);
        let x = Tensor::randn([40, 64], DType::F32, &mut rng).unwrap();
        let w = Tensor::randn([56, 64], DType::F32, &mut rng)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let y = if fused {
            x.linear_relu(&w, None).unwrap()
        } else {
            x.linear(&w, None).unwrap().relu().unwrap()
        };
        y.sum_all().unwrap().backward().unwrap();
        w.grad().unwrap().to_vec::<f32>().unwrap()
    };
    assert_eq!(grads(true), grads(false));
}

/// A forward and backward pass through a product large enough to be split across threads:
/// the result, the gradient of the left operand.
fn product_and_gradient() -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(3);
    let a = Tensor::randn([300, 200], DType::F32, &mut rng)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let b = Tensor::randn([200, 260], DType::F32, &mut rng).unwrap();
    let y = a.matmul(&b).unwrap().relu().unwrap();
    y.sum_all().unwrap().backward().unwrap();
    (
        y.to_vec::<f32>().unwrap(),
        a.grad().unwrap().to_vec::<f32>().unwrap(),
    )
}

#[test]
fn run_on_pool_runs_on_a_kernel_thread_with_the_same_results() {
    assert_eq!(rayon::current_thread_index(), None);
    let (inside, index) =
        ferrograd_tensor::run_on_pool(|| (product_and_gradient(), rayon::current_thread_index()));
    // (with the `openblas` feature it runs on the calling thread, by design)
    assert_eq!(
        index.is_some(),
        !cfg!(feature = "openblas"),
        "run_on_pool ran on the wrong thread"
    );
    let outside = product_and_gradient();
    // bit for bit: the kernels split their work alike from any thread
    assert_eq!(inside.0, outside.0);
    assert_eq!(inside.1, outside.1);
    // a panic inside resumes in the caller
    let caught = std::panic::catch_unwind(|| ferrograd_tensor::run_on_pool(|| panic!("inside")));
    assert!(caught.is_err());
}
