//! Embedding table: row `i` of a [vocab, dim] weight for token id `i` (init N(0, 1) as PyTorch).

use crate::error::Result;
use crate::init;
use crate::layers::stateless_training;
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{Rng, Tensor};

pub struct Embedding {
    pub weight: Tensor,
    training: bool,
}

impl Embedding {
    /// A table around a given `[vocab, dim]` weight, which becomes a trainable leaf.
    pub fn from_weight(weight: Tensor) -> Result<Self> {
        if weight.rank() != 2 {
            return Err(crate::Error::invalid(
                "Embedding",
                format!("weight must be [vocab, dim], got {:?}", weight.dims()),
            ));
        }
        Ok(Embedding {
            weight: weight.requires_grad_(true)?,
            training: true,
        })
    }

    pub fn new(vocab: usize, dim: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Embedding {
            weight: init::normal(&[vocab, dim], 1.0, rng)?.requires_grad_(true)?,
            training: true,
        })
    }
}

impl Module for Embedding {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.weight);
    }
    stateless_training!();
}

impl Forward for Embedding {
    /// `ids`: i64 tensor of any shape; output `ids.shape + [dim]`.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::embedding(&self.weight, ids)?)
    }
}
