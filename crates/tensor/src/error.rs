//! Errors of the tensor crate. Every error names the operation and what was wrong with its
//! inputs (shapes, dims, dtypes, values), so a message read alone says where to look.

use crate::dtype::DType;

/// An error from a tensor operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit the operation, e.g. `matmul: cannot multiply [64, 784] by [500, 784]`.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A dimension index out of range for the tensor's rank.
    #[error("{op}: dim {dim} is out of range for a tensor of rank {rank} (shape {shape:?})")]
    Dim {
        op: &'static str,
        dim: isize,
        rank: usize,
        shape: Vec<usize>,
    },
    /// Operand dtypes that differ or that the operation does not support.
    #[error("{op}: {msg}")]
    DType { op: &'static str, msg: String },
    /// An argument value that the operation cannot use (a negative kernel size, an index past the end).
    #[error("{op}: {msg}")]
    Value { op: &'static str, msg: String },
    /// Misuse of the autograd engine (backward on a non-scalar without a gradient, and so on).
    #[error("{op}: {msg}")]
    Autograd { op: &'static str, msg: String },
}

impl Error {
    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub(crate) fn value(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Value {
            op,
            msg: msg.into(),
        }
    }
    pub(crate) fn autograd(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Autograd {
            op,
            msg: msg.into(),
        }
    }
    pub(crate) fn dtype_mismatch(op: &'static str, a: DType, b: DType) -> Self {
        Error::DType {
            op,
            msg: format!("dtypes differ: {a} and {b} (convert one with .to_dtype())"),
        }
    }
    pub(crate) fn dtype_unsupported(op: &'static str, d: DType) -> Self {
        Error::DType {
            op,
            msg: format!("not supported for dtype {d}"),
        }
    }
}

/// Result of a tensor operation.
pub type Result<T> = std::result::Result<T, Error>;
