//! Layers, one family per file. Each is a [`Module`](crate::Module) whose parameters carry the
//! names PyTorch gives them.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod linear;
pub mod lora;
pub mod norm;
pub mod pool;
pub mod rnn;
pub mod sequential;

pub use activation::{Flatten, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh, GELU};
pub use attention::{CausalSelfAttention, KvCache};
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use linear::Linear;
pub use lora::{LoraAdapter, LoraLinear};
pub use norm::{BatchNorm1d, BatchNorm2d, BatchNormNd, BatchStatistics, LayerNorm};
pub use pool::{AvgPool2d, MaxPool2d};
pub use rnn::{
    GRUCell, LSTMCell, Nonlinearity, RNNCell, RnnOptions, RnnOutput, RnnState, GRU, LSTM, RNN,
};
pub use sequential::Sequential;

/// Implements the parameter-free parts of `Module` for a layer with a `training` field.
macro_rules! stateless_training {
    () => {
        fn set_training(&mut self, training: bool) {
            self.training = training;
        }
        fn is_training(&self) -> bool {
            self.training
        }
    };
}
pub(crate) use stateless_training;
