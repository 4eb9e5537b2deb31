//! # ferrograd-train
//!
//! The training loop as a library: a [`Trainer`] that fits any model given a [`TrainStep`]
//! (batch -> loss and metrics) and a source of [`Batches`]; [`callbacks`] for the progress bar,
//! log lines, metrics CSV, PNG curves and TensorBoard event files; one [`checkpoint`] format
//! that resumes bit-exactly; output paths checked before the first step; Ctrl-C and SIGTERM
//! handled at step boundaries; classification [`metrics`]; ready-made steps for common
//! [`tasks`]; one error type.

pub mod callbacks;
pub mod checkpoint;
pub mod error;
pub mod metrics;
pub mod outputs;
pub mod record;
pub mod signal;
pub mod step;
pub mod strategy;
pub mod tasks;
pub mod tensorboard;
pub mod trainer;

pub use callbacks::{Callback, Console};
pub use checkpoint::{Checkpoint, Setting};
pub use error::{Result, TrainError};
pub use outputs::OutputPlan;
pub use record::{Record, RecordKind};
pub use step::{Batches, StepOutput, TrainStep};
pub use strategy::Strategy;
pub use trainer::{Goal, ResumePoint, Summary, TrainConfig, Trainer};
