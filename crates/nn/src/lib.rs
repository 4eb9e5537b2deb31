//! # ferrograd-nn
//!
//! Layers, losses, optimizers, learning-rate schedules, gradient clipping and safetensors
//! serialization, built on `ferrograd-tensor`'s autograd. Names follow PyTorch: `Linear`,
//! `state_dict` keys like `fc1.weight`, `opt.step()`, `opt.zero_grad()`, `model.train()`.

pub mod clip;
pub mod error;
pub mod init;
pub mod layers;
pub mod loss;
pub mod module;
pub mod optim;
pub mod rng_stream;
pub mod schedule;
pub mod serialize;

pub use error::{Error, Result};
pub use ferrograd_derive::Module;
pub use layers::*;
pub use module::{
    load_state_dict, load_state_dict_partial, named_parameters, num_parameters, parameters,
    rng_streams, state_dict, trainable_parameters, Forward, Module,
};
pub use optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, NAdam, Optimizer, ParamGroup, RAdam, RMSprop, Sgd,
};
pub use rng_stream::RngStream;
pub use schedule::{LrSchedule, LrScheduler, Schedule, SchedulerState};
