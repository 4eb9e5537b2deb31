//! Operations, one family per file. Each op computes its forward with a kernel from `cpu/` and
//! records, next to it, the backward rule (the vector-Jacobian product) whose formula its doc
//! comment states. Backward rules are written with tensor ops, so they work for any dtype and
//! layout and would carry over to another device.

pub mod attention;
pub mod binary;
pub mod compare;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod index;
pub mod matmul;
pub mod movement;
pub mod norm;
pub mod packed_weights;
pub mod pool;
pub mod recurrent;
pub mod reduce;
pub mod softmax;
pub mod unary;

/// Matches a storage on its float dtype, binding `$v` to the slice and the type alias `T` to the
/// element type; `i64` is an error naming `$op`.
macro_rules! dispatch_float {
    ($st:expr, $op:expr, $v:ident => $body:expr) => {
        match $st {
            $crate::storage::Storage::F32($v) => {
                #[allow(unused_imports)]
                use num_traits::{Float as _, One as _, Zero as _};
                #[allow(unused_imports)]
                use $crate::dtype::Float as _;
                #[allow(dead_code)]
                type T = f32;
                $body
            }
            $crate::storage::Storage::F64($v) => {
                #[allow(unused_imports)]
                use num_traits::{Float as _, One as _, Zero as _};
                #[allow(unused_imports)]
                use $crate::dtype::Float as _;
                #[allow(dead_code)]
                type T = f64;
                $body
            }
            $crate::storage::Storage::I64(_) => {
                return Err($crate::error::Error::dtype_unsupported(
                    $op,
                    $crate::dtype::DType::I64,
                ))
            }
        }
    };
}
pub(crate) use dispatch_float;

/// Elementwise map of one float tensor into new storage: `|x| body` with `x: T`.
macro_rules! unary_kernel {
    ($t:expr, $op:expr, |$x:ident| $body:expr) => {{
        let st = ($t).storage();
        let layout = ($t).layout();
        $crate::ops::dispatch_float!(&*st, $op, v => {
            use $crate::storage::IntoStorage;
            $crate::cpu::map_unary(&v[..], layout, |$x: T| -> T { $body }).into_storage()
        })
    }};
}
pub(crate) use unary_kernel;

/// Elementwise map of two same-dtype float tensors whose layouts already have the same shape.
macro_rules! binary_kernel {
    ($a:expr, $la:expr, $b:expr, $lb:expr, $op:expr, |$x:ident, $y:ident| $body:expr) => {{
        let sa = ($a).storage();
        let sb = ($b).storage();
        match (&*sa, &*sb) {
            ($crate::storage::Storage::F32(va), $crate::storage::Storage::F32(vb)) => {
                #[allow(unused_imports)]
                use num_traits::{Float as _, One as _, Zero as _};
                #[allow(unused_imports)]
                use $crate::dtype::Float as _;
                #[allow(dead_code)]
                type T = f32;
                $crate::storage::Storage::new_f32($crate::cpu::map_binary(
                    va,
                    $la,
                    vb,
                    $lb,
                    |$x: T, $y: T| -> T { $body },
                ))
            }
            ($crate::storage::Storage::F64(va), $crate::storage::Storage::F64(vb)) => {
                #[allow(unused_imports)]
                use num_traits::{Float as _, One as _, Zero as _};
                #[allow(unused_imports)]
                use $crate::dtype::Float as _;
                #[allow(dead_code)]
                type T = f64;
                $crate::storage::Storage::new_f64($crate::cpu::map_binary(
                    va,
                    $la,
                    vb,
                    $lb,
                    |$x: T, $y: T| -> T { $body },
                ))
            }
            (x, y) => {
                return Err(if x.dtype() != y.dtype() {
                    $crate::error::Error::dtype_mismatch($op, x.dtype(), y.dtype())
                } else {
                    $crate::error::Error::dtype_unsupported($op, x.dtype())
                })
            }
        }
    }};
}
pub(crate) use binary_kernel;
