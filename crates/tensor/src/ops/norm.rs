//! Layer normalisation over the trailing `n` elements of each row, fused: one pass for the
//! statistics and one for the output, instead of the seven generic ops (and seven buffers) of
//! `(x - mean) * rsqrt(var + eps) * w + b`.
//!
//! Per row, `mu = mean(x)`, `s = 1 / sqrt(mean((x - mu)^2) + eps)`, `xh = (x - mu) s`,
//! `y = xh w + b`. With upstream gradient `g`:
//! - `db = sum_rows g`, `dw = sum_rows g xh`;
//! - with `d = g w`: `dx = s (d - mean(d) - xh mean(d xh))`
//!   (the mean and variance depend on every element of the row, hence the two correction terms).

use crate::cpu::fold_lanes;
use crate::dtype::{DType, Float};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::Element;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// One row of the forward: input, output, mean and inverse deviation slots.
type FwdRow<'a, T> = (((&'a [T], &'a mut [MaybeUninit<T>]), &'a mut T), &'a mut T);

/// The rows of one backward task: inputs, gradients, outputs, means and inverse deviations.
type BwdTask<'a, T> = (
    ((&'a [T], &'a [T]), &'a mut [MaybeUninit<T>]),
    (&'a [T], &'a [T]),
);

/// Rows at least this large in total go to the thread pool.
const PAR_ELEMS: usize = 1 << 15;
/// Rows per task of the backward, whose weight and bias gradients are summed per task and then
/// over the tasks in order: fixed, so the sums do not depend on the thread count.
const BWD_ROWS: usize = 64;

/// Mean and inverse standard deviation of a row. Eight running sums, one per lane of a vector
/// (a single running sum is a chain of dependent adds, one every four cycles: it made this
/// kernel four times slower than PyTorch's).
#[inline(always)]
fn stats<T: Float>(row: &[T], eps: f64) -> (T, T) {
    let n = T::cast(row.len() as f64);
    let mu = crate::cpu::sum_slice(row) / n;
    let mut acc = [T::zero(); 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v - mu) * (v - mu);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(T::zero(), |a, &v| a + (v - mu) * (v - mu));
    let var = (fold_lanes(acc) + tail) / n;
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
    let mut y: Vec<T> = Vec::with_capacity(x.len());
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
                            o.write((v - a) * s * wi + bi);
                        }
                    }
                    (Some(w), None) => {
                        for ((o, &v), &wi) in yr.iter_mut().zip(xr).zip(w) {
                            o.write((v - a) * s * wi);
                        }
                    }
                    (None, Some(b)) => {
                        for ((o, &v), &bi) in yr.iter_mut().zip(xr).zip(b) {
                            o.write((v - a) * s + bi);
                        }
                    }
                    (None, None) => {
                        for (o, &v) in yr.iter_mut().zip(xr) {
                            o.write((v - a) * s);
                        }
                    }
                }
            },
        )
    };
    let yv = &mut y.spare_capacity_mut()[..x.len()];
    if x.len() >= PAR_ELEMS {
        x.par_chunks(n)
            .zip(yv.par_chunks_mut(n))
            .zip(mu.par_iter_mut())
            .zip(rs.par_iter_mut())
            .for_each(row);
    } else {
        x.chunks(n)
            .zip(yv.chunks_mut(n))
            .zip(mu.iter_mut())
            .zip(rs.iter_mut())
            .for_each(row);
    }
    // SAFETY: every row of y was written whole (w and b hold n values: checked by the op).
    unsafe { y.set_len(x.len()) };
    (y, mu, rs)
}

/// `dx` of one row (written to `dr`) and its terms of `dw` and `db` (added to `dw`, `db`), in
/// three passes over the row (which stays in L1): elementwise terms, the two row sums, `dx`.
/// Each pass is a plain loop the compiler turns into full-width vectors; one fused loop with
/// the sums in it did not vectorise.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_row<T: Float>(
    xr: &[T],
    gr: &[T],
    dr: &mut [MaybeUninit<T>],
    w: Option<&[T]>,
    (m, s): (T, T),
    inv_n: T,
    dw: &mut [T],
    db: &mut [T],
) {
    let n = xr.len();
    let (dw, db) = (&mut dw[..n], &mut db[..n]);
    for (((&v, &gv), dwi), dbi) in xr.iter().zip(gr).zip(dw.iter_mut()).zip(db.iter_mut()) {
        *dwi += gv * ((v - m) * s);
        *dbi += gv;
    }
    // d = g w
    match w {
        Some(w) => {
            for ((o, &gv), &wi) in dr.iter_mut().zip(gr).zip(w) {
                o.write(gv * wi);
            }
        }
        None => {
            for (o, &gv) in dr.iter_mut().zip(gr) {
                o.write(gv);
            }
        }
    }
    // SAFETY: every element of the row was written just above.
    let d: &mut [T] = unsafe { &mut *(dr as *mut [MaybeUninit<T>] as *mut [T]) };
    // mean(d) and mean(d xh), eight lanes each
    let (mut sd, mut sdx) = ([T::zero(); 8], [T::zero(); 8]);
    let (mut cd, mut cx) = (d.chunks_exact(8), xr.chunks_exact(8));
    for (dc, xc) in (&mut cd).zip(&mut cx) {
        for l in 0..8 {
            sd[l] += dc[l];
            sdx[l] += dc[l] * ((xc[l] - m) * s);
        }
    }
    let (mut td, mut tdx) = (T::zero(), T::zero());
    for (&di, &v) in cd.remainder().iter().zip(cx.remainder()) {
        td += di;
        tdx += di * ((v - m) * s);
    }
    let (md, mdx) = (
        (fold_lanes(sd) + td) * inv_n,
        (fold_lanes(sdx) + tdx) * inv_n,
    );
    for (o, &v) in d.iter_mut().zip(xr) {
        let xh = (v - m) * s;
        *o = s * (*o - md - xh * mdx);
    }
}

/// `(dx, dw, db)`; `dw`/`db` are summed per task of [`BWD_ROWS`] rows, then over the tasks in
/// order (the same numbers for any thread count).
fn backward<T: Float>(
    x: &[T],
    g: &[T],
    w: Option<&[T]>,
    mu: &[T],
    rs: &[T],
    n: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut dx: Vec<T> = Vec::with_capacity(x.len());
    let inv_n = T::cast(1.0 / n as f64);
    let task = |(((xs, gs), ds), (ms, ss)): BwdTask<'_, T>| {
        crate::cpu::simd::with_avx2(
            #[inline(always)]
            || {
                let (mut dw, mut db) = (vec![T::zero(); n], vec![T::zero(); n]);
                for (((xr, gr), dr), (&m, &s)) in xs
                    .chunks(n)
                    .zip(gs.chunks(n))
                    .zip(ds.chunks_mut(n))
                    .zip(ms.iter().zip(ss))
                {
                    backward_row(xr, gr, dr, w, (m, s), inv_n, &mut dw, &mut db);
                }
                (dw, db)
            },
        )
    };
    let rows = BWD_ROWS * n;
    let dv = &mut dx.spare_capacity_mut()[..x.len()];
    let parts: Vec<(Vec<T>, Vec<T>)> = if x.len() >= PAR_ELEMS {
        x.par_chunks(rows)
            .zip(g.par_chunks(rows))
            .zip(dv.par_chunks_mut(rows))
            .zip(mu.par_chunks(BWD_ROWS).zip(rs.par_chunks(BWD_ROWS)))
            .map(task)
            .collect()
    } else {
        x.chunks(rows)
            .zip(g.chunks(rows))
            .zip(dv.chunks_mut(rows))
            .zip(mu.chunks(BWD_ROWS).zip(rs.chunks(BWD_ROWS)))
            .map(task)
            .collect()
    };
    // SAFETY: every row of dx was written whole by `backward_row`.
    unsafe { dx.set_len(x.len()) };
    let mut dw = vec![T::zero(); n];
    let mut db = vec![T::zero(); n];
    for (pw, pb) in parts {
        for i in 0..n {
            dw[i] += pw[i];
            db[i] += pb[i];
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
