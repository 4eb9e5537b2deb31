//! Element types. Training runs in `f32`; gradient checks run in `f64`; `i64` holds indices
//! (class labels, token ids, arg-max results) and is not differentiable. Half types (bf16, f16)
//! would be further variants here and further arms in `Storage`.

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
}

impl DType {
    /// Size in bytes of one element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }
    /// Whether values of this type can carry gradients.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
        })
    }
}

/// A floating-point element type the kernels are generic over.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + Send
    + Sync
    + Default
    + fmt::Debug
    + fmt::Display
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + 'static
{
    const DTYPE: DType;
    fn cast(v: f64) -> Self;
    fn as_f64(self) -> f64;
    /// The error function, erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt.
    fn erf_fn(self) -> Self;
    /// `e^x`, written so that loops over it vectorise (f32); f64 keeps libm's.
    fn exp_fn(self) -> Self;
    /// `tanh(x)`, vectorisable for f32 (see the f32 implementation); f64 keeps libm's.
    fn tanh_fn(self) -> Self;
    /// The logistic function `1 / (1 + e^-x)` through [`Float::exp_fn`]: 0 for large negative
    /// `x` (the exponential overflows to infinity), 1 for large positive `x`.
    #[inline]
    fn sigmoid_fn(self) -> Self {
        Self::one() / (Self::one() + (-self).exp_fn())
    }
    /// [`Float::sigmoid_fn`] with its polynomial in fused multiply-adds (f32; f64 keeps
    /// libm's), for loops compiled by [`crate::cpu::simd::with_avx2`], where each is one
    /// instruction; elsewhere each is a call to libm's `fmaf`. The same range handling; at
    /// most an ulp or two from `sigmoid_fn` (rounded once where it rounds twice).
    #[inline]
    fn sigmoid_fma(self) -> Self {
        self.sigmoid_fn()
    }
    /// [`Float::tanh_fn`] in fused multiply-adds, as [`Float::sigmoid_fma`].
    #[inline]
    fn tanh_fma(self) -> Self {
        self.tanh_fn()
    }
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    #[inline]
    fn cast(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    /// A rational approximation, `x P(x^2) / Q(x^2)` on `[-4, 4]` (erf is +-1 in f32 beyond),
    /// fitted here by iterated weighted least squares: max abs error 4e-7 against f64 erf over
    /// `[-5, 5]` (libm's erff: 6e-8), and branch-free, so loops over it vectorise. GELU spends
    /// most of its time here.
    #[inline]
    fn erf_fn(self) -> Self {
        const P: [f32; 7] = [
            1.128_378_9,
            0.206_113_62,
            0.051_386_006,
            0.003_965_618,
            1.482_245_9e-4,
            -1.977_515_7e-6,
            1.966_793_1e-8,
        ];
        const Q: [f32; 5] = [
            1.0,
            0.515_992_6,
            0.117_553_34,
            0.014_880_657,
            0.001_020_473_9,
        ];
        let x = self.clamp(-4.0, 4.0);
        let z = x * x;
        let mut p = P[6];
        for c in P[..6].iter().rev() {
            p = p * z + *c;
        }
        let mut q = Q[4];
        for c in Q[..4].iter().rev() {
            q = q * z + *c;
        }
        (x * p / q).clamp(-1.0, 1.0)
    }
    /// `e^x = 2^n e^r` with `n = round(x / ln 2)` and `r = x - n ln 2` (ln 2 split in two parts
    /// so `r` is exact), `e^r` by Cephes' degree-7 polynomial for expf (about 1 ulp), and `2^n`
    /// applied as two normal powers of two so that overflow gives infinity and underflow
    /// rounds into the subnormals and to 0 as it should. No branches and no libm call: libm's
    /// expf was the largest single cost of attention's softmax. NaN stays NaN.
    #[inline]
    fn exp_fn(self) -> Self {
        exp_f32::<false>(self)
    }
    /// For `|x| >= 1/4`, `1 - 2 / (e^(2|x|) + 1)` with the sign restored: its subtraction
    /// loses at most two bits there. Below, where it would lose more, the odd Taylor series to
    /// `x^9` (the next term is below `1e-8 |x|`). Both are computed and one is selected, so the
    /// loop has no branch and vectorises; libm's tanhf does not, and an LSTM step calls it twice
    /// per unit.
    #[inline]
    fn tanh_fn(self) -> Self {
        tanh_f32::<false>(self)
    }
    #[inline]
    fn sigmoid_fma(self) -> Self {
        1.0 / (1.0 + exp_f32::<true>(-self))
    }
    #[inline]
    fn tanh_fma(self) -> Self {
        tanh_f32::<true>(self)
    }
}

/// [`Float::exp_fn`] for f32; `FUSED`: each multiply-add fused (one rounding instead of two),
/// the same reduction (exact either way: `n ln 2`'s high part has few bits), polynomial and
/// scaling.
#[inline(always)]
fn exp_f32<const FUSED: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits
    const SHIFTER: f32 = 12_582_912.0;
    // `a b + c`; unfused, `n (-h) + x` is exactly `x - n h`
    let madd = |a: f32, b: f32, c: f32| if FUSED { a.mul_add(b, c) } else { a * b + c };
    // e^-104 is 0 in f32 and e^88.73 is infinite: nothing changes beyond
    let x = x.clamp(-104.0, 88.73);
    let t = madd(x, LOG2E, SHIFTER);
    let n = t - SHIFTER;
    let r = madd(n, -LN2_LO, madd(n, -LN2_HI, x));
    let mut p = 1.987_569_1e-4_f32;
    p = madd(p, r, 1.398_199_9e-3);
    p = madd(p, r, 8.333_452e-3);
    p = madd(p, r, 4.166_579_6e-2);
    p = madd(p, r, 1.666_666_5e-1);
    p = madd(p, r, 0.5);
    let er = if FUSED {
        p.mul_add(r * r, r)
    } else {
        p * r * r + r
    } + 1.0;
    // n in [-150, 128]: 2^n = 2^k1 2^k2 with both halves normal numbers
    let k = t.to_bits() as i32 - SHIFTER.to_bits() as i32;
    let k1 = k >> 1;
    let pow2 = |e: i32| f32::from_bits(((e + 127) << 23) as u32);
    er * pow2(k1) * pow2(k - k1)
}

/// [`Float::tanh_fn`] for f32, `FUSED` as in [`exp_f32`].
#[inline(always)]
fn tanh_f32<const FUSED: bool>(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp_f32::<FUSED>(2.0 * a) + 1.0);
    let z = a * a;
    let small = if FUSED {
        let p = z.mul_add(62.0 / 2835.0, -17.0 / 315.0);
        let p = z.mul_add(p, 2.0 / 15.0);
        let p = z.mul_add(p, -1.0 / 3.0);
        (a * z).mul_add(p, a)
    } else {
        a * (1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0)))))
    };
    let t = if a < 0.25 { small } else { big };
    // NaN stays NaN: both branches carry it
    t.copysign(x)
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    #[inline]
    fn cast(v: f64) -> Self {
        v
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline]
    fn erf_fn(self) -> Self {
        libm::erf(self)
    }
    #[inline]
    fn exp_fn(self) -> Self {
        self.exp()
    }
    #[inline]
    fn tanh_fn(self) -> Self {
        self.tanh()
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, Float};

    /// A named f32 function: the plain and the fused version of each are tested alike.
    type Named = (&'static str, fn(f32) -> f32);

    /// Plain and fused exponentials (the fused one as the CPU computes it with or without
    /// FMA instructions: `mul_add` is exact either way).
    const EXPS: [Named; 2] = [("exp_fn", f32::exp_fn), ("exp_fma", exp_f32::<true>)];

    #[test]
    fn f32_exp_is_within_two_ulp_of_f64_exp() {
        for (name, exp) in EXPS {
            let mut worst = 0.0f64;
            let mut x = -103.0f32;
            while x < 88.7 {
                let want = (x as f64).exp();
                let got = exp(x) as f64;
                // relative error in units of f32 epsilon, for normal results
                if want > f32::MIN_POSITIVE as f64 {
                    worst = worst.max(((got - want) / want).abs() / f32::EPSILON as f64);
                } else {
                    assert!(
                        (got - want).abs() <= 2.0 * 1.4e-45,
                        "{name}({x}): {got} vs {want}"
                    );
                }
                x += 0.001_3;
            }
            assert!(worst <= 2.0, "{name}: worst error {worst} ulp");
            assert_eq!(exp(f32::NEG_INFINITY), 0.0, "{name}");
            assert_eq!(exp(-200.0), 0.0, "{name}");
            assert_eq!(exp(0.0), 1.0, "{name}");
            assert_eq!(exp(89.0), f32::INFINITY, "{name}");
            assert_eq!(exp(f32::INFINITY), f32::INFINITY, "{name}");
            assert!(exp(f32::NAN).is_nan(), "{name}");
        }
    }

    #[test]
    fn f32_tanh_is_within_four_ulp_of_f64_tanh() {
        let tanhs: [Named; 2] = [("tanh_fn", f32::tanh_fn), ("tanh_fma", f32::tanh_fma)];
        for (name, tanh) in tanhs {
            let mut worst = 0.0f64;
            let mut x = -12.0f32;
            while x < 12.0 {
                let want = (x as f64).tanh();
                let got = tanh(x) as f64;
                if want != 0.0 {
                    worst = worst.max(((got - want) / want).abs() / f32::EPSILON as f64);
                }
                x += 0.000_73;
            }
            assert!(worst <= 4.0, "{name}: worst error {worst} ulp");
            assert_eq!(tanh(0.0), 0.0, "{name}");
            assert_eq!(tanh(1e-30), 1e-30, "{name}");
            assert_eq!(tanh(f32::INFINITY), 1.0, "{name}");
            assert_eq!(tanh(f32::NEG_INFINITY), -1.0, "{name}");
            assert!(tanh(f32::NAN).is_nan(), "{name}");
        }
    }

    #[test]
    fn f32_sigmoid_is_within_three_ulp_of_f64_sigmoid() {
        let sigmoids: [Named; 2] = [
            ("sigmoid_fn", f32::sigmoid_fn),
            ("sigmoid_fma", f32::sigmoid_fma),
        ];
        for (name, sigmoid) in sigmoids {
            let mut worst = 0.0f64;
            let mut x = -80.0f32;
            while x < 20.0 {
                let want = 1.0 / (1.0 + (-(x as f64)).exp());
                let got = sigmoid(x) as f64;
                worst = worst.max(((got - want) / want).abs() / f32::EPSILON as f64);
                x += 0.000_91;
            }
            assert!(worst <= 3.0, "{name}: worst error {worst} ulp");
            assert_eq!(sigmoid(-200.0), 0.0, "{name}");
            assert_eq!(sigmoid(200.0), 1.0, "{name}");
            assert_eq!(sigmoid(0.0), 0.5, "{name}");
            assert!(sigmoid(f32::NAN).is_nan(), "{name}");
        }
    }
}
