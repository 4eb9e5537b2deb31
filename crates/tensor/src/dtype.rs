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
}
