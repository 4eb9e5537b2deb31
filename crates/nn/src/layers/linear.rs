//! Fully connected layer: `y = x W^T + b`, W of shape [out, in] (PyTorch's layout).

use crate::error::Result;
use crate::init;
use crate::layers::stateless_training;
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{Rng, Tensor};

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    training: bool,
}

impl Linear {
    /// A layer with PyTorch's default init (Kaiming-uniform a = sqrt(5), bias +-1/sqrt(in)).
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Result<Self> {
        let (w, b) = init::default_weight_and_bias(&[out_features, in_features], rng)?;
        Self::from_tensors(w, Some(b))
    }

    /// A layer without bias.
    pub fn new_no_bias(in_features: usize, out_features: usize, rng: &mut Rng) -> Result<Self> {
        let (w, _) = init::default_weight_and_bias(&[out_features, in_features], rng)?;
        Self::from_tensors(w, None)
    }

    /// `relu(x W^T + b)`: the same values as `relu(self.forward(x))`, with the ReLU applied as
    /// the product is stored when no gradient is recorded (inference).
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.linear_relu(&self.weight, self.bias.as_ref())?)
    }

    /// A layer around given tensors, which become trainable leaves.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Linear {
            weight: weight.requires_grad_(true)?,
            bias: bias.map(|b| b.requires_grad_(true)).transpose()?,
            training: true,
        })
    }
}

impl Module for Linear {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
    stateless_training!();
}

impl Forward for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.linear(&self.weight, self.bias.as_ref())?)
    }
}
