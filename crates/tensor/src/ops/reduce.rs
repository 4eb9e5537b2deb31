//! Reductions over any set of dims, with or without keeping them as size-1 dims.
//!
//! Gradients: for `y = sum_R x` (R the reduced dims), `dx = broadcast(g)` back over R. For the
//! mean divide by `|R|`. For max/min the gradient goes to the elements equal to the extremum,
//! split evenly among ties (as PyTorch's amax/amin).

use crate::cpu;
use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::ops::dispatch_float;
use crate::shape::{resolve_dim, resolve_dims, Shape};
use crate::storage::{IntoStorage, Storage};
use crate::tensor::Tensor;

/// What to compute over each reduced row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    Sum,
    Max,
    Min,
}

fn reduce_row<T: Float>(r: Reduction, row: &[T]) -> T {
    match r {
        Reduction::Sum => cpu::sum_slice(row),
        Reduction::Max => row.iter().fold(T::neg_infinity(), |m, &x| {
            if x.is_nan() || m.is_nan() {
                T::nan()
            } else if x > m {
                x
            } else {
                m
            }
        }),
        Reduction::Min => row.iter().fold(T::infinity(), |m, &x| {
            if x.is_nan() || m.is_nan() {
                T::nan()
            } else if x < m {
                x
            } else {
                m
            }
        }),
    }
}

/// Output shape of reducing `dims` of `shape`.
fn reduced_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if dims.contains(&i) {
            if keepdim {
                out.push(1);
            }
        } else {
            out.push(d);
        }
    }
    out
}

impl Tensor {
    /// Moves `dims` to the end and returns a dense copy whose rows are the reduced elements:
    /// `(data, row length)`.
    fn rows_over(&self, dims: &[usize]) -> Result<(Tensor, usize)> {
        let kept: Vec<usize> = (0..self.rank()).filter(|d| !dims.contains(d)).collect();
        let perm: Vec<usize> = kept.iter().chain(dims.iter()).copied().collect();
        let len: usize = dims.iter().map(|&d| self.dims()[d]).product();
        let is_identity = perm.iter().enumerate().all(|(i, &p)| i == p);
        let moved = if is_identity {
            self.detach()
        } else {
            Tensor::from_parts(self.0.storage.clone(), self.layout().permute(&perm))
        };
        Ok((moved, len))
    }

    fn reduce_raw(&self, op: &'static str, r: Reduction, dims: &[usize]) -> Result<Storage> {
        // Reducing the leading dims of a dense tensor (a bias gradient, a batch mean): combine whole
        // rows elementwise instead of permuting the reduced dims to the end and copying.
        let k = dims.len();
        if k > 0
            && k < self.rank()
            && dims.iter().enumerate().all(|(i, &d)| i == d)
            && self.is_contiguous()
        {
            let rows: usize = self.dims()[..k].iter().product();
            let cols: usize = self.dims()[k..].iter().product();
            if rows > 0 {
                let st = self.storage();
                let o = self.layout().offset();
                return Ok(dispatch_float!(&*st, op, v => {
                    let v = &v[o..o + rows * cols];
                    // rows in fixed chunks of about CHUNK elements, each combined in order,
                    // then the chunks' results in order: the same operations whichever thread
                    // runs a chunk. (Column blocks over all rows, tried first, walked the
                    // matrix with a stride of a whole row: 5 GB/s.)
                    const CHUNK: usize = 1 << 15;
                    let per = (CHUNK / cols).max(1);
                    let combine = |acc: &mut [T], row: &[T]| {
                        cpu::simd::with_avx2(
                            #[inline(always)]
                            || match r {
                                Reduction::Sum => {
                                    acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x)
                                }
                                Reduction::Max => acc.iter_mut().zip(row).for_each(|(a, &x)| {
                                    if x > *a || x.is_nan() {
                                        *a = x
                                    }
                                }),
                                Reduction::Min => acc.iter_mut().zip(row).for_each(|(a, &x)| {
                                    if x < *a || x.is_nan() {
                                        *a = x
                                    }
                                }),
                            },
                        )
                    };
                    let chunk = |rows: &[T]| {
                        let mut acc = rows[..cols].to_vec();
                        for row in rows[cols..].chunks_exact(cols) {
                            combine(&mut acc, row);
                        }
                        acc
                    };
                    let parts: Vec<Vec<T>> = if rows > per && rows * cols >= cpu::PAR_THRESHOLD {
                        use rayon::prelude::*;
                        v.par_chunks(per * cols).map(chunk).collect()
                    } else {
                        v.chunks(per * cols).map(chunk).collect()
                    };
                    let mut parts = parts.into_iter();
                    let mut acc = parts.next().unwrap_or_default();
                    for p in parts {
                        combine(&mut acc, &p);
                    }
                    acc.into_storage()
                }));
            }
        }
        let (moved, len) = self.rows_over(dims)?;
        let rows: usize = (0..self.rank())
            .filter(|d| !dims.contains(d))
            .map(|d| self.dims()[d])
            .product();
        let st = moved.storage();
        let layout = moved.layout();
        Ok(dispatch_float!(&*st, op, v => {
            let f = |row: &[T]| reduce_row(r, row);
            let out: Vec<T> = if len == 0 {
                vec![reduce_row::<T>(r, &[]); rows]
            } else if layout.is_contiguous() {
                let o = layout.offset();
                cpu::reduce_rows(&v[o..o + layout.numel()], len, f)
            } else {
                cpu::reduce_rows(&cpu::copy_strided(v, layout), len, f)
            };
            out.into_storage()
        }))
    }

    /// Sum over `dims` (empty: all dims); `dx = broadcast(g)`.
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let rd = resolve_dims("sum", dims, self.dims())?;
        let st = self.reduce_raw("sum", Reduction::Sum, &rd)?;
        let out_shape = reduced_shape(self.dims(), &rd, keepdim);
        let keep_shape = reduced_shape(self.dims(), &rd, true);
        let in_shape = self.shape().clone();
        Ok(Tensor::op_result(
            st,
            out_shape,
            "sum",
            &[self],
            move || {
                Box::new(move |_, g| {
                    Ok(vec![Some(
                        g.reshape(keep_shape.clone())?.broadcast_to(&in_shape)?,
                    )])
                })
            },
        ))
    }

    /// Sum of all elements, a 0-dim tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[], false)
    }

    /// Mean over `dims` (empty: all dims); `dx = broadcast(g) / n` with n the reduced count.
    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let rd = resolve_dims("mean", dims, self.dims())?;
        let n: usize = rd.iter().map(|&d| self.dims()[d]).product();
        self.sum(dims, keepdim)?.div_scalar(n as f64)
    }

    /// Mean of all elements.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[], false)
    }

    /// Maximum over `dims`; the gradient goes to the maximal elements (split on ties).
    pub fn max(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extreme_over("max", Reduction::Max, dims, keepdim)
    }

    /// Minimum over `dims`; the gradient goes to the minimal elements (split on ties).
    pub fn min(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.extreme_over("min", Reduction::Min, dims, keepdim)
    }

    fn extreme_over(
        &self,
        op: &'static str,
        r: Reduction,
        dims: &[isize],
        keepdim: bool,
    ) -> Result<Tensor> {
        let rd = resolve_dims(op, dims, self.dims())?;
        if rd.iter().any(|&d| self.dims()[d] == 0) {
            return Err(Error::shape(
                op,
                format!("cannot reduce over an empty dim of shape {:?}", self.dims()),
            ));
        }
        let st = self.reduce_raw(op, r, &rd)?;
        let out_shape = reduced_shape(self.dims(), &rd, keepdim);
        let keep_shape = reduced_shape(self.dims(), &rd, true);
        let x = self.clone();
        let rdi: Vec<isize> = rd.iter().map(|&d| d as isize).collect();
        Ok(Tensor::op_result(st, out_shape, op, &[self], move || {
            Box::new(move |y, g| {
                let yk = y.reshape(keep_shape.clone())?;
                let mask = x.eq(&yk)?;
                let count = mask.sum(&rdi, true)?;
                let gk = g.reshape(keep_shape.clone())?;
                Ok(vec![Some(mask.mul(&gk.div(&count)?)?)])
            })
        }))
    }

    /// Variance over `dims` with Bessel's `correction` (1 gives the unbiased estimate, as
    /// PyTorch's default): `sum (x - mean)^2 / (n - correction)`;
    /// `dx = g * 2 (x - mean) / (n - correction)` (the mean's own gradient sums to zero).
    pub fn var(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        let rd = resolve_dims("var", dims, self.dims())?;
        let n: usize = rd.iter().map(|&d| self.dims()[d]).product();
        let m = self.mean(dims, true)?;
        let d = self.sub(&m)?;
        let denom = n as f64 - correction as f64;
        d.square()?.sum(dims, keepdim)?.div_scalar(denom.max(0.0))
    }

    /// Standard deviation: `sqrt(var)`.
    pub fn std(&self, dims: &[isize], correction: usize, keepdim: bool) -> Result<Tensor> {
        self.var(dims, correction, keepdim)?.sqrt()
    }

    /// `log sum exp x` over `dims`, computed as `m + log sum exp(x - m)` with `m` the max, so large
    /// inputs do not overflow; `dx = g * softmax(x)` over the reduced dims.
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let rd = resolve_dims("logsumexp", dims, self.dims())?;
        let m = crate::autograd::no_grad(|| self.max(dims, true))?;
        // an all -inf row would give nan from (-inf) - (-inf); shift by 0 there instead
        let m = crate::autograd::no_grad(|| {
            let st = crate::ops::unary_kernel!(m, "logsumexp", |v| if v.is_finite() {
                v
            } else {
                T::zero()
            });
            Ok::<_, Error>(Tensor::from_storage(st, m.shape()))
        })?;
        let s = self.sub(&m)?.exp()?.sum(dims, true)?.log()?.add(&m)?;
        if keepdim {
            Ok(s)
        } else {
            s.reshape(reduced_shape(self.dims(), &rd, false))
        }
    }

    /// Indices (i64) of the maximum along `dim`; the first one on ties. No gradient.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extreme("argmax", dim, keepdim, true)
    }

    /// Indices (i64) of the minimum along `dim`; the first one on ties. No gradient.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        self.arg_extreme("argmin", dim, keepdim, false)
    }

    fn arg_extreme(
        &self,
        op: &'static str,
        dim: isize,
        keepdim: bool,
        take_max: bool,
    ) -> Result<Tensor> {
        let d = resolve_dim(op, dim, self.dims())?;
        if self.dims()[d] == 0 {
            return Err(Error::shape(
                op,
                format!("dim {dim} of shape {:?} is empty", self.dims()),
            ));
        }
        let (moved, len) = self.rows_over(&[d])?;
        let dense = moved.contiguous_storage().into_storage();
        let out: Vec<i64> = dispatch_float!(&dense, op, v => {
            v.chunks(len)
                .map(|row: &[T]| {
                    let mut best = 0usize;
                    for (i, &x) in row.iter().enumerate() {
                        let b = row[best];
                        if b.is_nan() {
                            break;
                        }
                        if x.is_nan() || (take_max && x > b) || (!take_max && x < b) {
                            best = i;
                        }
                    }
                    best as i64
                })
                .collect()
        });
        let shape = reduced_shape(self.dims(), &[d], keepdim);
        Tensor::from_vec(out, shape)
    }

    /// Sums a broadcast gradient back to `shape`: over leading dims that `shape` lacks and over
    /// dims where `shape` has 1.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.dims() == shape.dims() {
            return Ok(self.clone());
        }
        let lead = self.rank().checked_sub(shape.rank()).ok_or_else(|| {
            Error::shape(
                "sum_to_shape",
                format!(
                    "cannot sum {:?} to the larger rank {:?}",
                    self.dims(),
                    shape.dims()
                ),
            )
        })?;
        let mut dims: Vec<isize> = (0..lead as isize).collect();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && self.dims()[lead + i] != 1 {
                dims.push((lead + i) as isize);
            } else if d != self.dims()[lead + i] {
                return Err(Error::shape(
                    "sum_to_shape",
                    format!("cannot sum {:?} to {:?}", self.dims(), shape.dims()),
                ));
            }
        }
        if dims.is_empty() {
            return self.reshape(shape.clone());
        }
        self.sum(&dims, true)?.reshape(shape.clone())
    }
}
