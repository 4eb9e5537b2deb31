//! # ferrograd-models
//!
//! Models built only from `ferrograd-nn` layers, with the parameter names their PyTorch
//! counterparts have, so weights move between the two as safetensors.

pub mod bert;
pub mod fedavg;
pub mod gpt;
pub mod lenet5;
pub mod mlp;
pub mod recommend;
pub mod sentence;
pub mod speech;
pub mod text_classifier;

pub use bert::{Bert, BertConfig};
pub use fedavg::{FedCnn, TwoNn};
pub use gpt::{Gpt, GptConfig};
pub use lenet5::{LeNet5, LeNetStyle};
pub use mlp::Mlp;

use ferrograd_nn::{Forward, Result};
use ferrograd_tensor::Rng;

/// The models the `ferrograd` command knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// The tutorial's MLP, 784 -> 500 -> ReLU -> outputs.
    Mlp,
    /// LeNet-5 with ReLU and max pooling.
    LeNet5,
    /// LeNet-5 as in 1998: tanh and average pooling.
    LeNet5Classic,
    /// The CNN of the federated-averaging paper (McMahan et al. 2017).
    FedCnn,
    /// The 2NN of the same paper: 784 -> 200 -> 200 -> outputs.
    TwoNn,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::LeNet5 => "lenet5",
            ModelKind::LeNet5Classic => "lenet5-classic",
            ModelKind::FedCnn => "cnn",
            ModelKind::TwoNn => "2nn",
        }
    }
}

/// Builds a model with `outputs` logits, initialised from `rng` with PyTorch's default init.
pub fn build(kind: ModelKind, outputs: usize, rng: &mut Rng) -> Result<Box<dyn Forward>> {
    Ok(match kind {
        ModelKind::Mlp => Box::new(Mlp::new(784, 500, outputs, rng)?),
        ModelKind::LeNet5 => Box::new(LeNet5::new(LeNetStyle::Modern, outputs, rng)?),
        ModelKind::LeNet5Classic => Box::new(LeNet5::new(LeNetStyle::Classic, outputs, rng)?),
        ModelKind::FedCnn => Box::new(FedCnn::new(outputs, rng)?),
        ModelKind::TwoNn => Box::new(TwoNn::new(outputs, rng)?),
    })
}
