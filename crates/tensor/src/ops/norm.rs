//! Layer normalisation over the trailing `n` elements of each row, fused: one pass for the
//! statistics and one for the output, instead of the seven generic ops (and seven buffers) of
//! `(x - mean) * rsqrt(var + eps) * w + b`.
//!
//! Per row, `mu = mean(x)`, `s = 1 / sqrt(mean((x - mu)^2) + eps)`, `xh = (x - mu) s`,
//! `y = xh w + b`. With upstream gradient `g`:
//! - `db = sum_rows g`, `dw = sum_rows g xh`;
//! - with `d = g w`: `dx = s (d - mean(d) - xh mean(d xh))`
//!   (the mean and variance depend on every element of the row, hence the two correction terms).

use crate::dtype::{DType, Float};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::Element;
use rayon::prelude::*;

/// One row of the forward: input, output, mean and inverse deviation slots.
type FwdRow<'a, T> = (((&'a [T], &'a mut [T]), &'a mut T), &'a mut T);
/// One row of the backward: input, gradient, output, and the row's mean and inverse deviation.
type BwdRow<'a, T> = (((&'a [T], &'a [T]), &'a mut [T]), (&'a T, &'a T));

/// Rows at least this large in total go to the thread pool.
const PAR_ELEMS: usize = 1 << 15;

#[inline]
fn stats<T: Float>(row: &[T], eps: f64) -> (T, T) {
    let n = T::cast(row.len() as f64);
    let mu = crate::cpu::sum_slice(row) / n;
    let var = row
        .iter()
        .map(|&v| (v - mu) * (v - mu))
        .fold(T::zero(), |a, b| a + b)
        / n;
    (mu, T::one() / (var + T::cast(eps)).sqrt())
}

fn forward<T: Float>(
    x: &[T],
    w: Option<&[T]>,
    b: Option<&[T]>,
    n: usize,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len() / n;
    let mut y = vec![T::zero(); x.len()];
    let mut mu = vec![T::zero(); rows];
    let mut rs = vec![T::zero(); rows];
    let row = |(((xr, yr), m), r): FwdRow<'_, T>| {
        crate::cpu::simd::with_avx2(
            #[inline(always)]
            || {
                let (a, s) = stats(xr, eps);
                *m = a;
                *r = s;
                match (w, b) {
                    (Some(w), Some(b)) => {
                        for (((o, &v), &wi), &bi) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                            *o = (v - a) * s * wi + bi;
                        }
                    }
                    (Some(w), None) => {
                        for ((o, &v), &wi) in yr.iter_mut().zip(xr).zip(w) {
                            *o = (v - a) * s * wi;
                        }
                    }
                    (None, Some(b)) => {
                        for ((o, &v), &bi) in yr.iter_mut().zip(xr).zip(b) {
                            *o = (v - a) * s + bi;
                        }
                    }
                    (None, None) => {
                        for (o, &v) in yr.iter_mut().zip(xr) {
                            *o = (v - a) * s;
                        }
                    }
                }
            },
        )
    };
    if x.len() >= PAR_ELEMS {
        x.par_chunks(n)
            .zip(y.par_chunks_mut(n))
            .zip(mu.par_iter_mut())
            .zip(rs.par_iter_mut())
            .for_each(row);
    } else {
        x.chunks(n)
            .zip(y.chunks_mut(n))
            .zip(mu.iter_mut())
            .zip(rs.iter_mut())
            .for_each(row);
    }
    (y, mu, rs)
}

/// `(dx, dw, db)`; `dw`/`db` are summed over rows in a fixed order (thread-count independent).
fn backward<T: Float>(
    x: &[T],
    g: &[T],
    w: Option<&[T]>,
    mu: &[T],
    rs: &[T],
    n: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut dx = vec![T::zero(); x.len()];
    let inv_n = T::cast(1.0 / n as f64);
    let row = |(((xr, gr), dr), (&m, &s)): BwdRow<'_, T>| {
        crate::cpu::simd::with_avx2(
            #[inline(always)]
            || {
                // d = g w, then the two row means
                let (mut sd, mut sdx) = (T::zero(), T::zero());
                for (i, (&v, &gv)) in xr.iter().zip(gr).enumerate() {
                    let d = match w {
                        Some(w) => gv * w[i],
                        None => gv,
                    };
                    let xh = (v - m) * s;
                    sd += d;
                    sdx += d * xh;
                    dr[i] = d;
                }
                let (md, mdx) = (sd * inv_n, sdx * inv_n);
                for (o, &v) in dr.iter_mut().zip(xr) {
                    let xh = (v - m) * s;
                    *o = s * (*o - md - xh * mdx);
                }
            },
        )
    };
    if x.len() >= PAR_ELEMS {
        x.par_chunks(n)
            .zip(g.par_chunks(n))
            .zip(dx.par_chunks_mut(n))
            .zip(mu.par_iter().zip(rs.par_iter()))
            .for_each(row);
    } else {
        x.chunks(n)
            .zip(g.chunks(n))
            .zip(dx.chunks_mut(n))
            .zip(mu.iter().zip(rs.iter()))
            .for_each(row);
    }
    let mut dw = vec![T::zero(); n];
    let mut db = vec![T::zero(); n];
    for ((xr, gr), (&m, &s)) in x.chunks(n).zip(g.chunks(n)).zip(mu.iter().zip(rs)) {
        for i in 0..n {
            dw[i] += gr[i] * (xr[i] - m) * s;
            db[i] += gr[i];
        }
    }
    (dx, dw, db)
}

type Parts = (Storage, Storage, Storage);

fn run_forward<T: Float + Element>(
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    n: usize,
    eps: f64,
) -> Result<Parts> {
    let wv = w.map(|t| t.to_vec::<T>()).transpose()?;
    let bv = b.map(|t| t.to_vec::<T>()).transpose()?;
    let (y, mu, rs) =
        x.with_data::<T, _>(|xs| forward(xs, wv.as_deref(), bv.as_deref(), n, eps))?;
    Ok((T::into_storage(y), T::into_storage(mu), T::into_storage(rs)))
}

fn run_backward<T: Float + Element>(
    x: &Tensor,
    g: &Tensor,
    w: Option<&Tensor>,
    mu: &Tensor,
    rs: &Tensor,
    n: usize,
) -> Result<Parts> {
    let wv = w.map(|t| t.to_vec::<T>()).transpose()?;
    let (mv, rv) = (mu.to_vec::<T>()?, rs.to_vec::<T>()?);
    let g = dense(g)?;
    let (dx, dw, db) = g.with_data::<T, _>(|gv| {
        x.with_data::<T, _>(|xs| backward(xs, gv, wv.as_deref(), &mv, &rv, n))
    })??;
    Ok((
        T::into_storage(dx),
        T::into_storage(dw),
        T::into_storage(db),
    ))
}

/// The elements of a dense copy of `t` (no copy when it is dense already).
fn dense(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.detach())
    } else {
        t.detach().contiguous()
    }
}

impl Tensor {
    /// Layer norm over the trailing dims whose sizes multiply to `n`, with optional affine
    /// `weight` and `bias` of `n` elements each (any shape, typically the normalized shape).
    /// See the module doc for the forward and backward formulas.
    pub fn layer_norm(
        &self,
        n: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let op = "layer_norm";
        if n == 0 || !self.numel().is_multiple_of(n) || self.rank() == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "input {:?} has no trailing block of {n} elements",
                    self.dims()
                ),
            ));
        }
        for p in [weight, bias].into_iter().flatten() {
            if p.numel() != n {
                return Err(Error::shape(
                    op,
                    format!("affine parameter {:?} does not have {n} elements", p.dims()),
                ));
            }
            if p.dtype() != self.dtype() {
                return Err(Error::dtype_mismatch(op, self.dtype(), p.dtype()));
            }
        }
        if eps.is_nan() || eps < 0.0 {
            return Err(Error::value(op, format!("eps must be >= 0, got {eps}")));
        }
        let x = dense(self)?;
        let (wd, bd) = (weight.map(dense).transpose()?, bias.map(dense).transpose()?);
        let (st, mu, rs) = match self.dtype() {
            DType::F32 => run_forward::<f32>(&x, wd.as_ref(), bd.as_ref(), n, eps)?,
            DType::F64 => run_forward::<f64>(&x, wd.as_ref(), bd.as_ref(), n, eps)?,
            d => return Err(Error::dtype_unsupported(op, d)),
        };
        let rows = self.numel() / n;
        let (mu, rs) = (
            Tensor::from_storage(mu, [rows]),
            Tensor::from_storage(rs, [rows]),
        );
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        let (w_shape, b_shape) = (
            weight.map(|t| t.shape().clone()),
            bias.map(|t| t.shape().clone()),
        );
        Ok(Tensor::op_result(
            st,
            self.shape(),
            op,
            &inputs,
            move || {
                Box::new(move |_, g| {
                    let g = dense(g)?;
                    let (dx, dw, db) = match x.dtype() {
                        DType::F32 => run_backward::<f32>(&x, &g, wd.as_ref(), &mu, &rs, n)?,
                        _ => run_backward::<f64>(&x, &g, wd.as_ref(), &mu, &rs, n)?,
                    };
                    let mut out = vec![Some(Tensor::from_storage(dx, x.shape()))];
                    if let Some(s) = &w_shape {
                        out.push(Some(Tensor::from_storage(dw, s)));
                    }
                    if let Some(s) = &b_shape {
                        out.push(Some(Tensor::from_storage(db, s)));
                    }
                    Ok(out)
                })
            },
        ))
    }
}
