//! Embedding table: row `i` of a [vocab, dim] weight for token id `i` (init N(0, 1) as PyTorch).
//! With `sparse` (PyTorch's `nn.Embedding(sparse=True)`) the weight's gradient is row-sparse:
//! the backward touches only the rows looked up and optimizers update only those.

use crate::error::Result;
use crate::init;
use crate::layers::stateless_training;
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{Rng, Tensor};

pub struct Embedding {
    pub weight: Tensor,
    /// Whether lookups give the weight a row-sparse gradient.
    pub sparse: bool,
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
            sparse: false,
            training: true,
        })
    }

    pub fn new(vocab: usize, dim: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Embedding {
            weight: init::normal(&[vocab, dim], 1.0, rng)?.requires_grad_(true)?,
            sparse: false,
            training: true,
        })
    }

    /// The same table, its lookups giving row-sparse gradients when `sparse`.
    pub fn with_sparse(mut self, sparse: bool) -> Self {
        self.sparse = sparse;
        self
    }

    /// Rows of the table.
    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Columns of the table.
    pub fn embedding_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Bags of rows combined into `[bags, dim]` (PyTorch's `nn.EmbeddingBag` over this table):
    /// see [`Tensor::embedding_bag`].
    pub fn bag(
        &self,
        ids: &Tensor,
        offsets: &Tensor,
        per_sample_weights: Option<&Tensor>,
        mode: ferrograd_tensor::BagMode,
    ) -> Result<Tensor> {
        Ok(Tensor::embedding_bag(
            &self.weight,
            ids,
            offsets,
            per_sample_weights,
            mode,
            self.sparse,
        )?)
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
        if self.sparse {
            Ok(Tensor::embedding_sparse(&self.weight, ids, true)?)
        } else {
            Ok(Tensor::embedding(&self.weight, ids)?)
        }
    }
}
