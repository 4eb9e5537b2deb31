//! Weight initialisation, with PyTorch's formulas. `fan_in` of a `[out, in, k...]` weight is
//! `in * prod(k)`, `fan_out` is `out * prod(k)`.

use crate::error::{Error, Result};
use ferrograd_tensor::{DType, Rng, Tensor};

/// (fan_in, fan_out) of a weight shape.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::invalid(
            "init",
            format!("fan in/out need a weight of rank >= 2, got shape {shape:?}"),
        ));
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

/// Gain of a nonlinearity for Kaiming init: sqrt(2 / (1 + a^2)) for (leaky) ReLU with slope a.
pub fn leaky_relu_gain(a: f64) -> f64 {
    (2.0 / (1.0 + a * a)).sqrt()
}

/// Uniform in `[-bound, bound]`.
pub fn uniform(shape: &[usize], bound: f64, rng: &mut Rng) -> Result<Tensor> {
    Ok(Tensor::uniform(shape, -bound, bound, DType::F32, rng)?)
}

/// Normal with mean 0 and standard deviation `std`.
pub fn normal(shape: &[usize], std: f64, rng: &mut Rng) -> Result<Tensor> {
    Ok(Tensor::normal(shape, 0.0, std, DType::F32, rng)?)
}

pub fn zeros(shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::zeros(shape, DType::F32)?)
}

/// Kaiming (He) uniform, fan-in mode: bound = gain * sqrt(3 / fan_in), gain for slope `a`.
/// PyTorch's default for Linear and Conv weights is `a = sqrt(5)`, i.e. bound = 1/sqrt(fan_in).
pub fn kaiming_uniform(shape: &[usize], a: f64, rng: &mut Rng) -> Result<Tensor> {
    let (fan_in, _) = fans(shape)?;
    uniform(
        shape,
        leaky_relu_gain(a) * (3.0 / fan_in as f64).sqrt(),
        rng,
    )
}

/// Kaiming (He) normal, fan-in mode: std = gain / sqrt(fan_in).
pub fn kaiming_normal(shape: &[usize], a: f64, rng: &mut Rng) -> Result<Tensor> {
    let (fan_in, _) = fans(shape)?;
    normal(shape, leaky_relu_gain(a) / (fan_in as f64).sqrt(), rng)
}

/// Xavier (Glorot) uniform: bound = gain * sqrt(6 / (fan_in + fan_out)).
pub fn xavier_uniform(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    let (i, o) = fans(shape)?;
    uniform(shape, gain * (6.0 / (i + o) as f64).sqrt(), rng)
}

/// Xavier (Glorot) normal: std = gain * sqrt(2 / (fan_in + fan_out)).
pub fn xavier_normal(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    let (i, o) = fans(shape)?;
    normal(shape, gain * (2.0 / (i + o) as f64).sqrt(), rng)
}

/// PyTorch's default Linear/Conv init: weight Kaiming-uniform with a = sqrt(5), bias uniform in
/// +-1/sqrt(fan_in). Returns (weight, bias).
pub fn default_weight_and_bias(shape: &[usize], rng: &mut Rng) -> Result<(Tensor, Tensor)> {
    let (fan_in, _) = fans(shape)?;
    let w = kaiming_uniform(shape, 5f64.sqrt(), rng)?;
    let b = uniform(&[shape[0]], 1.0 / (fan_in as f64).sqrt(), rng)?;
    Ok((w, b))
}
