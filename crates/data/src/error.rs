//! Errors of the data crate: they name the file and what is wrong with it.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that is missing, unreadable, truncated or not in the expected format.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error(transparent)]
    Tensor(#[from] ferrograd_tensor::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn file(path: impl AsRef<std::path::Path>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
