//! Dropout layer: zeroes each element with probability p in training, identity in eval.

use crate::error::{Error, Result};
use crate::layers::stateless_training;
use crate::module::{Forward, Module};
use crate::rng_stream::RngStream;
use ferrograd_tensor::Tensor;

pub struct Dropout {
    pub p: f64,
    rng: RngStream,
    training: bool,
}

impl Dropout {
    /// Dropout with probability `p`; its masks come from a generator seeded with `seed`.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("p must be in [0, 1], got {p}"),
            ));
        }
        Ok(Dropout {
            p,
            rng: RngStream::new(seed),
            training: true,
        })
    }
    /// The generator's state (for checkpoints) and its restoration.
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.state()
    }
    pub fn set_rng_state(&self, s: [u64; 4]) {
        self.rng.set_state(s);
    }
}

impl Module for Dropout {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_rng_streams(&self, prefix: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        f(prefix, &self.rng);
    }
    stateless_training!();
}

impl Forward for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.dropout(self.p, self.training, &mut self.rng.lock())?)
    }
}
