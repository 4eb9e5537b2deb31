//! Row-sparse gradients: the gradient of a `[rows, dim]` table of which a batch looked up only a
//! few rows (an embedding), kept as those rows and their values instead of a dense table that is
//! almost all zeros. A lookup made with `sparse = true` ([`Tensor::embedding_sparse`],
//! [`Tensor::embedding_bag`]) accumulates into its leaf's [`Tensor::sparse_grad`]; optimizers
//! then update only those rows. PyTorch's `nn.Embedding(sparse=True)` gives the same: a
//! coalesced sparse COO gradient with one entry per distinct row.
//!
//! The rows are ascending and distinct, and each row's value is the sum of its contributions in
//! the order the lookup listed them, which is the order the dense backward (`index_add`) sums
//! them in: the values equal the dense gradient's rows bit for bit.

use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{DenseSlice, Tensor};
use std::ops::AddAssign;

/// A coalesced row-sparse gradient of a `[num_rows, dim]` tensor.
#[derive(Clone)]
pub struct RowSparse {
    /// The rows that have a gradient, ascending and distinct.
    pub rows: Vec<usize>,
    /// `[rows.len(), dim]`, dense, in the table's dtype: row `k` is the gradient of `rows[k]`.
    pub values: Tensor,
    /// Rows of the whole table.
    pub num_rows: usize,
}

impl std::fmt::Debug for RowSparse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RowSparse({} of {} rows, dim {})",
            self.rows.len(),
            self.num_rows,
            self.dim()
        )
    }
}

/// Distinct rows of `ids` (ascending) and, for each, the sum of the `g` rows at the positions
/// that name it, in position order. `g` holds `ids.len()` rows of `dim`.
fn coalesce_kernel<T: Copy + AddAssign>(
    ids: &[usize],
    g: &[T],
    dim: usize,
) -> (Vec<usize>, Vec<T>) {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    // stable: positions of one row stay in their order, so sums run as index_add's do
    order.sort_by_key(|&p| ids[p]);
    let mut rows: Vec<usize> = Vec::new();
    let mut vals: Vec<T> = Vec::with_capacity(ids.len() * dim);
    for p in order {
        let src = &g[p * dim..(p + 1) * dim];
        if rows.last() == Some(&ids[p]) {
            let at = vals.len() - dim;
            for (a, &b) in vals[at..].iter_mut().zip(src) {
                *a += b;
            }
        } else {
            rows.push(ids[p]);
            vals.extend_from_slice(src);
        }
    }
    (rows, vals)
}

/// Merges two coalesced row lists, adding the values of rows in both.
fn merge_kernel<T: Copy + AddAssign>(
    (ra, va): (&[usize], &[T]),
    (rb, vb): (&[usize], &[T]),
    dim: usize,
) -> (Vec<usize>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let mut rows = Vec::with_capacity(ra.len() + rb.len());
    let mut vals = Vec::with_capacity((ra.len() + rb.len()) * dim);
    while i < ra.len() || j < rb.len() {
        let take_a = j == rb.len() || (i < ra.len() && ra[i] <= rb[j]);
        let take_b = i == ra.len() || (j < rb.len() && rb[j] <= ra[i]);
        let at = vals.len();
        if take_a {
            rows.push(ra[i]);
            vals.extend_from_slice(&va[i * dim..(i + 1) * dim]);
            i += 1;
        }
        if take_b {
            if take_a {
                for (a, &b) in vals[at..].iter_mut().zip(&vb[j * dim..(j + 1) * dim]) {
                    *a += b;
                }
            } else {
                rows.push(rb[j]);
                vals.extend_from_slice(&vb[j * dim..(j + 1) * dim]);
            }
            j += 1;
        }
    }
    (rows, vals)
}

impl RowSparse {
    /// The gradient of a lookup of `ids` in a `[num_rows, dim]` table whose output gradient is
    /// `g` (`[ids.len(), dim]`): duplicates summed in position order.
    pub(crate) fn from_lookup(ids: &[usize], g: &Tensor, num_rows: usize) -> Result<RowSparse> {
        let dim = g.dims().get(1).copied().unwrap_or(0);
        if g.rank() != 2 || g.dims()[0] != ids.len() {
            return Err(Error::shape(
                "sparse gradient",
                format!(
                    "{} ids need a [{}, dim] gradient, got {:?}",
                    ids.len(),
                    ids.len(),
                    g.dims()
                ),
            ));
        }
        let view = g.dense();
        let (rows, values) = match view.get() {
            DenseSlice::F32(v) => {
                let (r, x) = coalesce_kernel(ids, v, dim);
                (r, Storage::new_f32(x))
            }
            DenseSlice::F64(v) => {
                let (r, x) = coalesce_kernel(ids, v, dim);
                (r, Storage::new_f64(x))
            }
            DenseSlice::I64(_) => {
                return Err(Error::value(
                    "sparse gradient",
                    "an i64 table has no gradient",
                ))
            }
        };
        let n = rows.len();
        Ok(RowSparse {
            rows,
            values: Tensor::from_storage(values, [n, dim]),
            num_rows,
        })
    }

    /// Columns of the table.
    pub fn dim(&self) -> usize {
        self.values.dims().get(1).copied().unwrap_or(0)
    }

    /// The sum of two gradients of the same table.
    pub fn add(&self, other: &RowSparse) -> Result<RowSparse> {
        if self.num_rows != other.num_rows
            || self.dim() != other.dim()
            || self.values.dtype() != other.values.dtype()
        {
            return Err(Error::shape(
                "sparse gradient",
                format!(
                    "cannot add a gradient of [{}, {}] {} to one of [{}, {}] {}",
                    other.num_rows,
                    other.dim(),
                    other.values.dtype(),
                    self.num_rows,
                    self.dim(),
                    self.values.dtype()
                ),
            ));
        }
        let dim = self.dim();
        let (a, b) = (self.values.dense(), other.values.dense());
        let (rows, values) = match (a.get(), b.get()) {
            (DenseSlice::F32(x), DenseSlice::F32(y)) => {
                let (r, v) = merge_kernel((&self.rows, x), (&other.rows, y), dim);
                (r, Storage::new_f32(v))
            }
            (DenseSlice::F64(x), DenseSlice::F64(y)) => {
                let (r, v) = merge_kernel((&self.rows, x), (&other.rows, y), dim);
                (r, Storage::new_f64(v))
            }
            _ => return Err(Error::value("sparse gradient", "values must be f32 or f64")),
        };
        let n = rows.len();
        Ok(RowSparse {
            rows,
            values: Tensor::from_storage(values, [n, dim]),
            num_rows: self.num_rows,
        })
    }

    /// The same gradient with its values replaced (same shape and dtype), e.g. scaled by a
    /// gradient clip.
    pub fn with_values(&self, values: Tensor) -> Result<RowSparse> {
        if values.dims() != self.values.dims() || values.dtype() != self.values.dtype() {
            return Err(Error::shape(
                "sparse gradient",
                format!(
                    "new values {:?} {} for values {:?} {}",
                    values.dims(),
                    values.dtype(),
                    self.values.dims(),
                    self.values.dtype()
                ),
            ));
        }
        Ok(RowSparse {
            rows: self.rows.clone(),
            values: values.contiguous()?,
            num_rows: self.num_rows,
        })
    }

    /// The dense `[num_rows, dim]` gradient: zeros outside `rows`.
    pub fn to_dense(&self) -> Result<Tensor> {
        let dim = self.dim();
        let n = self.num_rows * dim;
        let view = self.values.dense();
        let st = match view.get() {
            DenseSlice::F32(v) => Storage::new_f32(scatter_rows(&self.rows, v, dim, n)),
            DenseSlice::F64(v) => Storage::new_f64(scatter_rows(&self.rows, v, dim, n)),
            DenseSlice::I64(_) => {
                return Err(Error::value("sparse gradient", "values must be f32 or f64"))
            }
        };
        Ok(Tensor::from_storage(st, [self.num_rows, dim]))
    }
}

fn scatter_rows<T: Copy + Default>(rows: &[usize], v: &[T], dim: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::default(); n];
    for (k, &r) in rows.iter().enumerate() {
        out[r * dim..(r + 1) * dim].copy_from_slice(&v[k * dim..(k + 1) * dim]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_coalesce_in_position_order_and_merge() -> Result<()> {
        let g = Tensor::from_vec(vec![1.0f64, 2.0, 10.0, 20.0, 100.0, 200.0], [3, 2])?;
        let s = RowSparse::from_lookup(&[4, 1, 4], &g, 5)?;
        assert_eq!(s.rows, vec![1, 4]);
        assert_eq!(s.values.to_vec::<f64>()?, vec![10.0, 20.0, 101.0, 202.0]);
        let t = RowSparse::from_lookup(&[0, 4], &g.narrow(0, 0, 2)?, 5)?;
        let sum = s.add(&t)?;
        assert_eq!(sum.rows, vec![0, 1, 4]);
        assert_eq!(
            sum.values.to_vec::<f64>()?,
            vec![1.0, 2.0, 10.0, 20.0, 111.0, 222.0]
        );
        let d = sum.to_dense()?.to_vec::<f64>()?;
        assert_eq!(
            d,
            vec![1.0, 2.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 111.0, 222.0]
        );
        Ok(())
    }
}
