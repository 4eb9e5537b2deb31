//! Matrix multiplication through the `gemm` crate, which takes arbitrary row and column strides:
//! transposed operands are passed as swapped strides, never copied.

use crate::dtype::Float;
use gemm::Parallelism;

/// A strided view of a matrix: element (i, j) is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub struct MatPtr<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

impl<T> MatPtr<T> {
    /// No matrix (for an operand a kernel is given in another form, such as packed).
    pub fn null() -> Self {
        MatPtr {
            ptr: std::ptr::null(),
            rs: 0,
            cs: 0,
        }
    }
}

/// Whether a GEMM of this size is worth splitting across threads. Decided by the size alone:
/// one thread gets `Rayon(1)`, not `None`, because `None` also routes some shapes to a
/// different kernel ([`super::sgemm_dots`]), whose sums are ordered differently; deciding by
/// the thread count made one thread's bits differ from several threads'.
pub fn parallelism_for(m: usize, n: usize, k: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if m.saturating_mul(n).saturating_mul(k) >= 48 * 48 * 48 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// Whether [`gemm_into`] with `accumulate = false` writes every element of its destination
/// without reading it first for this type and shape, so that the destination need not be
/// initialised. True for f32 products that go to our kernel (which stores the first block of
/// sums); the `gemm` crate copies edge tiles of the destination before looking at its
/// coefficients, so it must always be given initialised memory.
pub fn writes_without_reading<T: Float>(m: usize, n: usize, k: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && k > 0
            && super::sgemm::suits(m, n, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k);
        false
    }
}

/// `dst = (accumulate ? dst : 0) + lhs (m x k) * rhs (k x n)`, dst m x n row-major with row
/// stride `dst_rs`.
///
/// # Safety
/// Pointers must be valid for the strided extents they describe, and `dst` must not alias the
/// operands.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_into<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    accumulate: bool,
    lhs: MatPtr<T>,
    rhs: MatPtr<T>,
    par: Parallelism,
) {
    unsafe { gemm_into_strided(m, n, k, dst, dst_rs, 1, accumulate, lhs, rhs, par) }
}

/// `dst = bias + lhs (m x k) * rhs (k x n)` with `bias` (n values, or none) added to every
/// row, dst m x n row-major and dense: a fully connected layer; with `relu`, `max(0, .)` of that
/// (as the relu op: NaN gives 0). With our f32 kernel the bias and the ReLU are applied as the
/// sums are stored (one pass over dst); otherwise dst is filled with the bias rows (or zeros)
/// first, the product accumulated onto them, and the ReLU applied in a second pass. `dst` may
/// be uninitialised.
///
/// # Safety
/// As [`gemm_into`]; `dst` is valid for `m * n` writes and `bias`, if any, holds `n` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_bias_into<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    (bias, relu): (Option<&[T]>, bool),
    lhs: MatPtr<T>,
    rhs: MatPtr<T>,
    par: Parallelism,
) {
    unsafe {
        #[cfg(target_arch = "x86_64")]
        if writes_without_reading::<T>(m, n, k) && !cfg!(feature = "openblas") {
            let d = (dst, n as isize, 1);
            let b = bias.map_or(std::ptr::null(), |b| b.as_ptr());
            return own_sgemm(m, n, k, d, false, (b, relu), lhs, rhs, par);
        }
        for i in 0..m {
            match bias {
                Some(b) => std::ptr::copy_nonoverlapping(b.as_ptr(), dst.add(i * n), n),
                // all-zero bits are 0.0 for f32 and f64
                None => std::ptr::write_bytes(dst.add(i * n), 0, n),
            }
        }
        gemm_into(m, n, k, dst, n as isize, true, lhs, rhs, par);
        if relu {
            let out = std::slice::from_raw_parts_mut(dst, m * n);
            out.iter_mut()
                .for_each(|v| *v = if *v > T::zero() { *v } else { T::zero() });
        }
    }
}

/// Our f32 kernel ([`super::sgemm::sgemm`]) on operands typed `T`, which the caller has checked
/// is f32; `dst` is (pointer, row stride, column stride), `bias` null or `n` values, `relu`
/// as in [`super::sgemm::sgemm`].
///
/// # Safety
/// `T` is f32; the pointers are valid for the strided extents they describe and `dst` does not
/// alias the operands, as for [`gemm_into`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn own_sgemm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    (dst, dst_rs, dst_cs): (*mut T, isize, isize),
    accumulate: bool,
    (bias, relu): (*const T, bool),
    lhs: MatPtr<T>,
    rhs: MatPtr<T>,
    par: Parallelism,
) {
    unsafe {
        debug_assert!(std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>());
        let threads = match par {
            Parallelism::Rayon(t) => t,
            _ => 1,
        };
        let cast = |p: MatPtr<T>| MatPtr {
            ptr: p.ptr as *const f32,
            rs: p.rs,
            cs: p.cs,
        };
        let (a, b, c) = (cast(lhs), cast(rhs), dst as *mut f32);
        let bias = bias as *const f32;
        super::sgemm::sgemm(
            m, n, k, a, b, c, dst_rs, dst_cs, accumulate, bias, relu, threads,
        );
    }
}

/// [`gemm_into`] with any destination strides (element (i, j) at `dst + i*dst_rs + j*dst_cs`).
///
/// # Safety
/// As [`gemm_into`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_into_strided<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: MatPtr<T>,
    rhs: MatPtr<T>,
    par: Parallelism,
) {
    unsafe {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    for j in 0..n {
                        *dst.offset(i as isize * dst_rs + j as isize * dst_cs) = T::zero();
                    }
                }
            }
            return;
        }
        #[cfg(feature = "openblas")]
        if dst_cs == 1
            && rayon::current_thread_index().is_none()
            && m * n * k >= 32 * 32 * 32
            && blas::try_gemm(m, n, k, dst, dst_rs, accumulate, lhs, rhs)
        {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && super::sgemm::suits(m, n, k)
        {
            let d = (dst, dst_rs, dst_cs);
            let epi = (std::ptr::null(), false);
            return own_sgemm(m, n, k, d, accumulate, epi, lhs, rhs, par);
        }
        // Few rows or columns, a long inner dimension along which both operands are contiguous
        // (a convolution's weight gradient): dot products of rows, nothing packed. Single-threaded,
        // so only where the caller parallelises around the product.
        #[cfg(target_arch = "x86_64")]
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
            && lhs.cs == 1
            && rhs.rs == 1
            && lhs.rs >= 0
            && rhs.cs >= 0
            && matches!(par, Parallelism::None)
            && super::sgemm_dots::suits(k)
        {
            return super::sgemm_dots::sgemm_dots(
                m,
                n,
                k,
                (lhs.ptr.cast::<f32>(), lhs.rs as usize),
                (rhs.ptr.cast::<f32>(), rhs.cs as usize),
                (dst.cast::<f32>(), dst_rs, dst_cs),
                accumulate,
            );
        }
        // gemm computes dst := alpha * dst + beta * lhs * rhs.
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// OpenBLAS for the products made outside rayon's workers (never from inside a parallel loop:
/// those use the `gemm` crate single-threaded, so the two thread pools never nest).
#[cfg(feature = "openblas")]
mod blas {
    use super::MatPtr;
    use crate::dtype::Float;
    use std::any::TypeId;

    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    extern "C" {
        #[allow(clippy::too_many_arguments)]
        fn cblas_sgemm(
            layout: i32,
            ta: i32,
            tb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        #[allow(clippy::too_many_arguments)]
        fn cblas_dgemm(
            layout: i32,
            ta: i32,
            tb: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f64,
            a: *const f64,
            lda: i32,
            b: *const f64,
            ldb: i32,
            beta: f64,
            c: *mut f64,
            ldc: i32,
        );
        fn openblas_set_num_threads(n: i32);
    }

    /// (transpose flag, leading dimension) of a strided operand of `rows x cols`, if BLAS can
    /// read it: one of its strides must be 1.
    fn operand<T>(p: &MatPtr<T>, rows: usize, cols: usize) -> Option<(i32, i32)> {
        if p.cs == 1 && p.rs >= cols.max(1) as isize {
            Some((NO_TRANS, p.rs as i32))
        } else if p.rs == 1 && p.cs >= rows.max(1) as isize {
            Some((TRANS, p.cs as i32))
        } else if rows == 1 && p.cs == 1 {
            Some((NO_TRANS, cols.max(1) as i32))
        } else if cols == 1 && p.rs == 1 {
            Some((TRANS, rows.max(1) as i32))
        } else {
            None
        }
    }

    /// # Safety
    /// As [`super::gemm_into`]: the pointers are valid for the strided extents they describe
    /// and `dst` does not alias the operands.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn try_gemm<T: Float>(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut T,
        dst_rs: isize,
        accumulate: bool,
        lhs: MatPtr<T>,
        rhs: MatPtr<T>,
    ) -> bool {
        unsafe {
            let (Some((ta, lda)), Some((tb, ldb))) = (operand(&lhs, m, k), operand(&rhs, k, n))
            else {
                return false;
            };
            if dst_rs < n as isize || [m, n, k].iter().any(|&d| d > i32::MAX as usize) {
                return false;
            }
            static THREADS: std::sync::Once = std::sync::Once::new();
            THREADS.call_once(|| openblas_set_num_threads(rayon::current_num_threads() as i32));
            let beta = if accumulate { 1.0 } else { 0.0 };
            let (m, n, k, ldc) = (m as i32, n as i32, k as i32, dst_rs as i32);
            if TypeId::of::<T>() == TypeId::of::<f32>() {
                cblas_sgemm(
                    ROW_MAJOR,
                    ta,
                    tb,
                    m,
                    n,
                    k,
                    1.0,
                    lhs.ptr as *const f32,
                    lda,
                    rhs.ptr as *const f32,
                    ldb,
                    beta as f32,
                    dst as *mut f32,
                    ldc,
                );
                true
            } else if TypeId::of::<T>() == TypeId::of::<f64>() {
                cblas_dgemm(
                    ROW_MAJOR,
                    ta,
                    tb,
                    m,
                    n,
                    k,
                    1.0,
                    lhs.ptr as *const f64,
                    lda,
                    rhs.ptr as *const f64,
                    ldb,
                    beta,
                    dst as *mut f64,
                    ldc,
                );
                true
            } else {
                false
            }
        }
    }
}
