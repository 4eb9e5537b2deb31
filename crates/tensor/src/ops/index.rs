//! Indexing by integer (i64) index tensors: index_select, gather, scatter_add, embedding
//! lookup and one_hot. Indices are checked against the indexed dim: an index out of range is an
//! error naming it, never a panic or a silent wrap.
//!
//! `y = index_select(x, d, idx)`: `dx = index_add(zeros_like(x), d, idx, g)`.
//! `y = gather(x, d, idx)`: `dx = scatter_add(zeros_like(x), d, idx, g)`.
//! `y = scatter_add(x, d, idx, s)`: `dx = g`, `ds = gather(g, d, idx)`.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::resolve_dim;
use crate::storage::Storage;
use crate::tensor::{Dense, DenseSlice, Tensor};
use std::ops::AddAssign;

/// Applies a generic kernel to a borrowed [`DenseSlice`] of any dtype, keeping the dtype.
macro_rules! on_slice {
    ($d:expr, |$v:ident| $body:expr) => {
        match $d {
            DenseSlice::F32($v) => Storage::new_f32($body),
            DenseSlice::F64($v) => Storage::new_f64($body),
            DenseSlice::I64($v) => Storage::new_i64($body),
        }
    };
}

pub(crate) fn index_values(op: &'static str, idx: &Tensor, bound: usize) -> Result<Vec<usize>> {
    if idx.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            msg: format!("indices must be i64, got {}", idx.dtype()),
        });
    }
    let v: Vec<i64> = idx.to_vec()?;
    v.into_iter()
        .map(|i| {
            if i < 0 || i as usize >= bound {
                Err(Error::value(
                    op,
                    format!("index {i} is out of range for a dim of size {bound}"),
                ))
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

/// (outer, size, inner) of `dims` around dim `d`.
fn split3(dims: &[usize], d: usize) -> (usize, usize, usize) {
    (
        dims[..d].iter().product(),
        dims[d],
        dims[d + 1..].iter().product(),
    )
}

fn select_kernel<T: Copy>(
    x: &[T],
    outer: usize,
    size: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &j in idx {
            let s = (o * size + j) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    out
}

fn index_add_kernel<T: Copy + Default + AddAssign>(
    g: &[T],
    outer: usize,
    size: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = vec![T::default(); outer * size * inner];
    for o in 0..outer {
        for (jj, &j) in idx.iter().enumerate() {
            let s = (o * idx.len() + jj) * inner;
            let d = (o * size + j) * inner;
            for (a, &b) in out[d..d + inner].iter_mut().zip(&g[s..s + inner]) {
                *a += b;
            }
        }
    }
    out
}

/// Position in a dense `xdims` tensor of the element that `gather` reads for the element at
/// linear position `lin` of a dense `idims` index tensor.
fn gather_position(
    lin: usize,
    idims: &[usize],
    xstrides: &[usize],
    dim: usize,
    iv: usize,
) -> usize {
    let mut rem = lin;
    let mut pos = 0;
    for d in (0..idims.len()).rev() {
        let c = rem % idims[d];
        rem /= idims[d];
        pos += if d == dim { iv } else { c } * xstrides[d];
    }
    pos
}

fn check_gather_shapes(op: &'static str, x: &[usize], idx: &[usize], dim: usize) -> Result<()> {
    if x.len() != idx.len()
        || x.iter()
            .zip(idx)
            .enumerate()
            .any(|(d, (&a, &b))| d != dim && b > a)
    {
        return Err(Error::shape(
            op,
            format!("index shape {idx:?} must have the rank of {x:?} and no larger dims outside dim {dim}"),
        ));
    }
    Ok(())
}

impl Tensor {
    /// Rows (slices along `dim`) picked by a 1-D i64 index tensor.
    pub fn index_select(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("index_select", dim, self.dims())?;
        if idx.rank() != 1 {
            return Err(Error::shape(
                "index_select",
                format!("index must be 1-D, got shape {:?}", idx.dims()),
            ));
        }
        let (outer, size, inner) = split3(self.dims(), d);
        let iv = index_values("index_select", idx, size)?;
        let st = on_slice!(self.dense().get(), |v| select_kernel(
            v, outer, size, inner, &iv
        ));
        let mut shape = self.dims().to_vec();
        shape[d] = iv.len();
        let inputs: &[&Tensor] = if self.dtype().is_float() {
            &[self]
        } else {
            &[]
        };
        Ok(Tensor::op_result(
            st,
            shape,
            "index_select",
            inputs,
            move || {
                Box::new(move |_, g| {
                    let st = on_slice!(g.dense().get(), |v| index_add_kernel(
                        v, outer, size, inner, &iv
                    ));
                    let mut xs = g.dims().to_vec();
                    xs[d] = size;
                    Ok(vec![Some(Tensor::from_storage(st, xs))])
                })
            },
        ))
    }

    /// `y[i][j][k] = x[i][idx[i][j][k]][k]` for dim 1 (likewise for other dims); `idx` is i64 of
    /// the same rank, no larger than `x` outside `dim`.
    pub fn gather(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("gather", dim, self.dims())?;
        check_gather_shapes("gather", self.dims(), idx.dims(), d)?;
        let iv = index_values("gather", idx, self.dims()[d])?;
        let idims = idx.dims().to_vec();
        let xstrides = self.shape().contiguous_strides();
        let st = on_slice!(self.dense().get(), |v| iv
            .iter()
            .enumerate()
            .map(|(lin, &i)| v[gather_position(lin, &idims, &xstrides, d, i)])
            .collect());
        let xdims = self.shape().clone();
        let idx = idx.clone();
        let inputs: &[&Tensor] = if self.dtype().is_float() {
            &[self]
        } else {
            &[]
        };
        Ok(Tensor::op_result(
            st,
            idims.clone(),
            "gather",
            inputs,
            move || {
                Box::new(move |_, g| {
                    let z = Tensor::zeros(xdims.clone(), g.dtype())?;
                    Ok(vec![Some(z.scatter_add(d as isize, &idx, g)?)])
                })
            },
        ))
    }

    /// `self` with `src[...]` added at the positions `idx` names along `dim` (duplicates add up);
    /// `idx` and `src` have one shape, no larger than `self` outside `dim`.
    pub fn scatter_add(&self, dim: isize, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = resolve_dim("scatter_add", dim, self.dims())?;
        if idx.dims() != src.dims() {
            return Err(Error::shape(
                "scatter_add",
                format!(
                    "index shape {:?} must equal source shape {:?}",
                    idx.dims(),
                    src.dims()
                ),
            ));
        }
        if self.dtype() != src.dtype() {
            return Err(Error::dtype_mismatch(
                "scatter_add",
                self.dtype(),
                src.dtype(),
            ));
        }
        check_gather_shapes("scatter_add", self.dims(), idx.dims(), d)?;
        let iv = index_values("scatter_add", idx, self.dims()[d])?;
        let idims = idx.dims().to_vec();
        let xstrides = self.shape().contiguous_strides();
        macro_rules! scatter {
            ($variant:ident, $ctor:ident) => {{
                let (Dense::$variant(mut out), Dense::$variant(s)) =
                    (self.contiguous_storage(), src.contiguous_storage())
                else {
                    unreachable!("dtypes checked")
                };
                for (lin, &i) in iv.iter().enumerate() {
                    out[gather_position(lin, &idims, &xstrides, d, i)] += s[lin];
                }
                Storage::$ctor(out)
            }};
        }
        let st = match self.dtype() {
            DType::F32 => scatter!(F32, new_f32),
            DType::F64 => scatter!(F64, new_f64),
            DType::I64 => scatter!(I64, new_i64),
        };
        let idx = idx.clone();
        Ok(Tensor::op_result(
            st,
            self.shape(),
            "scatter_add",
            &[self, src],
            move || {
                Box::new(move |_, g| Ok(vec![Some(g.clone()), Some(g.gather(d as isize, &idx)?)]))
            },
        ))
    }

    /// Embedding lookup: `weight[ids]` for a `[vocab, dim]` weight and i64 `ids` of any shape,
    /// giving `ids.shape + [dim]`. `dweight` adds each output row's gradient to the row it read.
    pub fn embedding(weight: &Tensor, ids: &Tensor) -> Result<Tensor> {
        if weight.rank() != 2 {
            return Err(Error::shape(
                "embedding",
                format!("weight must be [vocab, dim], got {:?}", weight.dims()),
            ));
        }
        let flat = ids.reshape([ids.numel()])?;
        let rows = weight.index_select(0, &flat)?;
        let mut shape = ids.dims().to_vec();
        shape.push(weight.dims()[1]);
        rows.reshape(shape)
    }

    /// One-hot encoding of i64 class indices: `ids.shape + [num_classes]` in `dtype`.
    pub fn one_hot(&self, num_classes: usize, dtype: DType) -> Result<Tensor> {
        let iv = index_values("one_hot", self, num_classes)?;
        let mut v = vec![0.0; iv.len() * num_classes];
        for (r, &c) in iv.iter().enumerate() {
            v[r * num_classes + c] = 1.0;
        }
        let mut shape = self.dims().to_vec();
        shape.push(num_classes);
        Ok(Tensor::from_storage(
            crate::creation::storage_from_f64(v, dtype),
            shape,
        ))
    }
}
