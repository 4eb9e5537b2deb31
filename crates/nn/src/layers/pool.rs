//! Pooling layers.

use crate::error::Result;
use crate::layers::stateless_training;
use crate::module::{Forward, Module};
use ferrograd_tensor::{Pool2dOptions, Tensor};

pub struct MaxPool2d {
    pub options: Pool2dOptions,
    training: bool,
}

impl MaxPool2d {
    /// Square window of `k` with stride `k`, as `nn.MaxPool2d(k)`.
    pub fn new(k: usize) -> Self {
        Self::with_options(Pool2dOptions::new(k))
    }
    pub fn with_options(options: Pool2dOptions) -> Self {
        MaxPool2d {
            options,
            training: true,
        }
    }
}

impl Module for MaxPool2d {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.max_pool2d(self.options)?)
    }
}

pub struct AvgPool2d {
    pub options: Pool2dOptions,
    training: bool,
}

impl AvgPool2d {
    pub fn new(k: usize) -> Self {
        Self::with_options(Pool2dOptions::new(k))
    }
    pub fn with_options(options: Pool2dOptions) -> Self {
        AvgPool2d {
            options,
            training: true,
        }
    }
}

impl Module for AvgPool2d {
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    stateless_training!();
}

impl Forward for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.avg_pool2d(self.options)?)
    }
}
