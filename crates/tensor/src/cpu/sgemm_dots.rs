//! Single-precision `C = A B^T` for operands whose rows run along a long inner dimension: each
//! element of C is the dot product of a row of A and a row of B, both contiguous.
//!
//! Why not [`super::sgemm`] or the `gemm` crate: a convolution's weight gradient is
//! `dW = G X_col^T`, with G `[O, N*L]` and the unfolded input `[C*kh*kw, N*L]` both stored by
//! rows of N*L values: for LeNet 6 x 25 or 16 x 150 outputs, each a sum of 400 to 3,136
//! products. Packing both operands (as both of those do) then copies far more than the result
//! holds, and their tiles (6 or 12 rows) do not fit 6 or 16 rows well. Here each tile of 2 x 4
//! outputs streams two rows of A and four of B once, eight lanes at a time: 6 loads per 8
//! fused multiply-adds, no copies.
//!
//! Each element is summed in eight lanes over the blocks of eight in increasing order, the lanes
//! folded as [`super::fold_lanes`] does, then the last `k % 8` products added in order: the same
//! numbers whatever the shape around it or the thread count.

use std::arch::x86_64::*;

/// Rows of A per tile.
const MR: usize = 2;
/// Rows of B per tile: 2 x 4 accumulators + 4 B rows + 1 A row = 13 of the 16 registers
/// (3 x 4 needs 17: the spills made LeNet's second convolution's backward 1.6x slower).
const NR: usize = 4;

/// Whether [`sgemm_dots`] suits a product with inner dimension `k`: long enough for the
/// horizontal sums at the end of each dot product not to matter.
pub fn suits(k: usize) -> bool {
    k >= 128 && super::sgemm::available()
}

/// `C = (accumulate ? C : 0) + A B^T` with A `m x k` (row i at `a + i*lda`), B `n x k` (row j
/// at `b + j*ldb`), both rows contiguous, and C element (i, j) at `c + i*rs_c + j*cs_c`. With
/// `accumulate == false` C is only written.
///
/// # Safety
/// [`suits`] holds (AVX2 and FMA present); the rows are valid for `k` reads; C is valid for the
/// writes described and does not alias A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_dots(
    m: usize,
    n: usize,
    k: usize,
    (a, lda): (*const f32, usize),
    (b, ldb): (*const f32, usize),
    (c, rs_c, cs_c): (*mut f32, isize, isize),
    accumulate: bool,
) {
    unsafe {
        // Blocks of B rows outside, A rows inside: A (a few rows, such as 16 x 400 for LeNet's
        // second convolution) stays in L1 while each row of B is read from L2 once.
        let mut j = 0;
        while j < n {
            let cols = (n - j).min(NR);
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(MR);
                let t = Tile {
                    k,
                    a: a.add(i * lda),
                    lda,
                    b: b.add(j * ldb),
                    ldb,
                    c: c.offset(i as isize * rs_c + j as isize * cs_c),
                    rs_c,
                    cs_c,
                    accumulate,
                };
                match (rows, cols) {
                    (2, 4) => tile::<2, 4>(t),
                    (2, 3) => tile::<2, 3>(t),
                    (2, 2) => tile::<2, 2>(t),
                    (2, _) => tile::<2, 1>(t),
                    (_, 4) => tile::<1, 4>(t),
                    (_, 3) => tile::<1, 3>(t),
                    (_, 2) => tile::<1, 2>(t),
                    _ => tile::<1, 1>(t),
                }
                i += rows;
            }
            j += cols;
        }
    }
}

/// One `R x S` block of C and the rows that feed it.
struct Tile {
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    accumulate: bool,
}

/// # Safety
/// The CPU has AVX2 and FMA; the rows, columns and destination `t` describes are valid for the
/// extents it gives (checked by the caller, [`sgemm_dots`]).
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const S: usize>(t: Tile) {
    unsafe {
        let k8 = t.k / 8 * 8;
        let mut acc = [[_mm256_setzero_ps(); S]; R];
        let mut p = 0;
        while p < k8 {
            let mut bv = [_mm256_setzero_ps(); S];
            for (s, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(t.b.add(s * t.ldb + p));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(t.a.add(r * t.lda + p));
                for (s, x) in row.iter_mut().enumerate() {
                    *x = _mm256_fmadd_ps(av, bv[s], *x);
                }
            }
            p += 8;
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, x) in row.iter().enumerate() {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), *x);
                let mut v = super::fold_lanes(lanes);
                for q in k8..t.k {
                    v += *t.a.add(r * t.lda + q) * *t.b.add(s * t.ldb + q);
                }
                let d = t.c.offset(r as isize * t.rs_c + s as isize * t.cs_c);
                *d = if t.accumulate { *d + v } else { v };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 sums, over shapes with every edge tile and `k % 8` tail, strided C, and
    /// accumulation; NaN-filled C checks that every element is written and none outside.
    #[test]
    fn matches_f64_dot_products() {
        if !suits(128) {
            return;
        }
        let val = |i: usize| ((i * 7919 % 1000) as f32 - 500.0) / 250.0;
        for (m, n, k) in [
            (6, 25, 3136),
            (16, 150, 400),
            (1, 1, 128),
            (5, 7, 133),
            (4, 9, 250),
        ] {
            let (lda, ldb) = (k + 3, k + 5);
            let a: Vec<f32> = (0..m * lda).map(val).collect();
            let b: Vec<f32> = (0..n * ldb).map(|i| val(i + 17)).collect();
            for accumulate in [false, true] {
                // C transposed, with a gap: element (i, j) at j * (m + 2) + i
                let ld = m + 2;
                let mut c = vec![f32::NAN; n * ld];
                if accumulate {
                    c.iter_mut().enumerate().for_each(|(i, v)| *v = val(i + 3));
                }
                let before = c.clone();
                // SAFETY: AVX2 present (checked); extents as allocated.
                unsafe {
                    sgemm_dots(
                        m,
                        n,
                        k,
                        (a.as_ptr(), lda),
                        (b.as_ptr(), ldb),
                        (c.as_mut_ptr(), 1, ld as isize),
                        accumulate,
                    )
                };
                for j in 0..n {
                    for (i, &got) in c[j * ld..(j + 1) * ld].iter().enumerate() {
                        if i >= m {
                            assert!(got.is_nan() == before[j * ld + i].is_nan());
                            continue;
                        }
                        let terms = (0..k).map(|p| a[i * lda + p] as f64 * b[j * ldb + p] as f64);
                        let (mut want, size): (f64, f64) =
                            terms.fold((0.0, 0.0), |(s, z), t| (s + t, z + t.abs()));
                        if accumulate {
                            want += before[j * ld + i] as f64;
                        }
                        // f32 rounding is bounded by the sum of the terms' magnitudes
                        assert!(
                            (got as f64 - want).abs() <= 1e-5 * (1.0 + size),
                            "{m}x{n}x{k} acc {accumulate} ({i},{j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
