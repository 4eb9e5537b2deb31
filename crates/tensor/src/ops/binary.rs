//! Elementwise functions of two tensors, broadcasting as NumPy does.
//!
//! A broadcast operand's gradient is summed over the dims it was broadcast along, back to its own
//! shape (`sum_to_shape`): if `a` of shape [3, 1] was broadcast to [2, 3, 4], `da` sums `g * ...`
//! over dim 0 and dim 2.

use crate::error::{Error, Result};
use crate::ops::binary_kernel;
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

impl Tensor {
    fn broadcast_pair(
        &self,
        other: &Tensor,
        op: &'static str,
    ) -> Result<(Vec<usize>, crate::layout::Layout, crate::layout::Layout)> {
        if self.dtype() != other.dtype() {
            return Err(Error::dtype_mismatch(op, self.dtype(), other.dtype()));
        }
        let shape = broadcast_shapes(op, self.dims(), other.dims())?;
        let la = self.layout().broadcast_to(op, &shape)?;
        let lb = other.layout().broadcast_to(op, &shape)?;
        Ok((shape, la, lb))
    }

    /// `a + b`; `da = sum_to(g, a)`, `db = sum_to(g, b)`.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        let (shape, la, lb) = self.broadcast_pair(other, "add")?;
        let st = binary_kernel!(self, &la, other, &lb, "add", |x, y| x + y);
        let (sa, sb) = (self.shape().clone(), other.shape().clone());
        Ok(Tensor::op_result(
            st,
            shape,
            "add",
            &[self, other],
            move || {
                Box::new(move |_, g| {
                    Ok(vec![Some(g.sum_to_shape(&sa)?), Some(g.sum_to_shape(&sb)?)])
                })
            },
        ))
    }

    /// `a - b`; `da = sum_to(g, a)`, `db = -sum_to(g, b)`.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        let (shape, la, lb) = self.broadcast_pair(other, "sub")?;
        let st = binary_kernel!(self, &la, other, &lb, "sub", |x, y| x - y);
        let (sa, sb) = (self.shape().clone(), other.shape().clone());
        Ok(Tensor::op_result(
            st,
            shape,
            "sub",
            &[self, other],
            move || {
                Box::new(move |_, g| {
                    Ok(vec![
                        Some(g.sum_to_shape(&sa)?),
                        Some(g.sum_to_shape(&sb)?.neg()?),
                    ])
                })
            },
        ))
    }

    /// `a * b`; `da = sum_to(g b, a)`, `db = sum_to(g a, b)`.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        let (shape, la, lb) = self.broadcast_pair(other, "mul")?;
        let st = binary_kernel!(self, &la, other, &lb, "mul", |x, y| x * y);
        let (a, b) = (self.clone(), other.clone());
        Ok(Tensor::op_result(
            st,
            shape,
            "mul",
            &[self, other],
            move || {
                Box::new(move |_, g| {
                    let da = a
                        .requires_grad()
                        .then(|| g.mul(&b)?.sum_to_shape(a.shape()))
                        .transpose()?;
                    let db = b
                        .requires_grad()
                        .then(|| g.mul(&a)?.sum_to_shape(b.shape()))
                        .transpose()?;
                    Ok(vec![da, db])
                })
            },
        ))
    }

    /// `a / b`; `da = sum_to(g / b, a)`, `db = -sum_to(g a / b^2, b)`.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        let (shape, la, lb) = self.broadcast_pair(other, "div")?;
        let st = binary_kernel!(self, &la, other, &lb, "div", |x, y| x / y);
        let (a, b) = (self.clone(), other.clone());
        Ok(Tensor::op_result(
            st,
            shape,
            "div",
            &[self, other],
            move || {
                Box::new(move |y, g| {
                    let ga = g.div(&b)?;
                    let da = a
                        .requires_grad()
                        .then(|| ga.sum_to_shape(a.shape()))
                        .transpose()?;
                    // d(a/b)/db = -a/b^2 = -(a/b)/b = -y/b
                    let db = b
                        .requires_grad()
                        .then(|| ga.mul(y)?.neg()?.sum_to_shape(b.shape()))
                        .transpose()?;
                    Ok(vec![da, db])
                })
            },
        ))
    }

    /// Elementwise maximum; the gradient goes to the larger input, split evenly on ties
    /// (as PyTorch): `da = g ([a > b] + [a == b] / 2)`.
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.extremum(other, "maximum", true)
    }

    /// Elementwise minimum; `da = g ([a < b] + [a == b] / 2)`.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.extremum(other, "minimum", false)
    }

    fn extremum(&self, other: &Tensor, op: &'static str, take_max: bool) -> Result<Tensor> {
        let (shape, la, lb) = self.broadcast_pair(other, op)?;
        let st = binary_kernel!(self, &la, other, &lb, op, |x, y| {
            if x.is_nan() || y.is_nan() {
                T::nan()
            } else if (x > y) == take_max {
                x
            } else {
                y
            }
        });
        let (a, b) = (self.clone(), other.clone());
        Ok(Tensor::op_result(
            st,
            shape,
            op,
            &[self, other],
            move || {
                Box::new(move |_, g| {
                    // weight of a: 1 where a wins, 1/2 on ties, 0 where b wins
                    let wa = {
                        let (_, la, lb) = a.broadcast_pair(&b, op)?;
                        let st = binary_kernel!(&a, &la, &b, &lb, op, |x, y| {
                            if x == y {
                                T::cast(0.5)
                            } else if (x > y) == take_max {
                                T::one()
                            } else {
                                T::zero()
                            }
                        });
                        Tensor::op_result(
                            st,
                            g.shape(),
                            op,
                            &[],
                            crate::ops::unary::unreachable_backward,
                        )
                    };
                    let da = a
                        .requires_grad()
                        .then(|| g.mul(&wa)?.sum_to_shape(a.shape()))
                        .transpose()?;
                    let db = b
                        .requires_grad()
                        .then(|| g.mul(&wa.rsub_scalar(1.0)?)?.sum_to_shape(b.shape()))
                        .transpose()?;
                    Ok(vec![da, db])
                })
            },
        ))
    }
}
