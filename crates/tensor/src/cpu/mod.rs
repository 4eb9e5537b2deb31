//! CPU kernels. Nothing here knows about graphs or gradients: kernels take slices and layouts and
//! return new buffers. Loops over large buffers are split across rayon's threads in fixed-size
//! chunks, so the result of every kernel is identical for any thread count (each output element is
//! computed by the same sequence of operations, whoever computes it).

pub mod allocator;
pub mod conv;
pub mod gemm;
pub mod recurrent;
pub mod scratch;
#[cfg(target_arch = "x86_64")]
pub mod sgemm;
#[cfg(target_arch = "x86_64")]
pub mod sgemm_dots;
#[cfg(target_arch = "x86_64")]
pub mod sgemm_rows;
pub mod simd;

use crate::layout::Layout;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// A pointer that may cross to rayon's threads: each task writes its own disjoint range of the
/// buffer (a convolution's images, an attention head's columns).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: only used for disjoint writes by parallel tasks, joined before the buffer is read.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so closures capture the wrapper (edition 2021 would capture the field).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// Below this many elements a loop stays on the calling thread: spawning costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;
/// Chunk size of parallel elementwise loops.
const CHUNK: usize = 1 << 13;

/// A vector of `n` elements filled in parallel chunks of [`CHUNK`]: `fill(start, chunk)` must
/// write every element of `chunk` (elements `start .. start + chunk.len()`). No zero fill first:
/// for a memory-bound elementwise op that pass costs a third of the op.
fn par_filled<U, F>(n: usize, fill: F) -> Vec<U>
where
    U: Send,
    F: Fn(usize, &mut [std::mem::MaybeUninit<U>]) + Sync + Send,
{
    let mut out: Vec<U> = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, o)| fill(c * CHUNK, o));
    // The callers' loops zip each chunk with input slices of the chunk's own length, so every
    // element is written, and the inputs are at least n long (sliced by the callers above), so
    // the zips cannot end early.
    // SAFETY: all n elements were initialised above.
    unsafe { out.set_len(n) };
    out
}

/// `out[i] = f(src[layout position of i])`.
pub fn map_unary<T, U, F>(src: &[T], layout: &Layout, f: F) -> Vec<U>
where
    T: Copy + Send + Sync,
    U: Copy + Send + Sync + Default,
    F: Fn(T) -> U + Sync + Send,
{
    let n = layout.numel();
    if layout.is_contiguous() {
        let s = &src[layout.offset()..layout.offset() + n];
        if n >= PAR_THRESHOLD {
            return par_filled(n, |start, o| {
                let len = o.len();
                simd::with_avx2(
                    #[inline(always)]
                    || {
                        for (o, &i) in o.iter_mut().zip(&s[start..start + len]) {
                            o.write(f(i));
                        }
                    },
                )
            });
        }
        return simd::with_avx2(
            #[inline(always)]
            || s.iter().map(|&x| f(x)).collect(),
        );
    }
    let rank = layout.dims().len();
    if rank >= 2 && n > 0 {
        // row by row along the last dim (a permuted attention head is rows of 32 or 64)
        let inner = layout.dims()[rank - 1];
        let is = layout.strides()[rank - 1];
        return rows_filled(n, inner, |r, o| {
            let p = row_start(layout, r);
            if is == 1 {
                simd::with_avx2(
                    #[inline(always)]
                    || {
                        for (o, &x) in o.iter_mut().zip(&src[p..p + inner]) {
                            o.write(f(x));
                        }
                    },
                )
            } else {
                for (j, o) in o.iter_mut().enumerate() {
                    o.write(f(src[p + j * is]));
                }
            }
        });
    }
    let mut out = Vec::with_capacity(n);
    layout.for_each_position(|_, p| out.push(f(src[p])));
    out
}

/// A chunk of [`map_unary_pair`]'s input and of its two outputs.
type PairChunk<'a, T> = (
    (&'a [T], &'a mut [MaybeUninit<T>]),
    &'a mut [MaybeUninit<T>],
);

/// `(a, b)` with `(a[i], b[i]) = f(src[i])` for a dense `src`: two results of one function in
/// one pass (an activation and its derivative, which share their costly part).
pub fn map_unary_pair<T, F>(src: &[T], f: F) -> (Vec<T>, Vec<T>)
where
    T: Copy + Send + Sync,
    F: Fn(T) -> (T, T) + Sync + Send,
{
    let n = src.len();
    let (mut a, mut b): (Vec<T>, Vec<T>) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let chunk = |((s, oa), ob): PairChunk<'_, T>| {
        simd::with_avx2(
            #[inline(always)]
            || {
                for ((&x, oa), ob) in s.iter().zip(oa).zip(ob) {
                    let (u, v) = f(x);
                    oa.write(u);
                    ob.write(v);
                }
            },
        )
    };
    let (sa, sb) = (
        &mut a.spare_capacity_mut()[..n],
        &mut b.spare_capacity_mut()[..n],
    );
    if n >= PAR_THRESHOLD {
        src.par_chunks(CHUNK)
            .zip(sa.par_chunks_mut(CHUNK))
            .zip(sb.par_chunks_mut(CHUNK))
            .for_each(chunk);
    } else {
        chunk(((src, sa), sb));
    }
    // SAFETY: the three slices have n elements each, so the zips wrote every element of both.
    unsafe {
        a.set_len(n);
        b.set_len(n);
    }
    (a, b)
}

/// Storage position of the first element of row `r` (rows along the last dim) of a layout
/// (the offset itself for rank 0).
pub(crate) fn row_start(l: &Layout, mut r: usize) -> usize {
    let (dims, strides) = (l.dims(), l.strides());
    let mut p = l.offset();
    for d in (0..dims.len().saturating_sub(1)).rev() {
        p += (r % dims[d]) * strides[d];
        r /= dims[d];
    }
    p
}

/// A vector of `n` elements as rows of `inner`, filled row by row (in parallel when large):
/// `fill(r, row)` must write every element of row `r`.
fn rows_filled<U, F>(n: usize, inner: usize, fill: F) -> Vec<U>
where
    U: Send,
    F: Fn(usize, &mut [std::mem::MaybeUninit<U>]) + Sync + Send,
{
    let mut out: Vec<U> = Vec::with_capacity(n);
    let spare = &mut out.spare_capacity_mut()[..n];
    if inner == 0 {
        return out;
    }
    if n >= PAR_THRESHOLD {
        let per = (CHUNK / inner).max(1);
        spare
            .par_chunks_mut(per * inner)
            .enumerate()
            .for_each(|(c, rows)| {
                for (k, row) in rows.chunks_mut(inner).enumerate() {
                    fill(c * per + k, row);
                }
            });
    } else {
        for (r, row) in spare.chunks_mut(inner).enumerate() {
            fill(r, row);
        }
    }
    // SAFETY: every row was filled completely (the callers' loops cover each row).
    unsafe { out.set_len(n) };
    out
}

/// `out[i] = f(a[i], b[i])` for two layouts of the same shape (already broadcast).
pub fn map_binary<T, U, F>(a: &[T], la: &Layout, b: &[T], lb: &Layout, f: F) -> Vec<U>
where
    T: Copy + Send + Sync,
    U: Copy + Send + Sync + Default,
    F: Fn(T, T) -> U + Sync + Send,
{
    let n = la.numel();
    if la.is_contiguous() && lb.is_contiguous() {
        let a = &a[la.offset()..la.offset() + n];
        let b = &b[lb.offset()..lb.offset() + n];
        if n >= PAR_THRESHOLD {
            return par_filled(n, |start, o| {
                let end = start + o.len();
                simd::with_avx2(
                    #[inline(always)]
                    || {
                        let ab = a[start..end].iter().zip(&b[start..end]);
                        for (o, (&a, &b)) in o.iter_mut().zip(ab) {
                            o.write(f(a, b));
                        }
                    },
                )
            });
        }
        return simd::with_avx2(
            #[inline(always)]
            || a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect(),
        );
    }
    if lb.numel() == n && lb.strides().iter().all(|&s| s == 0) && la.is_contiguous() {
        let y = b[lb.offset()];
        let a = &a[la.offset()..la.offset() + n];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if la.strides().iter().all(|&s| s == 0) && lb.is_contiguous() {
        let x = a[la.offset()];
        let b = &b[lb.offset()..lb.offset() + n];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    let rank = la.dims().len();
    if rank >= 2 && n > 0 {
        // row by row along the last dim; a broadcast operand has stride 0 there or is one row
        let inner = la.dims()[rank - 1];
        let (ia, ib) = (la.strides()[rank - 1], lb.strides()[rank - 1]);
        return rows_filled(n, inner, |r, o| {
            let (pa, pb) = (row_start(la, r), row_start(lb, r));
            match (ia, ib) {
                (1, 1) => simd::with_avx2(
                    #[inline(always)]
                    || {
                        let rows = a[pa..pa + inner].iter().zip(&b[pb..pb + inner]);
                        for (o, (&x, &y)) in o.iter_mut().zip(rows) {
                            o.write(f(x, y));
                        }
                    },
                ),
                (1, 0) => simd::with_avx2(
                    #[inline(always)]
                    || {
                        let y = b[pb];
                        for (o, &x) in o.iter_mut().zip(&a[pa..pa + inner]) {
                            o.write(f(x, y));
                        }
                    },
                ),
                (0, 1) => simd::with_avx2(
                    #[inline(always)]
                    || {
                        let x = a[pa];
                        for (o, &y) in o.iter_mut().zip(&b[pb..pb + inner]) {
                            o.write(f(x, y));
                        }
                    },
                ),
                _ => {
                    for (j, o) in o.iter_mut().enumerate() {
                        o.write(f(a[pa + j * ia], b[pb + j * ib]));
                    }
                }
            }
        });
    }
    let mut out = Vec::with_capacity(n);
    for_each_position2(la, lb, |pa, pb| out.push(f(a[pa], b[pb])));
    out
}

/// Visits the storage positions of two same-shaped layouts together, in logical order.
pub fn for_each_position2(la: &Layout, lb: &Layout, mut f: impl FnMut(usize, usize)) {
    let n = la.numel();
    if n == 0 {
        return;
    }
    let rank = la.dims().len();
    if rank == 0 {
        f(la.offset(), lb.offset());
        return;
    }
    let dims = la.dims();
    let (sa, sb) = (la.strides(), lb.strides());
    let inner = dims[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    let mut idx = vec![0usize; rank];
    let (mut ba, mut bb) = (la.offset(), lb.offset());
    loop {
        let (mut pa, mut pb) = (ba, bb);
        for _ in 0..inner {
            f(pa, pb);
            pa += ia;
            pb += ib;
        }
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            ba += sa[d];
            bb += sb[d];
            if idx[d] < dims[d] {
                break;
            }
            ba -= idx[d] * sa[d];
            bb -= idx[d] * sb[d];
            idx[d] = 0;
        }
    }
}

/// A dense row-major copy of the elements a layout views.
pub fn copy_strided<T: Copy + Send + Sync + Default>(src: &[T], layout: &Layout) -> Vec<T> {
    map_unary(src, layout, |x| x)
}

/// Reduces each contiguous row of length `len` with `f`, in parallel over rows when large.
pub fn reduce_rows<T, U, F>(src: &[T], len: usize, f: F) -> Vec<U>
where
    T: Copy + Send + Sync,
    U: Copy + Send + Sync + Default,
    F: Fn(&[T]) -> U + Sync + Send,
{
    debug_assert!(len > 0, "reduce_rows needs a non-empty row");
    if src.len() >= PAR_THRESHOLD {
        src.par_chunks(len).map(&f).collect()
    } else {
        src.chunks(len).map(f).collect()
    }
}

/// Applies `f` to each contiguous row of length `len` of `src`, writing a row of the same length.
pub fn map_rows<T, F>(src: &[T], len: usize, f: F) -> Vec<T>
where
    T: Copy + Send + Sync + Default,
    F: Fn(&[T], &mut [T]) + Sync + Send,
{
    let mut out = vec![T::default(); src.len()];
    if len == 0 {
        return out;
    }
    let row = |(o, s): (&mut [T], &[T])| {
        simd::with_avx2(
            #[inline(always)]
            || f(s, o),
        )
    };
    if src.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(len)
            .zip(src.par_chunks(len))
            .for_each(row);
    } else {
        out.chunks_mut(len).zip(src.chunks(len)).for_each(row);
    }
    out
}

/// `((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))`: eight running sums (one per vector
/// lane) combined in one fixed order, so a row sum is the same whatever the vector width.
#[inline(always)]
pub(crate) fn fold_lanes<T: crate::dtype::Float>(a: [T; 8]) -> T {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// Sum of a slice in a fixed order: eight interleaved partial sums (which the compiler keeps in
/// SIMD lanes) combined pairwise at the end. The order depends only on the length, never on the
/// thread count, and the eight partials keep rounding error below that of a plain running sum.
#[inline]
pub fn sum_slice<T: crate::dtype::Float>(v: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = v.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    let mut s = fold_lanes(acc);
    for &x in rem {
        s += x;
    }
    s
}
