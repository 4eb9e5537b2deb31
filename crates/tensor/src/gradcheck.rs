//! Checking backward against central finite differences in f64.
//!
//! For a function `f` of tensors, we reduce its output to a scalar `L = sum(f(x) * v)` with a fixed
//! random `v` (so every output element matters), compute `dL/dx` by backward, and compare each
//! component with `(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)`.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Tolerances and step of a gradient check.
#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-7,
            rtol: 1e-5,
        }
    }
}

/// The worst disagreement found by a gradient check.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    /// Largest `|analytic - numeric|` over all inputs and components.
    pub max_abs_err: f64,
    /// Number of components compared.
    pub checked: usize,
}

/// Compares the backward of `f` at `inputs` (f64 leaves) with central differences. Errors with
/// the input, element index and both values at the first component outside `atol + rtol *
/// |numeric|`.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    opt: GradcheckOptions,
) -> Result<GradcheckReport> {
    for (i, x) in inputs.iter().enumerate() {
        if x.dtype() != DType::F64 {
            return Err(Error::DType {
                op: "gradcheck",
                msg: format!("input {i} has dtype {}; gradcheck needs f64", x.dtype()),
            });
        }
    }
    let base: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_vec_f64()).collect();
    let leaves = |vals: &[Vec<f64>], grad: bool| -> Result<Vec<Tensor>> {
        vals.iter()
            .zip(inputs)
            .map(|(v, t)| Tensor::from_vec(v.clone(), t.shape())?.requires_grad_(grad))
            .collect()
    };
    let xs = leaves(&base, true)?;
    let y = f(&xs)?;
    let mut rng = Rng::new(0x6772_6164);
    let v = Tensor::uniform(y.shape(), 0.5, 1.5, DType::F64, &mut rng)?;
    let loss = y.mul(&v)?.sum_all()?;
    loss.backward()?;
    let scalar = |vals: &[Vec<f64>]| -> Result<f64> {
        let xs = leaves(vals, false)?;
        crate::autograd::no_grad(|| f(&xs)?.mul(&v)?.sum_all()?.item())
    };
    let mut report = GradcheckReport {
        max_abs_err: 0.0,
        checked: 0,
    };
    for (i, x) in xs.iter().enumerate() {
        let analytic = match x.grad() {
            Some(g) => g.to_vec_f64(),
            None => vec![0.0; x.numel()],
        };
        for j in 0..x.numel() {
            let mut vals = base.clone();
            vals[i][j] = base[i][j] + opt.eps;
            let lp = scalar(&vals)?;
            vals[i][j] = base[i][j] - opt.eps;
            let lm = scalar(&vals)?;
            let numeric = (lp - lm) / (2.0 * opt.eps);
            let err = (analytic[j] - numeric).abs();
            report.max_abs_err = report.max_abs_err.max(err);
            report.checked += 1;
            if err.is_nan() || err > opt.atol + opt.rtol * numeric.abs() {
                return Err(Error::Autograd {
                    op: "gradcheck",
                    msg: format!(
                        "input {i} element {j}: backward gives {} but finite differences give {numeric} (|diff| {err:e})",
                        analytic[j]
                    ),
                });
            }
        }
    }
    Ok(report)
}
