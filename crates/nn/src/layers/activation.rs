//! Parameter-free layers: activations, softmax and flatten.

use crate::error::Result;
use crate::layers::stateless_training;
use crate::module::{Forward, Module};
use ferrograd_tensor::Tensor;

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$s:ident, $x:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name {
            training: bool,
        }
        impl Default for $name {
            fn default() -> Self {
                $name { training: true }
            }
        }
        impl Module for $name {
            fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
            stateless_training!();
        }

        impl Forward for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                let $s = self;
                let _ = $s;
                Ok($body?)
            }
        }
    };
}

activation!(
    /// `max(x, 0)`.
    ReLU, |s, x| x.relu());
activation!(
    /// `1 / (1 + e^-x)`.
    Sigmoid, |s, x| x.sigmoid());
activation!(
    /// `tanh(x)`.
    Tanh, |s, x| x.tanh());
activation!(
    /// Exact (erf) GELU, PyTorch's default.
    GELU, |s, x| x.gelu());

/// `x` for positive x, `slope * x` otherwise (PyTorch's default slope 0.01).
pub struct LeakyReLU {
    pub slope: f64,
    training: bool,
}
impl LeakyReLU {
    pub fn new(slope: f64) -> Self {
        LeakyReLU {
            slope,
            training: true,
        }
    }
}
impl Module for LeakyReLU {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for LeakyReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.leaky_relu(self.slope)?)
    }
}

/// Softmax along a dim.
pub struct Softmax {
    pub dim: isize,
    training: bool,
}
impl Softmax {
    pub fn new(dim: isize) -> Self {
        Softmax {
            dim,
            training: true,
        }
    }
}
impl Module for Softmax {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for Softmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.softmax(self.dim)?)
    }
}

/// Log-softmax along a dim.
pub struct LogSoftmax {
    pub dim: isize,
    training: bool,
}
impl LogSoftmax {
    pub fn new(dim: isize) -> Self {
        LogSoftmax {
            dim,
            training: true,
        }
    }
}
impl Module for LogSoftmax {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for LogSoftmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.log_softmax(self.dim)?)
    }
}

/// Flattens all dims but the first (batch) dim, as `nn.Flatten()`.
pub struct Flatten {
    training: bool,
}
impl Default for Flatten {
    fn default() -> Self {
        Flatten { training: true }
    }
}
impl Module for Flatten {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 {
            return Ok(x.clone());
        }
        Ok(x.flatten(1, -1)?)
    }
}
