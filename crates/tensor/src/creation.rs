//! Making tensors: from data, filled, ranges, identity, random (seeded), and reading them back.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::{Dense, Tensor};

/// A Rust element type a tensor can be built from and read back as.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn into_storage(v: Vec<Self>) -> Storage;
    fn from_dense(d: Dense) -> Option<Vec<Self>>;
    /// The typed buffer of a storage of this element type.
    fn buffer_mut(s: &mut Storage) -> Option<&mut Vec<Self>>;
    /// The typed buffer, read-only.
    fn buffer(s: &Storage) -> Option<&Vec<Self>>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn into_storage(v: Vec<Self>) -> Storage {
        Storage::new_f32(v)
    }
    fn from_dense(d: Dense) -> Option<Vec<Self>> {
        match d {
            Dense::F32(v) => Some(v),
            _ => None,
        }
    }
    fn buffer_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
        match s {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn buffer(s: &Storage) -> Option<&Vec<Self>> {
        match s {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn into_storage(v: Vec<Self>) -> Storage {
        Storage::new_f64(v)
    }
    fn from_dense(d: Dense) -> Option<Vec<Self>> {
        match d {
            Dense::F64(v) => Some(v),
            _ => None,
        }
    }
    fn buffer_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
        match s {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn buffer(s: &Storage) -> Option<&Vec<Self>> {
        match s {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
}
impl Element for i64 {
    const DTYPE: DType = DType::I64;
    fn into_storage(v: Vec<Self>) -> Storage {
        Storage::new_i64(v)
    }
    fn from_dense(d: Dense) -> Option<Vec<Self>> {
        match d {
            Dense::I64(v) => Some(v),
            _ => None,
        }
    }
    fn buffer_mut(s: &mut Storage) -> Option<&mut Vec<Self>> {
        match s {
            Storage::I64(v) => Some(v),
            _ => None,
        }
    }
    fn buffer(s: &Storage) -> Option<&Vec<Self>> {
        match s {
            Storage::I64(v) => Some(v),
            _ => None,
        }
    }
}

/// Builds storage of `dtype` from f64 values.
pub(crate) fn storage_from_f64(values: Vec<f64>, dtype: DType) -> Storage {
    match dtype {
        DType::F32 => Storage::new_f32(values.into_iter().map(|v| v as f32).collect()),
        DType::F64 => Storage::new_f64(values),
        DType::I64 => Storage::new_i64(values.into_iter().map(|v| v as i64).collect()),
    }
}

/// The machine's physical memory in bytes (`MemTotal` of `/proc/meminfo`), read once; `None`
/// where it cannot be read.
pub fn physical_memory() -> Option<u64> {
    static MEM: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *MEM.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The element count of a new tensor of `shape` and `dtype`, checked before anything is
/// allocated: the product of the dims must not overflow, and the bytes must fit in this
/// machine's physical memory (a size from a flag or a file that could never be held is an
/// error naming the op and the shape, not an abort in the allocator or an out-of-memory kill).
pub fn checked_size(op: &'static str, shape: &Shape, dtype: DType) -> Result<usize> {
    let n = shape.checked_numel(op)?;
    let bytes = (n as u64).saturating_mul(dtype.size_in_bytes() as u64);
    if let Some(mem) = physical_memory() {
        if bytes > mem {
            return Err(Error::shape(
                op,
                format!(
                    "a {dtype} tensor of shape {:?} needs {}, more than this machine's {} of memory",
                    shape.dims(),
                    crate::files::human_size(bytes),
                    crate::files::human_size(mem)
                ),
            ));
        }
    }
    Ok(n)
}

fn filled(n: usize, value: f64, dtype: DType) -> Storage {
    match dtype {
        DType::F32 => Storage::new_f32(vec![value as f32; n]),
        DType::F64 => Storage::new_f64(vec![value; n]),
        DType::I64 => Storage::new_i64(vec![value as i64; n]),
    }
}

impl Tensor {
    /// A tensor of `shape` owning `data` (row-major). Errors when the lengths differ.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "from_vec",
                format!(
                    "{} values cannot fill shape {:?} ({} elements)",
                    data.len(),
                    shape.dims(),
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor::from_storage(T::into_storage(data), shape))
    }

    /// A tensor of `shape` copied from a slice.
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A 0-dim tensor holding one value.
    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_storage(T::into_storage(vec![v]), Shape::scalar())
    }

    /// A tensor of `shape` and `dtype` every element of which is `value`.
    /// A tensor of `shape` filled with `value`; errors when the shape's size overflows or
    /// exceeds the machine's memory ([`checked_size`]).
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Result<Tensor> {
        let shape = shape.into();
        let n = checked_size("full", &shape, dtype)?;
        Ok(Tensor::from_storage(filled(n, value, dtype), shape))
    }
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        Self::full(shape, 0.0, dtype)
    }
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Result<Tensor> {
        Self::full(shape, 1.0, dtype)
    }
    /// Like another tensor, whose shape was checked when it was made: these cannot fail.
    pub fn full_like(t: &Tensor, value: f64) -> Tensor {
        Tensor::from_storage(filled(t.numel(), value, t.dtype()), t.shape())
    }
    pub fn zeros_like(t: &Tensor) -> Tensor {
        Self::full_like(t, 0.0)
    }
    pub fn ones_like(t: &Tensor) -> Tensor {
        Self::full_like(t, 1.0)
    }

    /// `[start, start + step, ...]` up to but excluding `end`, as `torch.arange`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::value(
                "arange",
                format!("need finite bounds and a non-zero step, got start {start}, end {end}, step {step}"),
            ));
        }
        if (end - start) * step < 0.0 {
            return Err(Error::value(
                "arange",
                format!("step {step} moves away from end {end} (start {start})"),
            ));
        }
        let count = ((end - start) / step).ceil().max(0.0);
        let n = checked_size(
            "arange",
            &Shape::new([count.min(usize::MAX as f64) as usize]),
            dtype,
        )?;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Ok(Tensor::from_storage(storage_from_f64(v, dtype), [n]))
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive, as `torch.linspace`.
    pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType) -> Result<Tensor> {
        checked_size("linspace", &Shape::new([steps]), dtype)?;
        let v: Vec<f64> = match steps {
            0 => vec![],
            1 => vec![start],
            _ => {
                let step = (end - start) / (steps - 1) as f64;
                // Like PyTorch, fill the second half from the end so `end` is exact.
                let half = steps / 2;
                (0..steps)
                    .map(|i| {
                        if i < half {
                            start + step * i as f64
                        } else {
                            end - step * (steps - 1 - i) as f64
                        }
                    })
                    .collect()
            }
        };
        Ok(Tensor::from_storage(storage_from_f64(v, dtype), [steps]))
    }

    /// The `n x n` identity matrix.
    pub fn eye(n: usize, dtype: DType) -> Result<Tensor> {
        checked_size("eye", &Shape::new([n, n]), DType::F64)?;
        let mut v = vec![0.0; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Ok(Tensor::from_storage(storage_from_f64(v, dtype), [n, n]))
    }

    /// Uniform samples in `[low, high)` from a seeded generator (row-major order, so the values
    /// depend only on the seed).
    pub fn uniform(
        shape: impl Into<Shape>,
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if low.partial_cmp(&high).is_none_or(|o| o.is_gt()) || !low.is_finite() || !high.is_finite()
        {
            return Err(Error::value(
                "uniform",
                format!("need finite low <= high, got [{low}, {high})"),
            ));
        }
        let n = checked_size("uniform", &shape, dtype)?;
        let st = match dtype {
            DType::F32 => {
                let (lo, w) = (low as f32, (high - low) as f32);
                Storage::new_f32((0..n).map(|_| lo + w * rng.next_f32()).collect())
            }
            DType::F64 => Storage::new_f64(
                (0..n)
                    .map(|_| low + (high - low) * rng.next_f64())
                    .collect(),
            ),
            DType::I64 => return Err(Error::dtype_unsupported("uniform", dtype)),
        };
        Ok(Tensor::from_storage(st, shape))
    }

    /// Uniform samples in `[0, 1)`.
    pub fn rand(shape: impl Into<Shape>, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
        Self::uniform(shape, 0.0, 1.0, dtype, rng)
    }

    /// Normal samples with mean `mean` and standard deviation `std`.
    pub fn normal(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        if !dtype.is_float() {
            return Err(Error::dtype_unsupported("normal", dtype));
        }
        if std.is_nan() || std < 0.0 || !mean.is_finite() || !std.is_finite() {
            return Err(Error::value(
                "normal",
                format!("need finite mean and std >= 0, got mean {mean}, std {std}"),
            ));
        }
        let shape = shape.into();
        // the values are drawn in f64 first
        let n = checked_size("normal", &shape, DType::F64)?;
        let v: Vec<f64> = (0..n).map(|_| mean + std * rng.normal()).collect();
        Ok(Tensor::from_storage(storage_from_f64(v, dtype), shape))
    }

    /// Standard normal samples.
    pub fn randn(shape: impl Into<Shape>, dtype: DType, rng: &mut Rng) -> Result<Tensor> {
        Self::normal(shape, 0.0, 1.0, dtype, rng)
    }
    pub fn rand_like(t: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        Self::rand(t.shape(), t.dtype(), rng)
    }
    pub fn randn_like(t: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        Self::randn(t.shape(), t.dtype(), rng)
    }

    // ---------------------------------------------------------------- reading back

    /// The elements in row-major order as `T`; errors when `T` is not this tensor's dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        T::from_dense(self.contiguous_storage()).ok_or_else(|| Error::DType {
            op: "to_vec",
            msg: format!("tensor has dtype {}, asked for {}", self.dtype(), T::DTYPE),
        })
    }

    /// The elements converted to f64, whatever the dtype.
    pub fn to_vec_f64(&self) -> Vec<f64> {
        match self.contiguous_storage() {
            Dense::F32(v) => v.into_iter().map(|x| x as f64).collect(),
            Dense::F64(v) => v,
            Dense::I64(v) => v.into_iter().map(|x| x as f64).collect(),
        }
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!(
                    "only one-element tensors can be read as a scalar, got shape {:?}",
                    self.dims()
                ),
            ));
        }
        Ok(self.to_vec_f64()[0])
    }

    /// A dense tensor with the same values (a cheap handle clone when already dense). Gradient
    /// flows through unchanged.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let st = self.contiguous_storage().into_storage();
        Ok(Tensor::op_result(
            st,
            self.shape(),
            "contiguous",
            &[self],
            || Box::new(|_, g| Ok(vec![Some(g.clone())])),
        ))
    }

    /// Converts to another dtype; the gradient is converted back.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let st = match self.contiguous_storage() {
            Dense::F32(v) => match dtype {
                DType::F64 => Storage::new_f64(v.into_iter().map(|x| x as f64).collect()),
                _ => Storage::new_i64(v.into_iter().map(|x| x as i64).collect()),
            },
            Dense::F64(v) => match dtype {
                DType::F32 => Storage::new_f32(v.into_iter().map(|x| x as f32).collect()),
                _ => Storage::new_i64(v.into_iter().map(|x| x as i64).collect()),
            },
            Dense::I64(v) => match dtype {
                DType::F32 => Storage::new_f32(v.into_iter().map(|x| x as f32).collect()),
                _ => Storage::new_f64(v.into_iter().map(|x| x as f64).collect()),
            },
        };
        let src = self.dtype();
        let track = dtype.is_float();
        let inputs: &[&Tensor] = if track { &[self] } else { &[] };
        Ok(Tensor::op_result(
            st,
            self.shape(),
            "to_dtype",
            inputs,
            move || Box::new(move |_, g| Ok(vec![Some(g.to_dtype(src)?)])),
        ))
    }
}
