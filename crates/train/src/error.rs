//! The one error type of the training layer and the command line, with conversions from the
//! tensor, nn and data errors, so that `?` works on all of them.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Tensor(#[from] ferrograd_tensor::Error),
    #[error(transparent)]
    Nn(#[from] ferrograd_nn::Error),
    #[error(transparent)]
    Data(#[from] ferrograd_data::Error),
    /// A file that cannot be read or written, or whose contents are not what was expected.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// A setting or flag that cannot be used, named with its value.
    #[error("{0}")]
    Config(String),
    /// A NaN or infinite loss: the run stops before the step is applied.
    #[error(
        "step {step}{at}: the loss is {value}; training diverged (lr {lr:e}) and was stopped{kept}"
    )]
    Diverged {
        step: usize,
        /// " (epoch e, batch b)" where the run has epochs.
        at: String,
        value: f64,
        lr: f64,
        /// What was left as it was, e.g. "; the checkpoint c.safetensors is the last good one".
        kept: String,
    },
    /// A failure of the replicas of a data-parallel run to work together (a collective that
    /// failed, replicas that disagree).
    #[error("data-parallel: {0}")]
    Distributed(String),
    /// SIGINT or SIGTERM: the run stopped at a step boundary.
    #[error("interrupted at step {step}{how}")]
    Interrupted { step: usize, how: String },
}

impl TrainError {
    pub fn file(path: impl AsRef<Path>, msg: impl std::fmt::Display) -> Self {
        TrainError::File {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }
    pub fn config(msg: impl Into<String>) -> Self {
        TrainError::Config(msg.into())
    }
}

impl From<String> for TrainError {
    fn from(s: String) -> Self {
        TrainError::Config(s)
    }
}

pub type Result<T> = std::result::Result<T, TrainError>;
