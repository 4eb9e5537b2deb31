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

/// Whether `T` is f32 and a product of `n` columns with B of column stride `cs_b` goes to the
/// unpacked kernel ([`sgemm_rows`](crate::cpu::sgemm_rows)).
fn unpacked<T: Float>(n: usize, cs_b: isize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && crate::cpu::sgemm_rows::suits(n, cs_b)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, cs_b);
        false
    }
}

/// Whether [`product`] of this shape only writes its destination (so that it need not be
/// initialised).
fn stores_only<T: Float>(m: usize, n: usize, k: usize, cs_b: isize) -> bool {
    unpacked::<T>(n, cs_b) || writes_without_reading::<T>(m, n, k)
}

/// `dst (m x n, row stride rs) = lhs (m x k) * rhs (k x n)` on one thread: f32 products whose B
/// rows are contiguous go to the unpacked kernel (no packing, no per-call set-up), the others
/// to [`gemm_into`].
///
/// # Safety
/// As [`gemm_into`]; `dst` must be initialised unless [`stores_only`] holds for the shape.
#[allow(clippy::too_many_arguments)]
unsafe fn product<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    rs: usize,
    lhs: MatPtr<T>,
    rhs: MatPtr<T>,
) {
    unsafe {
        #[cfg(target_arch = "x86_64")]
        if unpacked::<T>(n, rhs.cs) {
            let cast = |p: MatPtr<T>| MatPtr {
                ptr: p.ptr as *const f32,
                rs: p.rs,
                cs: p.cs,
            };
            let (a, b) = (cast(lhs), cast(rhs));
            crate::cpu::sgemm_rows::sgemm_rows(m, n, k, a, b, dst as *mut f32, rs as isize, false);
            return;
        }
        gemm_into(
            m,
            n,
            k,
            dst,
            rs as isize,
            false,
            lhs,
            rhs,
            Parallelism::None,
        );
    }
}

/// The query blocks: `(i0, i1)` for each block of `RB` rows.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(RB).map(move |i0| (i0, (i0 + RB).min(t)))
}

/// `dst[p * rows + j] = src[j * rs + p]` for `j < rows`, `p < cols`: a head's keys or values
/// transposed (`[D, T]`), so that `Q K^T` and `G V^T` read B by contiguous rows.
fn transpose_into<T: Float>(src: &[T], rs: usize, rows: usize, cols: usize, dst: &mut [T]) {
    assert!(src.len() >= (rows - 1) * rs + cols && dst.len() >= rows * cols);
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && crate::cpu::sgemm::available()
    {
        let (s, d) = (src.as_ptr() as *const f32, dst.as_mut_ptr() as *mut f32);
        // SAFETY: T is f32; the extents were checked above; the CPU has AVX2 and FMA.
        unsafe { crate::cpu::sgemm_rows::transpose(s, rs, rows, cols, d, rows) };
        return;
    }
    for p in 0..cols {
        for (j, o) in dst[p * rows..(p + 1) * rows].iter_mut().enumerate() {
            *o = src[j * rs + p];
        }
    }
}

/// `dst[j * cols + p] = src[j * rs + p]`: a head's `[T, D]` slice of rows `rs` apart made
/// contiguous. Rows 384 or 1,536 floats apart fall into a few of L1's 64 sets (1,536 bytes is
/// 24 lines: 8 sets), so the 128 rows a product reads evict each other; 128-byte rows do not.
fn copy_rows<T: Copy>(src: &[T], rs: usize, rows: usize, cols: usize, dst: &mut [T]) {
    for (j, o) in dst.chunks_exact_mut(cols).take(rows).enumerate() {
        o.copy_from_slice(&src[j * rs..j * rs + cols]);
    }
}

/// Room for `len` elements: zeros when `zero`, else an empty vector of that capacity for the
/// caller to write through its pointer and then [`Vec::set_len`].
fn buffer<T: Float>(len: usize, zero: bool) -> Vec<T> {
    if zero {
        vec![T::zero(); len]
    } else {
        Vec::with_capacity(len)
    }
}

/// `(y, p)`: the output `[B, T, C]` and the attention probabilities `[B, H, T, T]` (zero above
/// the diagonal), kept for the backward.
fn forward<T: Float>(qkv: &[T], g: Geom) -> (Vec<T>, Vec<T>) {
    let Geom { b, t, c, h, d } = g;
    if t == 0 {
        // no positions: empty output and probabilities (and no zero-sized chunks below)
        return (Vec::new(), Vec::new());
    }
    let scale = T::cast(1.0 / (d as f64).sqrt());
    // The products write every element of y (each head's columns, all rows), which is only
    // ever reached through its raw pointer, so it is left uninitialised unless a product reads
    // its destination first. The probabilities are handed to the tasks as slices, and a slice
    // over uninitialised memory is undefined behaviour even if nothing reads it: they are
    // zeroed (a memset of B H T^2 floats, small beside the products that fill them).
    let y_reads = blocks(t).any(|(i0, i1)| !stores_only::<T>(i1 - i0, d, i1, 1));
    let (y_len, p_len) = (b * t * c, b * h * t * t);
    let (mut y, mut p) = (buffer::<T>(y_len, y_reads), vec![T::zero(); p_len]);
    let yp = SendPtr(y.as_mut_ptr());
    let pv: &mut [T] = &mut p;
    let task = |(bh, pm): (usize, &mut [T])| {
        let (bi, hi) = (bh / h, bh % h);
        let row0 = bi * t * 3 * c;
        // the head's queries and values as contiguous [T, D] copies, its keys transposed
        let head = |part: usize| &qkv[row0 + part * c + hi * d..];
        let mut qh = scratch::take::<T>(t * d);
        let mut vh = scratch::take::<T>(t * d);
        let mut kt = scratch::take::<T>(d * t);
        copy_rows(head(0), 3 * c, t, d, &mut qh[..t * d]);
        copy_rows(head(2), 3 * c, t, d, &mut vh[..t * d]);
        transpose_into(head(1), 3 * c, t, d, &mut kt[..d * t]);
        let (q, v) = (qh.as_ptr(), vh.as_ptr());
        for (i0, i1) in blocks(t) {
            // SAFETY: every pointer below stays inside this head's rows of qkv / pm / y, whose
            // extents the strides describe; y's head columns belong to this task alone.
            unsafe {
                // scores of queries i0..i1 against keys 0..i1
                let qi = mat(q.add(i0 * d), d);
                product(
                    i1 - i0,
                    i1,
                    d,
                    pm.as_mut_ptr().add(i0 * t),
                    t,
                    qi,
                    mat(kt.as_ptr(), t),
                );
                for i in i0..i1 {
                    let row = &mut pm[i * t..(i + 1) * t];
                    simd::with_avx2(
                        #[inline(always)]
                        || scaled_prefix_softmax_in_place(row, scale, i + 1),
                    );
                }
                let yi = yp.get().add((bi * t + i0) * c + hi * d);
                product(
                    i1 - i0,
                    d,
                    i1,
                    yi,
                    c,
                    mat(pm.as_ptr().add(i0 * t), t),
                    mat(v, d),
                );
            }
        }
    };
    if b * h > 1 {
        pv.par_chunks_mut(t * t).enumerate().for_each(task);
    } else {
        pv.chunks_mut(t * t).enumerate().for_each(task);
    }
    // SAFETY: the tasks wrote every element of y (see above).
    unsafe { y.set_len(y_len) };
    (y, p)
}

/// `dqkv` `[B, T, 3C]` from the output gradient `gy` `[B, T, C]` (see the module doc).
fn backward<T: Float>(qkv: &[T], p: &[T], gy: &[T], g: Geom) -> Vec<T> {
    let Geom { b, t, c, h, d } = g;
    if t == 0 {
        return Vec::new();
    }
    let scale = T::cast(1.0 / (d as f64).sqrt());
    // dQ, dK and dV of every head are written whole by their products (all rows, the head's
    // columns); dS is written by its products up to each block's last key, and only read there.
    let dqkv_reads = blocks(t).any(|(i0, i1)| {
        !stores_only::<T>(i1 - i0, d, i1, 1) || !stores_only::<T>(i1 - i0, d, t - i0, 1)
    });
    let ds_reads = blocks(t).any(|(i0, i1)| !stores_only::<T>(i1 - i0, i1, d, 1));
    let len = b * t * 3 * c;
    let mut dqkv = buffer::<T>(len, dqkv_reads);
    let dp = SendPtr(dqkv.as_mut_ptr());
    let task = |bh: usize| {
        let (bi, hi) = (bh / h, bh % h);
        let row0 = bi * t * 3 * c;
        // the head's queries, keys and output gradient as contiguous [T, D] copies, its values
        // transposed
        let head = |part: usize| &qkv[row0 + part * c + hi * d..];
        let mut qh = scratch::take::<T>(t * d);
        let mut kh = scratch::take::<T>(t * d);
        let mut gh = scratch::take::<T>(t * d);
        let mut vt = scratch::take::<T>(d * t);
        copy_rows(head(0), 3 * c, t, d, &mut qh[..t * d]);
        copy_rows(head(1), 3 * c, t, d, &mut kh[..t * d]);
        copy_rows(&gy[bi * t * c + hi * d..], c, t, d, &mut gh[..t * d]);
        transpose_into(head(2), 3 * c, t, d, &mut vt[..d * t]);
        let (q, k, gh) = (qh.as_ptr(), kh.as_ptr(), gh.as_ptr());
        let (dq, dk, dv) = unsafe {
            let base = dp.get().add(row0 + hi * d);
            (base, base.add(c), base.add(2 * c))
        };
        let pm = &p[bh * t * t..(bh + 1) * t * t];
        // dP, then dS in place
        let mut ds = scratch::take::<T>(t * t);
        let ds = &mut ds[..t * t];
        if ds_reads {
            ds.fill(T::zero());
        }
        // SAFETY: as in the forward; dq, dk, dv are this head's columns of dqkv, written by
        // this task only.
        unsafe {
            for (i0, i1) in blocks(t) {
                let gi = mat(gh.add(i0 * d), d);
                product(
                    i1 - i0,
                    i1,
                    d,
                    ds.as_mut_ptr().add(i0 * t),
                    t,
                    gi,
                    mat(vt.as_ptr(), t),
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
                    // masked: P = 0 there, so no gradient
                    ds[i * t + i + 1..i * t + i1].fill(T::zero());
                }
                // dQ rows i0..i1 = dS[i0..i1, 0..i1] K[0..i1]
                let dsi = mat(ds.as_ptr().add(i0 * t), t);
                product(i1 - i0, d, i1, dq.add(i0 * 3 * c), 3 * c, dsi, mat(k, d));
            }
            // dK rows j0..j1 = dS[j0.., j0..j1]^T Q[j0..] and dV rows = P[j0.., j0..j1]^T G[j0..]:
            // key j only receives from queries i >= j
            for (j0, j1) in blocks(t) {
                let dst = mat_t(ds.as_ptr().add(j0 * t + j0), t);
                let qj = mat(q.add(j0 * d), d);
                product(j1 - j0, d, t - j0, dk.add(j0 * 3 * c), 3 * c, dst, qj);
                let pt = mat_t(pm.as_ptr().add(j0 * t + j0), t);
                let gj = mat(gh.add(j0 * d), d);
                product(j1 - j0, d, t - j0, dv.add(j0 * 3 * c), 3 * c, pt, gj);
            }
        }
    };
    if b * h > 1 {
        (0..b * h).into_par_iter().for_each(task);
    } else {
        (0..b * h).for_each(task);
    }
    // SAFETY: the tasks wrote every element (see above).
    unsafe { dqkv.set_len(len) };
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
