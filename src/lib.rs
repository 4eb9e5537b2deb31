//! # ferrograd
//!
//! A deep-learning framework written in Rust from first principles. This facade re-exports the
//! parts: [`tensor`] (tensors, the graph and autodiff; its items are also at the crate root),
//! [`nn`] (layers, losses, optimizers, schedules, serialization), [`data`] (datasets and loading)
//! [`models`] (MLP, LeNet-5, GPT, BERT) and [`train`] (the Trainer, callbacks, checkpoints).

pub use ferrograd_data as data;
pub use ferrograd_models as models;
pub use ferrograd_nn as nn;
pub use ferrograd_tensor as tensor;
pub use ferrograd_tensor::*;
pub use ferrograd_train as train;
