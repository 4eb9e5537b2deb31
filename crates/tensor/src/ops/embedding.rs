//! Embedding lookups whose table gradient may be row-sparse, and embedding bags.
//!
//! `y = lookup(W, ids)`, `y[p] = W[ids[p]]`: `dW[r] = sum_{p: ids[p] = r} g[p]`, which touches
//! only the rows looked up. With `sparse`, a leaf table receives it as a [`RowSparse`] (see
//! `sparse_grad.rs`); otherwise, or when the table is itself computed, as a dense gradient.
//!
//! `y = bag(W, ids, offsets, w)`, `y[b] = sum_{p in bag b} w_p W[ids[p]]` (PyTorch's
//! `nn.EmbeddingBag`, mode `sum` with `per_sample_weights`; mode `mean` has `w_p = 1 / |bag b|`):
//! `dW[r] = sum_{p: ids[p] = r} w_p g[bag(p)]` and `dw_p = <g[bag(p)], W[ids[p]]>`.

use crate::error::{Error, Result};
use crate::ops::index::index_values;
use crate::sparse_grad::RowSparse;
use crate::storage::Storage;
use crate::tensor::{DenseSlice, Tensor};

/// How an embedding bag combines its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BagMode {
    /// The (weighted) sum.
    Sum,
    /// The mean; an empty bag gives zeros, as in PyTorch.
    Mean,
}

/// `ids.len()` rows of `dim`: row `p` is `w_p * src[row_of(p)]`.
fn rows_kernel<T: crate::dtype::Float>(
    src: &[T],
    dim: usize,
    n: usize,
    row_of: impl Fn(usize) -> usize,
    scale: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(n * dim);
    for p in 0..n {
        let (r, s) = (row_of(p), scale(p));
        out.extend(src[r * dim..(r + 1) * dim].iter().map(|&v| v * s));
    }
    out
}

/// `out[b] = sum_{p in bag b} w_p W[ids[p]]`, each bag summed in position order.
fn bag_kernel<T: crate::dtype::Float>(
    w: &[T],
    dim: usize,
    ids: &[usize],
    bags: &[(usize, usize)],
    scale: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut out = vec![T::zero(); bags.len() * dim];
    for (b, &(s, e)) in bags.iter().enumerate() {
        let o = &mut out[b * dim..(b + 1) * dim];
        for p in s..e {
            let (row, c) = (&w[ids[p] * dim..(ids[p] + 1) * dim], scale(p));
            for (a, &v) in o.iter_mut().zip(row) {
                *a += c * v;
            }
        }
    }
    out
}

/// `dw_p = <g[bag(p)], W[ids[p]]>`.
fn weight_grad_kernel<T: crate::dtype::Float>(
    g: &[T],
    w: &[T],
    dim: usize,
    ids: &[usize],
    bag_of: &[usize],
) -> Vec<T> {
    ids.iter()
        .zip(bag_of)
        .map(|(&r, &b)| {
            g[b * dim..(b + 1) * dim]
                .iter()
                .zip(&w[r * dim..(r + 1) * dim])
                .fold(T::zero(), |acc, (&x, &y)| acc + x * y)
        })
        .collect()
}

fn check_table(op: &'static str, weight: &Tensor) -> Result<(usize, usize)> {
    if weight.rank() != 2 || !weight.dtype().is_float() {
        return Err(Error::shape(
            op,
            format!(
                "the table must be a float [rows, dim], got {:?} {}",
                weight.dims(),
                weight.dtype()
            ),
        ));
    }
    Ok((weight.dims()[0], weight.dims()[1]))
}

/// Routes the gradient of a table from per-position rows `gp` (`[ids.len(), dim]`): to the
/// leaf's row-sparse gradient when `sparse`, else returned dense.
fn table_grad(weight: &Tensor, ids: &[usize], gp: &Tensor, sparse: bool) -> Result<Option<Tensor>> {
    let rows = weight.dims()[0];
    let s = RowSparse::from_lookup(ids, gp, rows)?;
    if sparse && weight.is_leaf() {
        weight.accumulate_sparse_grad(s)?;
        Ok(None)
    } else {
        Ok(Some(s.to_dense()?))
    }
}

impl Tensor {
    /// Rows `ids` of the `[rows, dim]` table `weight`: `ids.shape + [dim]`, as
    /// [`Tensor::embedding`], but with `sparse` a leaf table's gradient is row-sparse
    /// ([`Tensor::sparse_grad`]) as with `nn.Embedding(sparse=True)`.
    pub fn embedding_sparse(weight: &Tensor, ids: &Tensor, sparse: bool) -> Result<Tensor> {
        let (rows, dim) = check_table("embedding", weight)?;
        let iv = index_values("embedding", ids, rows)?;
        let n = iv.len();
        let st = {
            let view = weight.dense();
            match view.get() {
                DenseSlice::F32(v) => Storage::new_f32(rows_kernel(v, dim, n, |p| iv[p], |_| 1.0)),
                DenseSlice::F64(v) => Storage::new_f64(rows_kernel(v, dim, n, |p| iv[p], |_| 1.0)),
                DenseSlice::I64(_) => unreachable!("checked float"),
            }
        };
        let mut shape = ids.dims().to_vec();
        shape.push(dim);
        let table = weight.clone();
        Ok(Tensor::op_result(
            st,
            shape,
            "embedding",
            &[weight],
            move || {
                Box::new(move |_, g| {
                    let gp = g.reshape([n, dim])?;
                    Ok(vec![table_grad(&table, &iv, &gp, sparse)?])
                })
            },
        ))
    }

    /// Bags of rows of `weight` (`[rows, dim]`) combined into `[bags, dim]`, as PyTorch's
    /// `F.embedding_bag`: `ids` (1-D i64) lists every bag's rows one bag after another,
    /// `offsets` (1-D i64, ascending, from 0) where each bag starts; `per_sample_weights`
    /// (`[ids.len()]`, the table's dtype, mode `Sum` only) scales each row. With `sparse`, a leaf
    /// table's gradient is row-sparse.
    pub fn embedding_bag(
        weight: &Tensor,
        ids: &Tensor,
        offsets: &Tensor,
        per_sample_weights: Option<&Tensor>,
        mode: BagMode,
        sparse: bool,
    ) -> Result<Tensor> {
        const OP: &str = "embedding_bag";
        let (rows, dim) = check_table(OP, weight)?;
        if ids.rank() != 1 || offsets.rank() != 1 {
            return Err(Error::shape(
                OP,
                format!(
                    "ids and offsets must be 1-D, got {:?} and {:?}",
                    ids.dims(),
                    offsets.dims()
                ),
            ));
        }
        let iv = index_values(OP, ids, rows)?;
        let n = iv.len();
        let ov = index_values(OP, offsets, n + 1)?;
        if ov.first().is_some_and(|&o| o != 0) || ov.windows(2).any(|w| w[1] < w[0]) {
            return Err(Error::value(
                OP,
                format!(
                    "offsets must start at 0 and not decrease, got {:?}",
                    &ov[..ov.len().min(8)]
                ),
            ));
        }
        let bags: Vec<(usize, usize)> = (0..ov.len())
            .map(|b| (ov[b], ov.get(b + 1).copied().unwrap_or(n)))
            .collect();
        let mut bag_of = vec![0usize; n];
        for (b, &(s, e)) in bags.iter().enumerate() {
            bag_of[s..e].iter_mut().for_each(|x| *x = b);
        }
        let psw = match per_sample_weights {
            None => None,
            Some(w) => {
                if mode != BagMode::Sum {
                    return Err(Error::value(OP, "per_sample_weights need mode Sum"));
                }
                if w.dims() != [n] || w.dtype() != weight.dtype() {
                    return Err(Error::shape(
                        OP,
                        format!(
                            "per_sample_weights must be [{n}] {}, got {:?} {}",
                            weight.dtype(),
                            w.dims(),
                            w.dtype()
                        ),
                    ));
                }
                Some(w.to_vec_f64())
            }
        };
        // each position's factor: its weight, or 1 / (its bag's size) for the mean
        let factor: Vec<f64> = (0..n)
            .map(|p| match (&psw, mode) {
                (Some(w), _) => w[p],
                (None, BagMode::Sum) => 1.0,
                (None, BagMode::Mean) => {
                    let (s, e) = bags[bag_of[p]];
                    1.0 / (e - s) as f64
                }
            })
            .collect();
        let st = {
            let view = weight.dense();
            match view.get() {
                DenseSlice::F32(v) => {
                    Storage::new_f32(bag_kernel(v, dim, &iv, &bags, |p| factor[p] as f32))
                }
                DenseSlice::F64(v) => {
                    Storage::new_f64(bag_kernel(v, dim, &iv, &bags, |p| factor[p]))
                }
                DenseSlice::I64(_) => unreachable!("checked float"),
            }
        };
        let mut inputs: Vec<&Tensor> = vec![weight];
        if let Some(w) = per_sample_weights {
            inputs.push(w);
        }
        let has_psw = per_sample_weights.is_some();
        let table = weight.clone();
        Ok(Tensor::op_result(
            st,
            [bags.len(), dim],
            OP,
            &inputs,
            move || {
                Box::new(move |_, g| {
                    let g = g.contiguous()?;
                    let gv = g.dense();
                    let gp = match gv.get() {
                        DenseSlice::F32(v) => Storage::new_f32(rows_kernel(
                            v,
                            dim,
                            n,
                            |p| bag_of[p],
                            |p| factor[p] as f32,
                        )),
                        DenseSlice::F64(v) => {
                            Storage::new_f64(rows_kernel(v, dim, n, |p| bag_of[p], |p| factor[p]))
                        }
                        DenseSlice::I64(_) => unreachable!("float output"),
                    };
                    let gp = Tensor::from_storage(gp, [n, dim]);
                    let mut out = vec![if table.requires_grad() {
                        table_grad(&table, &iv, &gp, sparse)?
                    } else {
                        None
                    }];
                    if has_psw {
                        let wv = table.dense();
                        let dw = match (gv.get(), wv.get()) {
                            (DenseSlice::F32(a), DenseSlice::F32(b)) => {
                                Storage::new_f32(weight_grad_kernel(a, b, dim, &iv, &bag_of))
                            }
                            (DenseSlice::F64(a), DenseSlice::F64(b)) => {
                                Storage::new_f64(weight_grad_kernel(a, b, dim, &iv, &bag_of))
                            }
                            _ => unreachable!("one float dtype"),
                        };
                        out.push(Some(Tensor::from_storage(dw, [n])));
                    }
                    Ok(out)
                })
            },
        ))
    }
}
