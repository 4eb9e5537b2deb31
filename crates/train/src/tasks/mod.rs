//! Ready-made training steps for common tasks, the ones the `ferrograd` commands use: a
//! classifier of tensors (images) with cross-entropy or a binary logit, a language model on
//! random blocks of a token stream, a text classifier on a pretrained encoder. Each is a
//! [`TrainStep`](crate::TrainStep) and, where it has its own data order, a
//! [`Batches`](crate::Batches).

pub mod classify;
pub mod language_model;
pub mod recommend;
pub mod text_classification;
