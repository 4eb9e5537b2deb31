//! Dropout layer: zeroes each element with probability p in training, identity in eval.

use crate::error::{Error, Result};
use crate::layers::stateless_training;
use crate::module::Module;
use ferrograd_tensor::{Rng, Tensor};
use std::sync::Mutex;

pub struct Dropout {
    pub p: f64,
    rng: Mutex<Rng>,
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
            rng: Mutex::new(Rng::new(seed)),
            training: true,
        })
    }
    /// The generator's state (for checkpoints) and its restoration.
    pub fn rng_state(&self) -> [u64; 4] {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).state()
    }
    pub fn set_rng_state(&self, s: [u64; 4]) {
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(s);
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        Ok(x.dropout(self.p, self.training, &mut rng)?)
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}
