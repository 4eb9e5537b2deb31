//! Errors of the nn crate: tensor errors, plus files, state dicts and invalid settings.

/// An error from a layer, loss, optimizer or serializer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] ferrograd_tensor::Error),
    /// A file that cannot be read or written, or whose contents are not what was expected.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// Tensors in a state dict that are missing, unexpected or mis-shaped.
    #[error("load_state_dict: {0}")]
    StateDict(String),
    /// A setting that cannot be used (a negative learning rate, a momentum without SGD, ...).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
}

impl Error {
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            msg: msg.into(),
        }
    }
    pub fn file(path: impl AsRef<std::path::Path>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
