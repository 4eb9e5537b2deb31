//! Comparisons giving masks, and `where`. Masks hold 1 where the comparison is true and 0
//! elsewhere, in the dtype of the operands (there is no bool dtype; a mask multiplies directly).
//! Comparisons have no gradient; `where` sends `g` to the branch each element came from.

use crate::error::{Error, Result};
use crate::ops::binary_kernel;
use crate::shape::broadcast_shapes;
use crate::storage::Storage;
use crate::tensor::Tensor;

macro_rules! comparison {
    ($name:ident, $scalar:ident, $op:literal, $cmp:tt) => {
        #[doc = concat!("Mask of `a ", stringify!($cmp), " b` (broadcast). No gradient.")]
        pub fn $name(&self, other: &Tensor) -> Result<Tensor> {
            self.compare(other, $op, |x, y| x $cmp y)
        }
        #[doc = concat!("Mask of `a ", stringify!($cmp), " c` for a scalar c. No gradient.")]
        pub fn $scalar(&self, c: f64) -> Result<Tensor> {
            let c = Tensor::full((), c, self.dtype())?;
            self.compare(&c, $op, |x, y| x $cmp y)
        }
    };
}

impl Tensor {
    fn compare(&self, other: &Tensor, op: &'static str, f: fn(f64, f64) -> bool) -> Result<Tensor> {
        if self.dtype() != other.dtype() {
            return Err(Error::dtype_mismatch(op, self.dtype(), other.dtype()));
        }
        let shape = broadcast_shapes(op, self.dims(), other.dims())?;
        let la = self.layout().broadcast_to(op, &shape)?;
        let lb = other.layout().broadcast_to(op, &shape)?;
        if self.dtype() == crate::dtype::DType::I64 {
            let (a, b) = (self.storage(), other.storage());
            let (crate::storage::Storage::I64(va), crate::storage::Storage::I64(vb)) = (&*a, &*b)
            else {
                unreachable!("dtype checked")
            };
            let out =
                crate::cpu::map_binary(va, &la, vb, &lb, |x, y| i64::from(f(x as f64, y as f64)));
            return Tensor::from_vec(out, shape);
        }
        let st = binary_kernel!(
            self,
            &la,
            other,
            &lb,
            op,
            |x, y| if f(x.as_f64(), y.as_f64()) {
                T::one()
            } else {
                T::zero()
            }
        );
        Ok(Tensor::from_storage(st, shape))
    }

    comparison!(eq, eq_scalar, "eq", ==);
    comparison!(ne, ne_scalar, "ne", !=);
    comparison!(lt, lt_scalar, "lt", <);
    comparison!(le, le_scalar, "le", <=);
    comparison!(gt, gt_scalar, "gt", >);
    comparison!(ge, ge_scalar, "ge", >=);

    /// `cond ? a : b` elementwise, broadcasting all three; `cond` is a mask (non-zero is true) of
    /// any dtype. `da = sum_to(g * cond, a)`, `db = sum_to(g * (1 - cond), b)`.
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if a.dtype() != b.dtype() {
            return Err(Error::dtype_mismatch("where", a.dtype(), b.dtype()));
        }
        let shape = broadcast_shapes("where", a.dims(), b.dims())?;
        let shape = broadcast_shapes("where", cond.dims(), &shape)?;
        let mask = cond
            .detach()
            .to_dtype(a.dtype())?
            .ne_scalar(0.0)?
            .broadcast_to(shape.clone())?;
        let picked = mask.to_vec_f64();
        let av = a.detach().broadcast_to(shape.clone())?;
        let bv = b.detach().broadcast_to(shape.clone())?;
        let (la, lb) = (av.layout().clone(), bv.layout().clone());
        // select b first, then overwrite with a where the mask holds (no arithmetic, so inf/nan
        // in the branch not taken cannot leak into the result)
        let mut i = 0;
        let sa = av.storage();
        let sb = bv.storage();
        let st = match (&*sa, &*sb) {
            (Storage::F32(va), Storage::F32(vb)) => {
                let mut out = Vec::with_capacity(picked.len());
                crate::cpu::for_each_position2(&la, &lb, |pa, pb| {
                    out.push(if picked[i] != 0.0 { va[pa] } else { vb[pb] });
                    i += 1;
                });
                Storage::new_f32(out)
            }
            (Storage::F64(va), Storage::F64(vb)) => {
                let mut out = Vec::with_capacity(picked.len());
                crate::cpu::for_each_position2(&la, &lb, |pa, pb| {
                    out.push(if picked[i] != 0.0 { va[pa] } else { vb[pb] });
                    i += 1;
                });
                Storage::new_f64(out)
            }
            (x, _) => return Err(Error::dtype_unsupported("where", x.dtype())),
        };
        let (sa_shape, sb_shape) = (a.shape().clone(), b.shape().clone());
        let inv = mask.rsub_scalar(1.0)?;
        Ok(Tensor::op_result(st, shape, "where", &[a, b], move || {
            Box::new(move |_, g| {
                Ok(vec![
                    Some(g.mul(&mask)?.sum_to_shape(&sa_shape)?),
                    Some(g.mul(&inv)?.sum_to_shape(&sb_shape)?),
                ])
            })
        }))
    }
}
