//! Op-by-op timing of a GPT training step's ops at its shapes (4096 rows of 128), forward and
//! backward, median and minimum of 40 runs: `cargo run --release -p ferrograd-tensor --example
//! ops_probe`. `bench/ops_probe.py` times the same ops in PyTorch (2 threads). A probe for finding
//! what to optimise, not a benchmark: the backward times include the `mul` and `sum_all` that make
//! a scalar loss.
use ferrograd_tensor::{DType, Rng, Tensor};
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
fn main() {
    ferrograd_tensor::cpu::allocator::keep_freed_memory();
    let mut rng = Rng::new(0);
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
        time(&format!("linear {i}->{o}"), &mut || {
            let t = Instant::now();
            let y = x.linear(&w, Some(&b)).unwrap();
            let f = t.elapsed().as_secs_f64();
            let l = y.mul(&g).unwrap().sum_all().unwrap();
            let t = Instant::now();
            l.backward().unwrap();
            let bb = t.elapsed().as_secs_f64();
            x.zero_grad();
            w.zero_grad();
            b.zero_grad();
            (f, bb)
        });
    }
    let x = r(&[4096, 128], &mut rng).requires_grad_(true).unwrap();
    let w = r(&[128], &mut rng).requires_grad_(true).unwrap();
    let bb = r(&[128], &mut rng).requires_grad_(true).unwrap();
    let g = r(&[4096, 128], &mut rng);
    time("layer_norm 4096x128", &mut || {
        let t = Instant::now();
        let y = x.layer_norm(128, Some(&w), Some(&bb), 1e-5).unwrap();
        let f = t.elapsed().as_secs_f64();
        let l = y.mul(&g).unwrap().sum_all().unwrap();
        let t = Instant::now();
        l.backward().unwrap();
        let b2 = t.elapsed().as_secs_f64();
        x.zero_grad();
        w.zero_grad();
        bb.zero_grad();
        (f, b2)
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
    time("gelu 4096x512", &mut || {
        let t = Instant::now();
        let y = x.gelu().unwrap();
        let f = t.elapsed().as_secs_f64();
        let l = y.mul(&g).unwrap().sum_all().unwrap();
        let t = Instant::now();
        l.backward().unwrap();
        let b2 = t.elapsed().as_secs_f64();
        x.zero_grad();
        (f, b2)
    });
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
    time("attention 32x128x384 h4", &mut || {
        let t = Instant::now();
        let y = qkv.causal_self_attention(4).unwrap();
        let f = t.elapsed().as_secs_f64();
        let l = y.mul(&g).unwrap().sum_all().unwrap();
        let t = Instant::now();
        l.backward().unwrap();
        let b2 = t.elapsed().as_secs_f64();
        qkv.zero_grad();
        (f, b2)
    });
}
