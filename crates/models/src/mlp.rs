//! The tutorial's multilayer perceptron: flatten -> fc1 -> ReLU -> fc2. (The tutorial's code also
//! put a ReLU on the output logits; that is a bug, which clips negative logits and stalls
//! learning of the classes they encode, and it is not reproduced here.)

use ferrograd_nn::{Forward, Linear, Module, Result};
use ferrograd_tensor::{Rng, Tensor};

#[derive(Module)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
    training: bool,
}

impl Mlp {
    pub fn new(inputs: usize, hidden: usize, outputs: usize, rng: &mut Rng) -> Result<Self> {
        Ok(Mlp {
            fc1: Linear::new(inputs, hidden, rng)?,
            fc2: Linear::new(hidden, outputs, rng)?,
            training: true,
        })
    }
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() > 2 {
            x.flatten(1, -1)?
        } else {
            x.clone()
        };
        let h = self.fc1.forward_relu(&x)?;
        self.fc2.forward(&h)
    }
}
