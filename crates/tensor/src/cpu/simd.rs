//! Runtime dispatch to AVX2 code for compute-bound loops.
//!
//! The build targets baseline x86-64 (SSE2) so that one binary runs on any x86-64 machine; loops
//! the compiler vectorises then use 4-lane vectors. [`with_avx2`] runs a closure inside a
//! function compiled with AVX2 and FMA enabled, where the same loops (inlined into it) become
//! 8-lane vectors, when the CPU has them. Rust never contracts `a * b + c` into a fused
//! multiply-add on its own, so both versions compute bit-identical results: only the vector
//! width differs, never the arithmetic or its order.

/// Whether this CPU has AVX2 and FMA (checked once).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f`, compiled for AVX2 when the CPU has it. `f` and what it calls should be inlinable
/// (small, `#[inline]`) for the wider vectors to reach its loops.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { run_avx2(f) };
    }
    f()
}

/// # Safety
/// The CPU has AVX2 and FMA (checked once by the caller).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Whether this CPU has AVX-512 F, VL and DQ (checked once), and `FERROGRAD_NO_AVX512` does not
/// ask to leave it unused.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            has_avx2()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq")
                && std::env::var_os("FERROGRAD_NO_AVX512").is_none_or(|v| v == "0")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`with_avx2`], compiled with AVX-512 as well where the CPU has it: loops with many live
/// values (the recurrent gates: five exponentials a unit) get 32 vector registers instead of
/// 16 and stop spilling. Same arithmetic in the same order, so the same bits.
#[inline(always)]
pub fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { run_avx512(f) };
    }
    with_avx2(f)
}

/// # Safety
/// The CPU has AVX-512 F, VL and DQ, AVX2 and FMA (checked once by the caller).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Float;

    /// The kernels' elementwise maths, as the ops use it.
    #[inline(always)]
    fn maths<T: Float>(xs: &[T]) -> Vec<T> {
        xs.iter()
            .map(|&x| {
                let g = x
                    * T::cast(0.5)
                    * (T::one() + (x * T::cast(std::f64::consts::FRAC_1_SQRT_2)).erf_fn());
                let s = T::one() / (T::one() + (-x).exp_fn());
                g + s * x.abs().sqrt() - x.exp_fn().max(T::zero()) / (x * x + T::one())
            })
            .collect()
    }

    #[test]
    fn avx2_loops_compute_bit_identical_results() {
        // exp over its whole range (under- and overflow included), erf, sqrt, division
        let xs32: Vec<f32> = (0..200_003).map(|i| -110.0 + i as f32 * 0.001).collect();
        let xs64: Vec<f64> = xs32.iter().map(|&x| x as f64 * 1.37).collect();
        let (plain32, plain64) = (maths(&xs32), maths(&xs64));
        let (wide32, wide64) = (
            with_avx2(
                #[inline(always)]
                || maths(&xs32),
            ),
            with_avx2(
                #[inline(always)]
                || maths(&xs64),
            ),
        );
        assert!(plain32
            .iter()
            .zip(&wide32)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(plain64
            .iter()
            .zip(&wide64)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
