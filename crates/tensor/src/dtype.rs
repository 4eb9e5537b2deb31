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
    #[inline]
    fn erf_fn(self) -> Self {
        libm::erff(self)
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
