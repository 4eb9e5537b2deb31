//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ferrograd_tensor::{DType, Rng, Tensor};

/// An f64 leaf of `shape` with values uniform in [lo, hi) from `seed`.
pub fn leaf(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::uniform(shape, lo, hi, DType::F64, &mut rng).unwrap()
}

/// An f64 leaf of `shape` with standard normal values from `seed`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::randn(shape, DType::F64, &mut rng).unwrap()
}

pub fn assert_close(a: &[f64], b: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = atol + rtol * y.abs();
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{what}: element {i}: {x} vs {y} (|diff| {} > {tol})",
            (x - y).abs()
        );
    }
}
