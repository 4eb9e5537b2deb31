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
use crate::tensor::{DenseSlice, Tensor};

/// Maximum and sum over a row in 8 interleaved lanes, combined at the end: the sequential
/// versions wait on each add's latency and do not vectorise. Fixed order, so deterministic.
#[inline(always)]
fn lanes_max<T: Float>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            // NaN never wins (as `max`): a NaN row still comes out NaN through the exps
            *a = if v > *a { v } else { *a };
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
    acc.iter().fold(m, |m, &v| if v > m { v } else { m })
}

#[inline(always)]
fn lanes_sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &v| s + v);
    crate::cpu::fold_lanes(acc) + tail
}

#[inline(always)]
pub(crate) fn lanes_dot<T: Float>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (mut cx, mut cy) = (x.chunks_exact(8), y.chunks_exact(8));
    for (a8, b8) in (&mut cx).zip(&mut cy) {
        for ((a, &u), &v) in acc.iter_mut().zip(a8).zip(b8) {
            *a += u * v;
        }
    }
    let tail = cx
        .remainder()
        .iter()
        .zip(cy.remainder())
        .fold(T::zero(), |s, (&u, &v)| s + u * v);
    crate::cpu::fold_lanes(acc) + tail
}

fn softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = lanes_max(x);
    let m = if m.is_finite() { m } else { T::zero() };
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m).exp_fn();
    }
    let inv = T::one() / lanes_sum(y);
    y.iter_mut().for_each(|o| *o *= inv);
}

fn log_softmax_row<T: Float>(x: &[T], y: &mut [T]) {
    let m = lanes_max(x);
    let m = if m.is_finite() { m } else { T::zero() };
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m).exp_fn();
    }
    // (x - m) - log s, not x - (m + log s): the latter rounds m + log s at the scale of m
    let ls = lanes_sum(y).ln();
    for (o, &v) in y.iter_mut().zip(x) {
        *o = (v - m) - ls;
    }
}

fn row_kernel<T: Float>(kind: RowKernel) -> fn(&[T], &mut [T]) {
    match kind {
        RowKernel::Softmax => softmax_row::<T>,
        RowKernel::LogSoftmax => log_softmax_row::<T>,
    }
}

/// Attention's softmax of one row: `y_j = softmax(scale * x)_j` over the first `valid` entries
/// (the causal mask's visible keys), 0 beyond.
#[inline(always)]
fn scaled_prefix_softmax_row<T: Float>(x: &[T], y: &mut [T], scale: T, valid: usize) {
    for (o, &v) in y[..valid].iter_mut().zip(x) {
        *o = v;
    }
    scaled_prefix_softmax_in_place(y, scale, valid);
}

/// [`scaled_prefix_softmax_row`] on a row holding the scores, overwritten by the probabilities
/// (the same arithmetic, so the same bits).
#[inline(always)]
pub(crate) fn scaled_prefix_softmax_in_place<T: Float>(y: &mut [T], scale: T, valid: usize) {
    let (yv, masked) = y.split_at_mut(valid);
    masked.iter_mut().for_each(|o| *o = T::zero());
    if valid == 0 {
        return;
    }
    for o in yv.iter_mut() {
        *o *= scale;
    }
    let m = lanes_max(yv);
    let m = if m.is_finite() { m } else { T::zero() };
    yv.iter_mut().for_each(|o| *o = (*o - m).exp_fn());
    let inv = T::one() / lanes_sum(yv);
    yv.iter_mut().for_each(|o| *o *= inv);
}

/// `dx = y * (g - sum(g * y))` row by row along the last dim, in one pass per row (the generic
/// composition makes four passes and four buffers; attention's softmax is large).
fn softmax_backward_rows(y: &Tensor, g: &Tensor, scale: f64) -> Result<Tensor> {
    fn rows<T: Float + crate::Element>(y: &Tensor, g: &Tensor, scale: f64) -> Result<Storage> {
        let scale = T::cast(scale);
        let n = y.dims()[y.rank() - 1].max(1);
        let g = g.contiguous()?;
        let dx = g.with_data::<T, _>(|gv| {
            y.with_data::<T, _>(|yv| {
                let mut dx = vec![T::zero(); yv.len()];
                let row = |((o, yr), gr): ((&mut [T], &[T]), &[T])| {
                    cpu::simd::with_avx2(
                        #[inline(always)]
                        || {
                            let s = lanes_dot(yr, gr);
                            for ((oi, &yi), &gi) in o.iter_mut().zip(yr).zip(gr) {
                                *oi = yi * (gi - s) * scale;
                            }
                        },
                    )
                };
                if yv.len() >= 1 << 15 {
                    use rayon::prelude::*;
                    dx.par_chunks_mut(n)
                        .zip(yv.par_chunks(n))
                        .zip(gv.par_chunks(n))
                        .for_each(row);
                } else {
                    dx.chunks_mut(n)
                        .zip(yv.chunks(n))
                        .zip(gv.chunks(n))
                        .for_each(row);
                }
                dx
            })
        })??;
        Ok(T::into_storage(dx))
    }
    let st = match y.dtype() {
        crate::DType::F32 => rows::<f32>(y, g, scale)?,
        _ => rows::<f64>(y, g, scale)?,
    };
    Ok(Tensor::from_storage(st, y.shape()))
}

impl Tensor {
    /// Applies a row kernel along `dim` (moved last and made dense), returning the result in the
    /// original dim order as a fresh dense tensor's storage.
    fn along_dim(&self, op: &'static str, dim: usize, kind: RowKernel) -> Result<Storage> {
        let last = self.rank() - 1;
        if dim == last && self.is_contiguous() {
            // rows in place: no copy of the input (attention's scores are the largest tensors
            // of a Transformer step)
            let len = self.dims()[last];
            return match self.dense().get() {
                DenseSlice::F32(v) => {
                    Ok(cpu::map_rows(v, len, row_kernel::<f32>(kind)).into_storage())
                }
                DenseSlice::F64(v) => {
                    Ok(cpu::map_rows(v, len, row_kernel::<f64>(kind)).into_storage())
                }
                DenseSlice::I64(_) => Err(crate::error::Error::dtype_unsupported(op, self.dtype())),
            };
        }
        let moved = if dim == last {
            self.detach()
        } else {
            self.detach().transpose(dim as isize, -1)?
        };
        let len = moved.dims()[last];
        let dense = moved.contiguous_storage().into_storage();
        let st = dispatch_float!(&dense, op, v => {
            cpu::map_rows(v, len, row_kernel::<T>(kind)).into_storage()
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
                    if d + 1 == y.rank() && y.is_contiguous() {
                        return Ok(vec![Some(softmax_backward_rows(y, g, 1.0)?)]);
                    }
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

    /// Attention's softmax in one pass: `softmax(scale * x + mask)` along the last dim of
    /// `[..., Tq, Tk]` scores, the mask being causal (query i of the last Tq positions sees keys
    /// `0 ..= i + Tk - Tq`, as if -inf were added above that diagonal) or absent. Equal to the
    /// composition `mul_scalar`, `add(mask)`, `softmax`, which makes three passes over the
    /// largest tensor of a Transformer step and builds the mask each time.
    ///
    /// Backward: with `y` the output, `dx = scale * y * (g - sum(g * y))` (masked entries have
    /// `y = 0`, so they get no gradient).
    pub fn attention_softmax(&self, scale: f64, causal: bool) -> Result<Tensor> {
        let op = "attention_softmax";
        if self.rank() < 2 {
            return Err(crate::error::Error::shape(
                op,
                format!("expects [..., Tq, Tk] scores, got {:?}", self.dims()),
            ));
        }
        let (tq, tk) = (self.dims()[self.rank() - 2], self.dims()[self.rank() - 1]);
        if causal && tq > tk {
            return Err(crate::error::Error::shape(
                op,
                format!("a causal mask needs at least as many keys as queries, got {tq} queries and {tk} keys"),
            ));
        }
        if !scale.is_finite() {
            return Err(crate::error::Error::value(
                op,
                format!("scale must be finite, got {scale}"),
            ));
        }
        fn rows<T: Float>(x: &[T], tq: usize, tk: usize, scale: f64, causal: bool) -> Vec<T> {
            let mut y = vec![T::zero(); x.len()];
            if tk == 0 {
                return y;
            }
            let scale = T::cast(scale);
            let row = |(r, (o, xr)): (usize, (&mut [T], &[T]))| {
                let valid = if causal {
                    r % tq.max(1) + (tk - tq) + 1
                } else {
                    tk
                };
                cpu::simd::with_avx2(
                    #[inline(always)]
                    || scaled_prefix_softmax_row(xr, o, scale, valid.min(tk)),
                );
            };
            if x.len() >= cpu::PAR_THRESHOLD {
                use rayon::prelude::*;
                y.par_chunks_mut(tk)
                    .zip(x.par_chunks(tk))
                    .enumerate()
                    .for_each(row);
            } else {
                y.chunks_mut(tk).zip(x.chunks(tk)).enumerate().for_each(row);
            }
            y
        }
        let st = match self.dense().get() {
            DenseSlice::F32(x) => rows(x, tq, tk, scale, causal).into_storage(),
            DenseSlice::F64(x) => rows(x, tq, tk, scale, causal).into_storage(),
            DenseSlice::I64(_) => {
                return Err(crate::error::Error::dtype_unsupported(op, self.dtype()))
            }
        };
        Ok(Tensor::op_result(
            st,
            self.shape(),
            op,
            &[self],
            move || Box::new(move |y, g| Ok(vec![Some(softmax_backward_rows(y, g, scale)?)])),
        ))
    }
}
