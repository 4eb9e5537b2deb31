//! Causal multi-head self-attention over a fused query/key/value projection, as one op.
//!
//! The input `qkv` is `[B, T, 3C]`: queries, keys and values side by side (GPT-2's `c_attn`
//! output), each `C = H * D` wide with the `H` heads contiguous inside it. The output `y` is
//! `[B, T, C]` with the heads side by side again, ready for the output projection. For batch
//! entry `b` and head `h`, with `Q`, `K`, `V` its `[T, D]` slices and `s = 1 / sqrt(D)`:
//!
//! ```text
//! S = s Q K^T,   P = softmax_rows(S + M)   (M = -inf above the diagonal),   Y = P V
//! ```
//!
//! and, with `G = dL/dY` (the head's slice of the output gradient):
//!
//! ```text
//! dV = P^T G,   dP = G V^T,   dS = P * (dP - rowsum(dP * P)),   dQ = s dS K,   dK = s dS^T Q
//! ```
//!
//! (the softmax's vector-Jacobian product; masked entries have `P = 0`, so no gradient).
//!
//! Why one op instead of the composition of views, matmuls and the masked softmax: queries are
//! taken in blocks of `RB` rows and each block is multiplied only against the keys up to its
//! last position, so the masked upper triangle (almost half of `Q K^T`, `P V` and their four
//! backward products) is never computed; the heads are read from and written to their places in
//! `qkv`, `y` and `dqkv` by strides, so no head is copied, and the three gradients land in one
//! buffer instead of three padded ones added together. It is the same arithmetic as the
//! composition, checked against it and against finite differences.

use crate::cpu::gemm::{gemm_into, writes_without_reading, MatPtr};
use crate::cpu::{scratch, simd, SendPtr};
use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::ops::softmax::{lanes_dot, scaled_prefix_softmax_in_place};
use crate::storage::Storage;
use crate::tensor::{Dense, DenseSlice, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Queries per block: each block multiplies against the keys up to its last row only. 64
/// rather than 32: fewer, larger products (measured 10-30% faster for GPT's 128-position
/// heads) at the cost of computing a little more of the masked triangle.
const RB: usize = 64;

/// Batch, time, width (C), heads and head size of one call.
#[derive(Clone, Copy)]
struct Geom {
    b: usize,
    t: usize,
    c: usize,
    h: usize,
    d: usize,
}

/// A row-major strided matrix starting at `p`.
fn mat<T>(p: *const T, rs: usize) -> MatPtr<T> {
    MatPtr {
        ptr: p,
        rs: rs as isize,
        cs: 1,
    }
}

/// The transpose of the row-major matrix at `p` (row stride `rs`).
fn mat_t<T>(p: *const T, rs: usize) -> MatPtr<T> {
    MatPtr {
        ptr: p,
        rs: 1,
        cs: rs as isize,
    }
}

/// `(y, p)`: the output `[B, T, C]` and the attention probabilities `[B, H, T, T]` (zero above
/// the diagonal), kept for the backward.
fn forward<T: Float>(qkv: &[T], g: Geom) -> (Vec<T>, Vec<T>) {
    let Geom { b, t, c, h, d } = g;
    let scale = T::cast(1.0 / (d as f64).sqrt());
    // zeroed: the `gemm` crate reads the edges of its destination
    let mut y = vec![T::zero(); b * t * c];
    // the probabilities: each row is written whole by its softmax, from scores the block's
    // product wrote; only a product that reads its destination needs it initialised
    let len = b * h * t * t;
    let mut p: Vec<T> = Vec::with_capacity(len);
    let reads = (0..t)
        .step_by(RB)
        .any(|i0| !writes_without_reading::<T>((i0 + RB).min(t) - i0, (i0 + RB).min(t), d));
    if reads {
        p.resize(len, T::zero());
    }
    // SAFETY: (raw view) the capacity is `len`; every element is written below before being
    // read: the scores by the product (or zeroed above), then the whole row by the softmax.
    let pv: &mut [T] = unsafe { std::slice::from_raw_parts_mut(p.as_mut_ptr(), len) };
    let yp = SendPtr(y.as_mut_ptr());
    let task = |(bh, pm): (usize, &mut [T])| {
        let (bi, hi) = (bh / h, bh % h);
        let row0 = bi * t * 3 * c;
        let (q, k, v) = (
            qkv[row0 + hi * d..].as_ptr(),
            qkv[row0 + c + hi * d..].as_ptr(),
            qkv[row0 + 2 * c + hi * d..].as_ptr(),
        );
        for i0 in (0..t).step_by(RB) {
            let i1 = (i0 + RB).min(t);
            // SAFETY: every pointer below stays inside this head's rows of qkv / pm / y, whose
            // extents the strides describe; y's head columns belong to this task alone.
            unsafe {
                // scores of queries i0..i1 against keys 0..i1
                gemm_into(
                    i1 - i0,
                    i1,
                    d,
                    pm.as_mut_ptr().add(i0 * t),
                    t as isize,
                    false,
                    mat(q.add(i0 * 3 * c), 3 * c),
                    mat_t(k, 3 * c),
                    Parallelism::None,
                );
                for i in i0..i1 {
                    let row = &mut pm[i * t..(i + 1) * t];
                    simd::with_avx2(
                        #[inline(always)]
                        || scaled_prefix_softmax_in_place(row, scale, i + 1),
                    );
                }
                gemm_into(
                    i1 - i0,
                    d,
                    i1,
                    yp.get().add((bi * t + i0) * c + hi * d),
                    c as isize,
                    false,
                    mat(pm.as_ptr().add(i0 * t), t),
                    mat(v, 3 * c),
                    Parallelism::None,
                );
            }
        }
    };
    if b * h > 1 {
        pv.par_chunks_mut(t * t).enumerate().for_each(task);
    } else {
        pv.chunks_mut(t * t).enumerate().for_each(task);
    }
    // SAFETY: all `len` elements were written by the tasks (see above).
    unsafe { p.set_len(len) };
    (y, p)
}

/// `dqkv` `[B, T, 3C]` from the output gradient `gy` `[B, T, C]` (see the module doc).
fn backward<T: Float>(qkv: &[T], p: &[T], gy: &[T], g: Geom) -> Vec<T> {
    let Geom { b, t, c, h, d } = g;
    let scale = T::cast(1.0 / (d as f64).sqrt());
    let mut dqkv = vec![T::zero(); b * t * 3 * c];
    let dp = SendPtr(dqkv.as_mut_ptr());
    let task = |bh: usize| {
        let (bi, hi) = (bh / h, bh % h);
        let row0 = bi * t * 3 * c;
        let (q, k, v) = (
            qkv[row0 + hi * d..].as_ptr(),
            qkv[row0 + c + hi * d..].as_ptr(),
            qkv[row0 + 2 * c + hi * d..].as_ptr(),
        );
        let (dq, dk, dv) = unsafe {
            let base = dp.get().add(row0 + hi * d);
            (base, base.add(c), base.add(2 * c))
        };
        let gh = gy[bi * t * c + hi * d..].as_ptr();
        let pm = &p[bh * t * t..(bh + 1) * t * t];
        // dP, then dS in place; zero where never written (above each block's last key)
        let mut ds = scratch::take::<T>(t * t);
        let ds = &mut ds[..t * t];
        ds.fill(T::zero());
        // SAFETY: as in the forward; dq, dk, dv are this head's columns of dqkv, written by
        // this task only.
        unsafe {
            for i0 in (0..t).step_by(RB) {
                let i1 = (i0 + RB).min(t);
                gemm_into(
                    i1 - i0,
                    i1,
                    d,
                    ds.as_mut_ptr().add(i0 * t),
                    t as isize,
                    false,
                    mat(gh.add(i0 * c), c),
                    mat_t(v, 3 * c),
                    Parallelism::None,
                );
                for i in i0..i1 {
                    let (dr, pr) = (&mut ds[i * t..i * t + i + 1], &pm[i * t..i * t + i + 1]);
                    simd::with_avx2(
                        #[inline(always)]
                        || {
                            let s = lanes_dot(pr, dr);
                            for (o, &pi) in dr.iter_mut().zip(pr) {
                                *o = pi * (*o - s) * scale;
                            }
                        },
                    );
                    ds[i * t + i + 1..i * t + i1].fill(T::zero());
                }
                // dQ rows i0..i1 = dS[i0..i1, 0..i1] K[0..i1]
                gemm_into(
                    i1 - i0,
                    d,
                    i1,
                    dq.add(i0 * 3 * c),
                    3 * c as isize,
                    false,
                    mat(ds.as_ptr().add(i0 * t), t),
                    mat(k, 3 * c),
                    Parallelism::None,
                );
            }
            // dK rows j0..j1 = dS[j0.., j0..j1]^T Q[j0..] and dV rows = P[j0.., j0..j1]^T G[j0..]:
            // key j only receives from queries i >= j
            for j0 in (0..t).step_by(RB) {
                let j1 = (j0 + RB).min(t);
                gemm_into(
                    j1 - j0,
                    d,
                    t - j0,
                    dk.add(j0 * 3 * c),
                    3 * c as isize,
                    false,
                    mat_t(ds.as_ptr().add(j0 * t + j0), t),
                    mat(q.add(j0 * 3 * c), 3 * c),
                    Parallelism::None,
                );
                gemm_into(
                    j1 - j0,
                    d,
                    t - j0,
                    dv.add(j0 * 3 * c),
                    3 * c as isize,
                    false,
                    mat_t(pm.as_ptr().add(j0 * t + j0), t),
                    mat(gh.add(j0 * c), c),
                    Parallelism::None,
                );
            }
        }
    };
    if b * h > 1 {
        (0..b * h).into_par_iter().for_each(task);
    } else {
        (0..b * h).for_each(task);
    }
    dqkv
}

impl Tensor {
    /// Causal multi-head self-attention of a fused projection `qkv` `[B, T, 3C]` with `n_head`
    /// heads (queries, keys, values side by side, as GPT-2's `c_attn` makes them): returns
    /// `[B, T, C]`, the heads' `softmax(Q K^T / sqrt(D) + causal mask) V` side by side. See the
    /// module doc for the formulas and why it is one op. No dropout on the probabilities:
    /// compose `matmul`, `attention_softmax` and `dropout` for that.
    pub fn causal_self_attention(&self, n_head: usize) -> Result<Tensor> {
        let op = "causal_self_attention";
        if self.rank() != 3 || n_head == 0 || !self.dims()[2].is_multiple_of(3 * n_head) {
            return Err(Error::shape(
                op,
                format!(
                    "expects qkv [B, T, 3C] with C divisible by {n_head} heads, got {:?}",
                    self.dims()
                ),
            ));
        }
        let (b, t, c3) = (self.dims()[0], self.dims()[1], self.dims()[2]);
        let c = c3 / 3;
        let g = Geom {
            b,
            t,
            c,
            h: n_head,
            d: c / n_head,
        };
        let keep = crate::autograd::is_grad_enabled() && self.requires_grad();
        let xv = self.dense();
        let (st, probs) = match xv.get() {
            DenseSlice::F32(x) => {
                let (y, p) = forward(x, g);
                (Storage::new_f32(y), Dense::F32(p))
            }
            DenseSlice::F64(x) => {
                let (y, p) = forward(x, g);
                (Storage::new_f64(y), Dense::F64(p))
            }
            DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, self.dtype())),
        };
        drop(xv);
        // the probabilities are only needed for a backward
        let probs = keep.then_some(probs);
        let qkv = self.clone();
        Ok(Tensor::op_result(st, [b, t, c], op, &[self], move || {
            Box::new(move |_, gy| {
                let (xv, gv) = (qkv.dense(), gy.dense());
                let dx = match (xv.get(), gv.get(), &probs) {
                    (DenseSlice::F32(x), DenseSlice::F32(gy), Some(Dense::F32(p))) => {
                        Storage::new_f32(backward(x, p, gy, g))
                    }
                    (DenseSlice::F64(x), DenseSlice::F64(gy), Some(Dense::F64(p))) => {
                        Storage::new_f64(backward(x, p, gy, g))
                    }
                    _ => {
                        return Err(Error::Autograd {
                            op: "causal_self_attention_backward",
                            msg: "no probabilities kept (the forward ran without gradients)".into(),
                        })
                    }
                };
                Ok(vec![Some(Tensor::from_storage(dx, qkv.shape()))])
            })
        }))
    }
}
