//! Single-precision products whose right operand has contiguous rows, without packing: the
//! small products inside an attention head.
//!
//! Why not [`super::sgemm`]: an attention head's products are 64 x 32 x 128 or so, a few hundred
//! thousand multiply-adds each, thousands of them per step. Packing both operands (the BLIS
//! design) then costs as much as the arithmetic, and the `gemm` crate's per-call set-up and edge
//! handling took a third of its time on them (measured in the GPT profile). Here B is read in
//! place, 16 columns at a time from rows `rs_b` apart (a head's 32 values of a key, value or
//! gradient row are contiguous), and A is broadcast element by element from any strides (a
//! row-major block of probabilities, or its transpose). The B panel (k x 16, at most a few KiB)
//! stays in L1 while every row of A passes over it.
//!
//! Each element of C is the sum over the inner dimension in increasing order, one fused
//! multiply-add per step in one register lane, whatever the shape around it: the same numbers
//! for any thread count.

use super::gemm::MatPtr;
use std::arch::x86_64::*;

/// Columns per panel: two 8-lane registers.
const NR: usize = 16;
/// Rows per tile: 6 x 2 accumulators + 2 for B + 1 broadcast = 15 of the 16 ymm registers.
const MR: usize = 6;

/// Whether [`sgemm_rows`] takes a product with `n` columns and a B of column stride `cs_b`.
pub fn suits(n: usize, cs_b: isize) -> bool {
    n > 0 && n.is_multiple_of(NR) && cs_b == 1 && super::sgemm::available()
}

/// `C = (accumulate ? C : 0) + A (m x k) * B (k x n)`, with B's rows contiguous (`b.cs == 1`),
/// `n` a multiple of 16, C row-major with row stride `rs_c`. With `accumulate == false` C is
/// only written, never read, so it may be uninitialised.
///
/// # Safety
/// [`suits`] holds; the pointers are valid for the strided extents they describe; C does not
/// alias A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_rows(
    m: usize,
    n: usize,
    k: usize,
    a: MatPtr<f32>,
    b: MatPtr<f32>,
    c: *mut f32,
    rs_c: isize,
    accumulate: bool,
) {
    unsafe {
        debug_assert!(suits(n, b.cs));
        for j in (0..n).step_by(NR) {
            let bj = b.ptr.add(j);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let ai = a.ptr.offset(i as isize * a.rs);
                let ci = c.offset(i as isize * rs_c).add(j);
                let t = Tile {
                    k,
                    a: ai,
                    rs_a: a.rs,
                    cs_a: a.cs,
                    b: bj,
                    rs_b: b.rs,
                    c: ci,
                    rs_c,
                    accumulate,
                };
                match rows {
                    6 => tile::<6>(t),
                    5 => tile::<5>(t),
                    4 => tile::<4>(t),
                    3 => tile::<3>(t),
                    2 => tile::<2>(t),
                    _ => tile::<1>(t),
                }
                i += rows;
            }
        }
    }
}

/// One `R x 16` tile of C and the operands that feed it.
#[derive(Clone, Copy)]
struct Tile {
    k: usize,
    a: *const f32,
    rs_a: isize,
    cs_a: isize,
    b: *const f32,
    rs_b: isize,
    c: *mut f32,
    rs_c: isize,
    accumulate: bool,
}

/// `R` rows by 16 columns of C: `2 R` accumulators, one rank-1 update per step of k (two loads
/// of B, `R` broadcasts of A, `2 R` fused multiply-adds).
///
/// # Safety
/// The CPU has AVX2 and FMA; `t`'s rows of A, packed B and C are valid for `R` rows, 16 columns
/// and its `k` steps.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(t: Tile) {
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.k {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.offset(r as isize * t.rs_a));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
            a = a.offset(t.cs_a);
            b = b.offset(t.rs_b);
        }
        for (r, row) in acc.iter().enumerate() {
            let p = t.c.offset(r as isize * t.rs_c);
            let (mut lo, mut hi) = (row[0], row[1]);
            if t.accumulate {
                lo = _mm256_add_ps(_mm256_loadu_ps(p), lo);
                hi = _mm256_add_ps(_mm256_loadu_ps(p.add(8)), hi);
            }
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(8), hi);
        }
    }
}

/// `dst[p * rd + j] = src[j * rs + p]` for `j < rows`, `p < cols`: the transpose, in 8 x 8
/// blocks through registers (a strided scalar copy writes each destination line eight times
/// over; it took as long as the product it prepared).
///
/// # Safety
/// [`super::sgemm::available`] holds; `src` is valid for `rows` rows of `cols` values `rs`
/// apart, `dst` for `cols` rows of `rows` values `rd >= rows` apart, and they do not overlap.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn transpose(
    src: *const f32,
    rs: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    rd: usize,
) {
    unsafe {
        let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
        for j in (0..rows8).step_by(8) {
            for p in (0..cols8).step_by(8) {
                super::sgemm::transpose8(src.add(j * rs + p), rs as isize, dst.add(p * rd + j), rd);
            }
        }
        for j in 0..rows {
            let ps = if j < rows8 { cols8..cols } else { 0..cols };
            for p in ps {
                *dst.add(p * rd + j) = *src.add(j * rs + p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::sgemm::tests::values;
    use super::*;

    /// Every shape edge (rows not a multiple of 6, one and several panels), both layouts of A,
    /// B rows with a gap, storing into NaN (every element written, none read) and accumulating,
    /// against an f64 reference.
    #[test]
    fn matches_f64_reference() {
        if !super::super::sgemm::available() {
            return;
        }
        for &(m, n, k) in &[
            (1, 16, 1),
            (5, 16, 7),
            (6, 32, 32),
            (13, 48, 5),
            (64, 128, 32),
        ] {
            for a_rowmajor in [true, false] {
                for accumulate in [false, true] {
                    let (rs_b, rs_c) = (n + 3, n + 5);
                    let a = values(m * k, 0);
                    let b = values(k * rs_b, 7);
                    let init = if accumulate { 0.5 } else { f32::NAN };
                    let mut c = vec![init; m * rs_c];
                    let am = if a_rowmajor {
                        MatPtr {
                            ptr: a.as_ptr(),
                            rs: k as isize,
                            cs: 1,
                        }
                    } else {
                        MatPtr {
                            ptr: a.as_ptr(),
                            rs: 1,
                            cs: m as isize,
                        }
                    };
                    let bm = MatPtr {
                        ptr: b.as_ptr(),
                        rs: rs_b as isize,
                        cs: 1,
                    };
                    // SAFETY: the extents match the buffers.
                    unsafe {
                        sgemm_rows(m, n, k, am, bm, c.as_mut_ptr(), rs_c as isize, accumulate)
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let mut s = if accumulate { 0.5f64 } else { 0.0 };
                            for p in 0..k {
                                let ap = if a_rowmajor {
                                    a[i * k + p]
                                } else {
                                    a[p * m + i]
                                };
                                s += ap as f64 * b[p * rs_b + j] as f64;
                            }
                            let got = c[i * rs_c + j] as f64;
                            assert!(
                                (got - s).abs() <= 1e-5 * (1.0 + s.abs()),
                                "{m}x{n}x{k} ({i},{j}): {got} vs {s}"
                            );
                        }
                        // the gap after each row is untouched
                        for j in n..rs_c {
                            let g = c[i * rs_c + j];
                            assert!(g.is_nan() || g == 0.5, "wrote outside C at ({i},{j})");
                        }
                    }
                }
            }
        }
    }

    /// Whole 8 x 8 blocks and both edges, into a destination with a gap after each row.
    #[test]
    fn transposes() {
        if !super::super::sgemm::available() {
            return;
        }
        for &(rows, cols) in &[(8, 8), (13, 11), (16, 32), (5, 3), (135, 32)] {
            let rs = cols + 2;
            let rd = rows + 1;
            let src = values(rows * rs, 0);
            let mut dst = vec![f32::NAN; cols * rd];
            // SAFETY: the extents match the buffers.
            unsafe { transpose(src.as_ptr(), rs, rows, cols, dst.as_mut_ptr(), rd) };
            for p in 0..cols {
                for j in 0..rows {
                    assert_eq!(dst[p * rd + j], src[j * rs + p], "{rows}x{cols} ({j},{p})");
                }
                assert!(dst[p * rd + rows].is_nan(), "wrote past row {p}");
            }
        }
    }
}
