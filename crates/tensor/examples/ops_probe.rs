//! Op-by-op timing of a GPT training step's ops at its shapes (4096 rows of 128), forward and
//! backward, median and minimum of 40 runs: `cargo run --release -p ferrograd-tensor --example
//! ops_probe`; with the argument `lenet`, LeNet-5's convolutions and poolings at batch 64; with
//! `mlp`, the MNIST MLP's two layers at inference, batch 1000 (weights packed once and kept, then
//! with that cache off).
//! `bench/ops_probe.py` (same argument) times the same ops in PyTorch (2 threads). A probe for finding
//! what to optimise, not a benchmark: the backward times include the `mul` and `sum_all` that make
//! a scalar loss.
use ferrograd_tensor::{Conv2dOptions, DType, Pool2dOptions, Rng, Tensor};
use std::time::Instant;
fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
fn time(name: &str, f: &mut dyn FnMut() -> (f64, f64)) {
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..40 {
        let (x, y) = f();
        a.push(x);
        b.push(y);
    }
    let mn = |v: &Vec<f64>| v.iter().cloned().fold(1e9, f64::min) * 1e3;
    print!("min {:7.3} {:7.3} | ", mn(&a), mn(&b));
    println!(
        "{name:28} fwd {:7.3} ms  bwd {:7.3} ms",
        med(a) * 1e3,
        med(b) * 1e3
    );
}
/// Forward and backward (through `mul` by a fixed gradient and `sum_all`) of `f`, whose
/// leaves `leaves` have their gradients cleared after each run.
fn fwd_bwd(name: &str, leaves: &[&Tensor], g: &Tensor, f: &dyn Fn() -> Tensor) {
    time(name, &mut || {
        let t = Instant::now();
        let y = f();
        let ft = t.elapsed().as_secs_f64();
        let l = y.mul(g).unwrap().sum_all().unwrap();
        let t = Instant::now();
        l.backward().unwrap();
        let bt = t.elapsed().as_secs_f64();
        leaves.iter().for_each(|t| t.zero_grad());
        (ft, bt)
    });
}

/// LeNet-5's convolutions, poolings and ReLUs at batch 64 (the image input needs no gradient).
fn lenet(rng: &mut Rng) {
    let r = |s: &[usize], rng: &mut Rng| Tensor::randn(s, DType::F32, rng).unwrap();
    let x = r(&[64, 1, 28, 28], rng);
    let w = r(&[6, 1, 5, 5], rng).requires_grad_(true).unwrap();
    let b = r(&[6], rng).requires_grad_(true).unwrap();
    let pad2 = Conv2dOptions {
        padding: (2, 2),
        ..Default::default()
    };
    let g = r(&[64, 6, 28, 28], rng);
    fwd_bwd("conv1 1->6 28x28 pad2", &[&w, &b], &g, &|| {
        x.conv2d(&w, Some(&b), pad2).unwrap()
    });
    let x2 = r(&[64, 6, 14, 14], rng).requires_grad_(true).unwrap();
    let w2 = r(&[16, 6, 5, 5], rng).requires_grad_(true).unwrap();
    let b2 = r(&[16], rng).requires_grad_(true).unwrap();
    let g2 = r(&[64, 16, 10, 10], rng);
    fwd_bwd("conv2 6->16 14x14", &[&x2, &w2, &b2], &g2, &|| {
        x2.conv2d(&w2, Some(&b2), Conv2dOptions::default()).unwrap()
    });
    for (shape, name) in [
        ([64, 6, 28, 28], "max_pool2d 64x6x28x28"),
        ([64, 16, 10, 10], "max_pool2d 64x16x10x10"),
    ] {
        let x = r(&shape, rng).requires_grad_(true).unwrap();
        let g = r(&[shape[0], shape[1], shape[2] / 2, shape[3] / 2], rng);
        fwd_bwd(name, &[&x], &g, &|| {
            x.max_pool2d(Pool2dOptions::new(2)).unwrap()
        });
    }
    let x = r(&[64, 6, 14, 14], rng).requires_grad_(true).unwrap();
    let g = r(&[64, 6, 14, 14], rng);
    fwd_bwd("relu 64x6x14x14", &[&x], &g, &|| x.relu().unwrap());
}

/// The MNIST MLP's layers at inference, batch 1000 (forward only; the second column is 0).
fn mlp(rng: &mut Rng) {
    use ferrograd_tensor::ops::packed_weights;
    let r = |s: &[usize], rng: &mut Rng| Tensor::randn(s, DType::F32, rng).unwrap();
    let (x, w1, b1) = (r(&[1000, 784], rng), r(&[500, 784], rng), r(&[500], rng));
    let (w2, b2) = (r(&[10, 500], rng), r(&[10], rng));
    let h = x.linear_relu(&w1, Some(&b1)).unwrap();
    let budget = packed_weights::budget();
    for (cache, on) in [("packed once", budget), ("packed per call", 0)] {
        packed_weights::set_budget(on);
        let fwd = |name: &str, f: &dyn Fn() -> Tensor| {
            time(&format!("{name}, {cache}"), &mut || {
                let t = Instant::now();
                ferrograd_tensor::no_grad(f);
                (t.elapsed().as_secs_f64(), 0.0)
            })
        };
        fwd("fc1+relu 784->500", &|| {
            x.linear_relu(&w1, Some(&b1)).unwrap()
        });
        fwd("fc2 500->10", &|| h.linear(&w2, Some(&b2)).unwrap());
    }
}

fn main() {
    ferrograd_tensor::cpu::allocator::keep_freed_memory();
    let mut rng = Rng::new(0);
    match std::env::args().nth(1).as_deref() {
        Some("lenet") => return lenet(&mut rng),
        Some("mlp") => return mlp(&mut rng),
        _ => {}
    }
    let r = |s: &[usize], rng: &mut Rng| Tensor::randn(s, DType::F32, rng).unwrap();
    for (i, o) in [
        (128usize, 384usize),
        (128, 128),
        (128, 512),
        (512, 128),
        (128, 65),
    ] {
        let x = r(&[4096, i], &mut rng).requires_grad_(true).unwrap();
        let w = r(&[o, i], &mut rng).requires_grad_(true).unwrap();
        let b = r(&[o], &mut rng).requires_grad_(true).unwrap();
        let g = r(&[4096, o], &mut rng);
        fwd_bwd(&format!("linear {i}->{o}"), &[&x, &w, &b], &g, &|| {
            x.linear(&w, Some(&b)).unwrap()
        });
    }
    let x = r(&[4096, 128], &mut rng).requires_grad_(true).unwrap();
    let w = r(&[128], &mut rng).requires_grad_(true).unwrap();
    let bb = r(&[128], &mut rng).requires_grad_(true).unwrap();
    let g = r(&[4096, 128], &mut rng);
    fwd_bwd("layer_norm 4096x128", &[&x, &w, &bb], &g, &|| {
        x.layer_norm(128, Some(&w), Some(&bb), 1e-5).unwrap()
    });
    let g2 = r(&[4096, 128], &mut rng);
    time("mul+sum 4096x128", &mut || {
        let t = Instant::now();
        let l = x.mul(&g2).unwrap().sum_all().unwrap();
        let f = t.elapsed().as_secs_f64();
        let t = Instant::now();
        l.backward().unwrap();
        let b2 = t.elapsed().as_secs_f64();
        x.zero_grad();
        (f, b2)
    });
    let x = r(&[4096, 512], &mut rng).requires_grad_(true).unwrap();
    let g = r(&[4096, 512], &mut rng);
    fwd_bwd("gelu 4096x512", &[&x], &g, &|| x.gelu().unwrap());
    let x = r(&[4096, 128], &mut rng).requires_grad_(true).unwrap();
    let y2 = r(&[4096, 128], &mut rng).requires_grad_(true).unwrap();
    time("add 4096x128", &mut || {
        let t = Instant::now();
        let y = x.add(&y2).unwrap();
        let f = t.elapsed().as_secs_f64();
        let l = y.sum_all().unwrap();
        let t = Instant::now();
        l.backward().unwrap();
        let b2 = t.elapsed().as_secs_f64();
        x.zero_grad();
        y2.zero_grad();
        (f, b2)
    });
    let qkv = r(&[32, 128, 384], &mut rng).requires_grad_(true).unwrap();
    let g = r(&[32, 128, 128], &mut rng);
    fwd_bwd("attention 32x128x384 h4", &[&qkv], &g, &|| {
        qkv.causal_self_attention(4).unwrap()
    });
}
