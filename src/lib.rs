//! # ferrograd
//!
//! A deep-learning framework written in Rust from first principles. This facade re-exports the
//! parts: [`tensor`] (tensors, the graph and autodiff; its items are also at the crate root),
//! [`nn`] (layers, losses, optimizers, schedules, serialization), [`data`] (datasets and loading)
//! and [`models`] (the tutorial's MLP and LeNet-5).

pub use ferrograd_data as data;
pub use ferrograd_models as models;
pub use ferrograd_nn as nn;
pub use ferrograd_tensor as tensor;
pub use ferrograd_tensor::*;
