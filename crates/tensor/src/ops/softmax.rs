//! Softmax and log-softmax along a dim, numerically stable (the row maximum is subtracted
//! before exponentiating, which leaves the result unchanged).
//!
//! With `y = softmax(x)`: `dx = y * (g - sum(g * y))`.
//! With `y = log_softmax(x)`: `dx = g - softmax(x) * sum(g)`.
//! Followed by the negative log-likelihood of class `c` averaged over N rows, the gradient of the
//! logits is therefore `(softmax(x) - onehot(c)) / N`.

use crate::cpu;
use crate::dtype::Float;
use crate::error::Result;
use crate::ops::dispatch_float;
use crate::shape::resolve_dim;
use crate::storage::{IntoStorage, Storage};

#[derive(Clone, Copy)]
enum RowKernel {
    Softmax,
    LogSoftmax,
}
use crate::tensor::Tensor;

fn softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = x.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let m = if m.is_finite() { m } else { T::zero() };
    let mut s = T::zero();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m).exp();
        s += *o;
    }
    let inv = T::one() / s;
    y.iter_mut().for_each(|o| *o *= inv);
}

fn log_softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = x.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let m = if m.is_finite() { m } else { T::zero() };
    let s: T = x.iter().map(|&v| (v - m).exp()).sum();
    // (x - m) - log s, not x - (m + log s): the latter rounds m + log s at the scale of m
    let ls = s.ln();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m) - ls;
    }
}

impl Tensor {
    /// Applies a row kernel along `dim` (moved last and made dense), returning the result in the
    /// original dim order as a fresh dense tensor's storage.
    fn along_dim(&self, op: &'static str, dim: usize, kind: RowKernel) -> Result<Storage> {
        let last = self.rank() - 1;
        let moved = if dim == last {
            self.detach()
        } else {
            self.detach().transpose(dim as isize, -1)?
        };
        let len = moved.dims()[last];
        let dense = moved.contiguous_storage().into_storage();
        let st = dispatch_float!(&dense, op, v => {
            let k = match kind {
                RowKernel::Softmax => softmax_row::<T>,
                RowKernel::LogSoftmax => log_softmax_row::<T>,
            };
            cpu::map_rows(v, len, k).into_storage()
        });
        if dim == last {
            return Ok(st);
        }
        let t = Tensor::from_storage(st, moved.shape()).transpose(dim as isize, -1)?;
        Ok(t.contiguous_storage().into_storage())
    }

    /// `softmax(x)_i = e^(x_i - m) / sum_j e^(x_j - m)` along `dim`, `m` the max;
    /// `dx = y * (g - sum(g * y))`.
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("softmax", dim, self.dims())?;
        let st = self.along_dim("softmax", d, RowKernel::Softmax)?;
        Ok(Tensor::op_result(
            st,
            self.shape(),
            "softmax",
            &[self],
            move || {
                Box::new(move |y, g| {
                    let gy = g.mul(y)?;
                    let s = gy.sum(&[d as isize], true)?;
                    Ok(vec![Some(gy.sub(&y.mul(&s)?)?)])
                })
            },
        ))
    }

    /// `log_softmax(x)_i = x_i - m - log sum_j e^(x_j - m)` along `dim`;
    /// `dx = g - e^y * sum(g)`.
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("log_softmax", dim, self.dims())?;
        let st = self.along_dim("log_softmax", d, RowKernel::LogSoftmax)?;
        Ok(Tensor::op_result(
            st,
            self.shape(),
            "log_softmax",
            &[self],
            move || {
                Box::new(move |y, g| {
                    let s = g.sum(&[d as isize], true)?;
                    Ok(vec![Some(g.sub(&y.exp()?.mul(&s)?)?)])
                })
            },
        ))
    }
}
