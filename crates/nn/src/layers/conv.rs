//! 2-D convolution layer over [N, C, H, W], weight [out, in/groups, kh, kw].

use crate::error::Result;
use crate::init;
use crate::layers::stateless_training;
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{Conv2dOptions, Rng, Tensor};

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub options: Conv2dOptions,
    training: bool,
}

impl Conv2d {
    /// A square-kernel convolution with PyTorch's default init.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv2dOptions,
        rng: &mut Rng,
    ) -> Result<Self> {
        let g = options.groups.max(1);
        let (w, b) =
            init::default_weight_and_bias(&[out_channels, in_channels / g, kernel, kernel], rng)?;
        Ok(Conv2d {
            weight: w.requires_grad_(true)?,
            bias: Some(b.requires_grad_(true)?),
            options,
            training: true,
        })
    }
}

impl Module for Conv2d {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), b);
        }
    }
    stateless_training!();
}

impl Forward for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, self.bias.as_ref(), self.options)?)
    }
}
