//! Moving elements without arithmetic: views (reshape of a dense tensor, transpose, permute,
//! narrow, broadcast, squeeze, unsqueeze) that share storage, and copies (cat, stack, pad).
//!
//! Each view's gradient is the inverse movement of `g`: reshape back, transpose back, the inverse
//! permutation, zero-padding around a narrowed slice, summing over broadcast dims.

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::shape::{broadcast_shapes, resolve_dim, Shape};
use crate::storage::Storage;
use crate::tensor::{Dense, DenseSlice, Tensor};

impl Tensor {
    /// The same elements with another shape of equal element count. A view when the tensor is
    /// dense, otherwise a copy (as `torch.reshape`). `dx = reshape(g, x.shape)`.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {:?} ({} elements)",
                    self.dims(),
                    self.numel(),
                    shape.dims(),
                    shape.numel()
                ),
            ));
        }
        if shape.dims() == self.dims() {
            return Ok(self.clone());
        }
        let src = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let layout = src
            .layout()
            .reshape_view(shape.dims())
            .ok_or_else(|| Error::shape("reshape", "internal: dense layout refused a view"))?;
        let in_shape = self.shape().clone();
        Ok(src.view_op(layout, "reshape", move || {
            Box::new(move |_, g| Ok(vec![Some(g.reshape(in_shape.clone())?)]))
        }))
    }

    /// Reshape where one dim may be `-1`, inferred from the element count.
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        let known: usize = dims
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let holes = dims.iter().filter(|&&d| d == -1).count();
        if holes > 1 || dims.iter().any(|&d| d < -1) {
            return Err(Error::shape(
                "reshape",
                format!("at most one -1 and no other negative dims allowed, got {dims:?}"),
            ));
        }
        let shape: Vec<usize> = if holes == 1 {
            if known == 0 || !self.numel().is_multiple_of(known) {
                return Err(Error::shape(
                    "reshape",
                    format!("cannot infer -1 in {dims:?} for {:?}", self.dims()),
                ));
            }
            dims.iter()
                .map(|&d| {
                    if d == -1 {
                        self.numel() / known
                    } else {
                        d as usize
                    }
                })
                .collect()
        } else {
            dims.iter().map(|&d| d as usize).collect()
        };
        self.reshape(shape)
    }

    /// Flattens dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        let s = resolve_dim("flatten", start, self.dims())?;
        let e = resolve_dim("flatten", end, self.dims())?;
        if s > e {
            return Err(Error::value(
                "flatten",
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut shape: Vec<usize> = self.dims()[..s].to_vec();
        shape.push(self.dims()[s..=e].iter().product());
        shape.extend_from_slice(&self.dims()[e + 1..]);
        self.reshape(shape)
    }

    /// Swaps two dims (a view); `dx = transpose(g)`.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let a = resolve_dim("transpose", d0, self.dims())?;
        let b = resolve_dim("transpose", d1, self.dims())?;
        if a == b {
            return Ok(self.clone());
        }
        Ok(
            self.view_op(self.layout().transpose(a, b), "transpose", move || {
                Box::new(move |_, g| Ok(vec![Some(g.transpose(a as isize, b as isize)?)]))
            }),
        )
    }

    /// The transpose of a matrix (rank 2; rank 0 and 1 are returned as they are).
    pub fn t(&self) -> Result<Tensor> {
        match self.rank() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            r => Err(Error::shape(
                "t",
                format!(
                    "expects a tensor of rank <= 2, got rank {r} {:?}",
                    self.dims()
                ),
            )),
        }
    }

    /// Reorders dims (a view): output dim i is input dim `perm[i]`; `dx = permute(g, perm^-1)`.
    pub fn permute(&self, perm: &[isize]) -> Result<Tensor> {
        if perm.len() != self.rank() {
            return Err(Error::shape(
                "permute",
                format!(
                    "permutation {perm:?} does not match rank {} of {:?}",
                    self.rank(),
                    self.dims()
                ),
            ));
        }
        let mut p = Vec::with_capacity(perm.len());
        for &d in perm {
            let r = resolve_dim("permute", d, self.dims())?;
            if p.contains(&r) {
                return Err(Error::value(
                    "permute",
                    format!("dim {d} repeated in {perm:?}"),
                ));
            }
            p.push(r);
        }
        let mut inv = vec![0isize; p.len()];
        for (i, &pi) in p.iter().enumerate() {
            inv[pi] = i as isize;
        }
        Ok(self.view_op(self.layout().permute(&p), "permute", move || {
            Box::new(move |_, g| Ok(vec![Some(g.permute(&inv)?)]))
        }))
    }

    /// Elements `start..start+len` of `dim` (a view); `dx` is `g` zero-padded back to x's shape.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = resolve_dim("narrow", dim, self.dims())?;
        let size = self.dims()[d];
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(Error::shape(
                "narrow",
                format!(
                    "range {start}..{} is out of bounds for dim {dim} of size {size} (shape {:?})",
                    start.saturating_add(len),
                    self.dims()
                ),
            ));
        }
        let rank = self.rank();
        Ok(
            self.view_op(self.layout().narrow(d, start, len), "narrow", move || {
                Box::new(move |_, g| {
                    let mut pads = vec![(0, 0); rank];
                    pads[d] = (start, size - start - len);
                    Ok(vec![Some(g.pad(&pads, 0.0)?)])
                })
            }),
        )
    }

    /// A broadcast view to a larger shape (size-1 and missing leading dims repeat with stride 0);
    /// `dx = sum_to_shape(g, x.shape)`.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.dims() == self.dims() {
            return Ok(self.clone());
        }
        let check = broadcast_shapes("broadcast_to", self.dims(), shape.dims())?;
        if check != shape.dims() {
            return Err(Error::shape(
                "broadcast_to",
                format!("cannot broadcast {:?} to {:?}", self.dims(), shape.dims()),
            ));
        }
        let layout = self.layout().broadcast_to("broadcast_to", shape.dims())?;
        let in_shape = self.shape().clone();
        Ok(self.view_op(layout, "broadcast_to", move || {
            Box::new(move |_, g| Ok(vec![Some(g.sum_to_shape(&in_shape)?)]))
        }))
    }

    /// Alias of [`Tensor::broadcast_to`], as PyTorch's `expand`.
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.broadcast_to(shape)
    }

    /// Inserts a size-1 dim at `dim` (`-1` appends); a view.
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let rank = self.rank() as isize;
        let d = if dim < 0 { dim + rank + 1 } else { dim };
        if d < 0 || d > rank {
            return Err(Error::Dim {
                op: "unsqueeze",
                dim,
                rank: self.rank(),
                shape: self.dims().to_vec(),
            });
        }
        let in_shape = self.shape().clone();
        Ok(self.view_op(
            self.layout().unsqueeze(d as usize),
            "unsqueeze",
            move || Box::new(move |_, g| Ok(vec![Some(g.reshape(in_shape.clone())?)])),
        ))
    }

    /// Removes dim `dim`, which must have size 1; a view.
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("squeeze", dim, self.dims())?;
        if self.dims()[d] != 1 {
            return Err(Error::shape(
                "squeeze",
                format!(
                    "dim {dim} of {:?} has size {}, not 1",
                    self.dims(),
                    self.dims()[d]
                ),
            ));
        }
        let in_shape = self.shape().clone();
        Ok(self.view_op(self.layout().squeeze(d), "squeeze", move || {
            Box::new(move |_, g| Ok(vec![Some(g.reshape(in_shape.clone())?)]))
        }))
    }

    /// Removes every size-1 dim.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let shape: Vec<usize> = self.dims().iter().copied().filter(|&d| d != 1).collect();
        self.reshape(shape)
    }

    /// Joins tensors along an existing dim; all other dims must agree.
    /// `d tensors[i] = narrow(g, dim, offset_i, size_i)`.
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::value("cat", "needs at least one tensor"))?;
        let d = resolve_dim("cat", dim, first.dims())?;
        let mut out_shape = first.dims().to_vec();
        out_shape[d] = 0;
        for t in tensors {
            if t.dtype() != first.dtype() {
                return Err(Error::dtype_mismatch("cat", first.dtype(), t.dtype()));
            }
            let ok = t.rank() == first.rank()
                && t.dims()
                    .iter()
                    .enumerate()
                    .all(|(i, &s)| i == d || s == first.dims()[i]);
            if !ok {
                return Err(Error::shape(
                    "cat",
                    format!(
                        "shapes {:?} must match except in dim {dim}",
                        tensors
                            .iter()
                            .map(|t| t.dims().to_vec())
                            .collect::<Vec<_>>()
                    ),
                ));
            }
            out_shape[d] += t.dims()[d];
        }
        let outer: usize = out_shape[..d].iter().product();
        let inner: usize = out_shape[d + 1..].iter().product();
        let parts: Vec<Dense> = tensors.iter().map(|t| t.contiguous_storage()).collect();
        macro_rules! join {
            ($variant:ident, $ty:ty, $ctor:ident) => {{
                let mut out: Vec<$ty> = Vec::with_capacity(out_shape.iter().product());
                for o in 0..outer {
                    for (t, p) in tensors.iter().zip(&parts) {
                        let Dense::$variant(v) = p else {
                            unreachable!("dtype checked")
                        };
                        let w = t.dims()[d] * inner;
                        out.extend_from_slice(&v[o * w..(o + 1) * w]);
                    }
                }
                Storage::$ctor(out)
            }};
        }
        let st = match &parts[0] {
            Dense::F32(_) => join!(F32, f32, new_f32),
            Dense::F64(_) => join!(F64, f64, new_f64),
            Dense::I64(_) => join!(I64, i64, new_i64),
        };
        let sizes: Vec<usize> = tensors.iter().map(|t| t.dims()[d]).collect();
        Ok(Tensor::op_result(
            st,
            out_shape,
            "cat",
            tensors,
            move || {
                Box::new(move |_, g| {
                    let mut off = 0;
                    let mut grads = Vec::with_capacity(sizes.len());
                    for &s in &sizes {
                        grads.push(Some(g.narrow(d as isize, off, s)?));
                        off += s;
                    }
                    Ok(grads)
                })
            },
        ))
    }

    /// Joins tensors of one shape along a new dim.
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::value("stack", "needs at least one tensor"))?;
        for t in tensors {
            if t.dims() != first.dims() {
                return Err(Error::shape(
                    "stack",
                    format!(
                        "all tensors must have one shape, got {:?} and {:?}",
                        first.dims(),
                        t.dims()
                    ),
                ));
            }
        }
        let un: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(dim))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = un.iter().collect();
        Tensor::cat(&refs, dim)
    }

    /// Splits into views of `size` along `dim` (the last one may be smaller).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = resolve_dim("split", dim, self.dims())?;
        if size == 0 {
            return Err(Error::value("split", "split size must be positive"));
        }
        let n = self.dims()[d];
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(dim, s, size.min(n - s)))
            .collect()
    }

    /// Splits into `chunks` views along `dim`, as `torch.chunk` (each of size ceil(n / chunks)).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(Error::value("chunk", "number of chunks must be positive"));
        }
        let d = resolve_dim("chunk", dim, self.dims())?;
        let n = self.dims()[d];
        self.split(n.div_ceil(chunks).max(1), dim)
    }

    /// Pads with a constant: `pads[i] = (before, after)` for dim i (one pair per dim, first dim
    /// first — unlike `F.pad`, which lists the last dim first). `dx = narrow(g)` to the original.
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        if pads.len() != self.rank() {
            return Err(Error::shape(
                "pad",
                format!(
                    "need one (before, after) pair per dim of {:?}, got {}",
                    self.dims(),
                    pads.len()
                ),
            ));
        }
        let out_shape: Vec<usize> = self
            .dims()
            .iter()
            .zip(pads)
            .map(|(&d, &(a, b))| d + a + b)
            .collect();
        // write x into the interior of the output through a strided layout over it
        let mut interior = Layout::contiguous(out_shape.clone());
        for (i, &(a, _)) in pads.iter().enumerate() {
            interior = interior.narrow(i, a, self.dims()[i]);
        }
        let n: usize = out_shape.iter().product();
        // the input's rows (along the last dim) land on contiguous runs of the output: copy
        // them whole (a narrow's backward pads every gradient, e.g. the q, k, v split of
        // attention's fused projection, so this runs three times per layer and step)
        let inner = self.dims().last().copied().unwrap_or(1);
        macro_rules! fill {
            ($src:expr, $v:expr, $ctor:ident) => {{
                let src = $src;
                let mut o = vec![$v; n];
                if inner > 0 {
                    for (r, row) in src.chunks(inner).enumerate() {
                        let at = crate::cpu::row_start(&interior, r);
                        o[at..at + inner].copy_from_slice(row);
                    }
                }
                Storage::$ctor(o)
            }};
        }
        let st = match self.dense().get() {
            DenseSlice::F32(s) => fill!(s, value as f32, new_f32),
            DenseSlice::F64(s) => fill!(s, value, new_f64),
            DenseSlice::I64(s) => fill!(s, value as i64, new_i64),
        };
        let pads = pads.to_vec();
        let in_dims = self.dims().to_vec();
        Ok(Tensor::op_result(
            st,
            out_shape,
            "pad",
            &[self],
            move || {
                Box::new(move |_, g| {
                    let mut r = g.clone();
                    for (i, &(a, _)) in pads.iter().enumerate() {
                        r = r.narrow(i as isize, a, in_dims[i])?;
                    }
                    Ok(vec![Some(r)])
                })
            },
        ))
    }
}
