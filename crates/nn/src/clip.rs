//! Gradient clipping, in place on the parameters' `.grad()`.

use crate::error::{Error, Result};
use ferrograd_tensor::Tensor;

/// Scales all gradients by `max_norm / (total_norm + 1e-6)` when the global L2 norm exceeds
/// `max_norm` (as `clip_grad_norm_`). Returns the norm before clipping; a non-finite norm is an
/// error naming it.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for p in params {
        if let Some(g) = p.grad() {
            total += g.to_vec_f64().iter().map(|v| v * v).sum::<f64>();
        }
        if let Some(s) = p.sparse_grad() {
            total += s.values.to_vec_f64().iter().map(|v| v * v).sum::<f64>();
        }
    }
    let norm = total.sqrt();
    if !norm.is_finite() {
        return Err(Error::invalid(
            "clip_grad_norm",
            format!("the total gradient norm is {norm}"),
        ));
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.mul_scalar(coef)?))?;
            }
            if let Some(s) = p.sparse_grad() {
                let v = s.values.mul_scalar(coef)?;
                p.set_sparse_grad(Some(s.with_values(v)?))?;
            }
        }
    }
    Ok(norm)
}

/// Clamps every gradient element to `[-clip, clip]` (as `clip_grad_value_`).
pub fn clip_grad_value(params: &[Tensor], clip: f64) -> Result<()> {
    if clip.is_nan() || clip < 0.0 {
        return Err(Error::invalid(
            "clip_grad_value",
            format!("clip value must be >= 0, got {clip}"),
        ));
    }
    for p in params {
        if let Some(g) = p.grad() {
            p.set_grad(Some(g.clamp(Some(-clip), Some(clip))?))?;
        }
        if let Some(s) = p.sparse_grad() {
            let v = s.values.clamp(Some(-clip), Some(clip))?;
            p.set_sparse_grad(Some(s.with_values(v)?))?;
        }
    }
    Ok(())
}
