//! Strided layouts: how a tensor's logical indices map to positions in its storage.
//!
//! `position(i_0, .., i_n) = offset + sum_k i_k * strides[k]`. Views (transpose, permute, narrow,
//! expand, squeeze, unsqueeze, reshape of a contiguous tensor) only build a new `Layout` over the
//! same storage; a broadcast dim has stride 0.

use crate::error::{Error, Result};
use crate::shape::{resolve_dim, Shape};

/// Shape, strides (in elements) and offset into the storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A row-major layout starting at offset 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }
    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        Layout {
            shape,
            strides,
            offset,
        }
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    /// Row-major and dense: element `i` of the logical order is at `offset + i`.
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.rank()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }
    /// One past the largest storage position this layout can touch (0 when empty).
    pub fn storage_extent(&self) -> usize {
        if self.numel() == 0 {
            return self.offset;
        }
        self.shape
            .iter()
            .zip(&self.strides)
            .fold(self.offset.saturating_add(1), |a, (&d, &s)| {
                a.saturating_add((d - 1).saturating_mul(s))
            })
    }

    pub fn transpose(&self, d0: usize, d1: usize) -> Layout {
        let mut shape = self.shape.to_vec();
        let mut strides = self.strides.clone();
        shape.swap(d0, d1);
        strides.swap(d0, d1);
        Layout::new(Shape::new(shape), strides, self.offset)
    }

    pub fn permute(&self, perm: &[usize]) -> Layout {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let strides = perm.iter().map(|&p| self.strides[p]).collect();
        Layout::new(Shape::new(shape), strides, self.offset)
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut shape = self.shape.to_vec();
        shape[dim] = len;
        Layout::new(
            Shape::new(shape),
            self.strides.clone(),
            self.offset + start * self.strides[dim],
        )
    }

    /// Broadcast to `target` (already validated): new leading dims and size-1 dims get stride 0.
    pub fn broadcast_to(&self, op: &'static str, target: &[usize]) -> Result<Layout> {
        let rank = target.len();
        if rank < self.shape.rank() {
            return Err(Error::shape(
                op,
                format!(
                    "cannot broadcast shape {:?} to fewer dims {:?}",
                    self.dims(),
                    target
                ),
            ));
        }
        // a view of any size costs nothing, but whatever reads it allocates its size
        Shape::new(target.to_vec()).checked_numel(op)?;
        let lead = rank - self.shape.rank();
        let mut strides = vec![0; rank];
        for i in 0..rank {
            if i < lead {
                continue;
            }
            let d = self.shape[i - lead];
            if d == target[i] {
                strides[i] = self.strides[i - lead];
            } else if d == 1 {
                strides[i] = 0;
            } else {
                return Err(Error::shape(
                    op,
                    format!(
                        "cannot broadcast shape {:?} to {:?} (dim {i}: {d} vs {})",
                        self.dims(),
                        target,
                        target[i]
                    ),
                ));
            }
        }
        Ok(Layout::new(Shape::from(target), strides, self.offset))
    }

    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut shape = self.shape.to_vec();
        let mut strides = self.strides.clone();
        let s = if dim < strides.len() {
            strides[dim] * shape[dim]
        } else {
            1
        };
        shape.insert(dim, 1);
        strides.insert(dim, s);
        Layout::new(Shape::new(shape), strides, self.offset)
    }

    pub fn squeeze(&self, dim: usize) -> Layout {
        let mut shape = self.shape.to_vec();
        let mut strides = self.strides.clone();
        shape.remove(dim);
        strides.remove(dim);
        Layout::new(Shape::new(shape), strides, self.offset)
    }

    /// The storage position of every element in logical (row-major) order, visited without
    /// allocating: `f(logical_index, storage_position)`.
    #[inline]
    pub fn for_each_position(&self, mut f: impl FnMut(usize, usize)) {
        let n = self.numel();
        if n == 0 {
            return;
        }
        if self.is_contiguous() {
            for i in 0..n {
                f(i, self.offset + i);
            }
            return;
        }
        let rank = self.shape.rank();
        let inner = self.shape[rank - 1];
        let inner_stride = self.strides[rank - 1];
        let mut idx = vec![0usize; rank];
        let mut base = self.offset;
        let mut i = 0;
        loop {
            let mut p = base;
            for _ in 0..inner {
                f(i, p);
                p += inner_stride;
                i += 1;
            }
            // advance the outer counter (odometer over dims 0..rank-1)
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                base -= idx[d] * self.strides[d];
                idx[d] = 0;
            }
        }
    }

    /// The storage positions of every element in logical order.
    pub fn positions(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.numel());
        self.for_each_position(|_, p| v.push(p));
        v
    }

    /// A view with a new shape over the same elements, when the strides allow it without a copy.
    /// Returns `None` when a copy is needed.
    pub fn reshape_view(&self, new_shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout::new(
                Shape::from(new_shape),
                Shape::from(new_shape).contiguous_strides(),
                self.offset,
            ));
        }
        None
    }

    /// Resolves a dim of this layout.
    pub fn dim(&self, op: &'static str, dim: isize) -> Result<usize> {
        resolve_dim(op, dim, self.dims())
    }
}
