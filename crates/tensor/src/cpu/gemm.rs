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

/// Whether a GEMM of this size is worth splitting across threads.
pub fn parallelism_for(m: usize, n: usize, k: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 48 * 48 * 48 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
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
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.offset(i as isize * dst_rs + j as isize) = T::zero();
                }
            }
        }
        return;
    }
    // gemm computes dst := alpha * dst + beta * lhs * rhs.
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
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
