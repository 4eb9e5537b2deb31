//! Normalisation layers, written with tensor ops so their backward is the composition of
//! gradchecked ops.
//!
//! Batch norm over the batch (and spatial) dims, per channel c:
//! `y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`, with the biased batch variance in
//! training; the running estimates are updated as `r = (1 - momentum) r + momentum * stat` with the
//! unbiased variance, and used in eval mode. Layer norm does the same over the trailing
//! `normalized_shape` dims of each sample, with no running estimates.

use crate::error::{Error, Result};
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{no_grad, DType, Tensor};
use std::sync::Arc;

/// Where a training batch's per-channel statistics come from: without one, this process's
/// batch; `ferrograd_dist::SyncBatchNorm` gives every data-parallel replica's.
pub trait BatchStatistics: Send + Sync {
    /// The mean and the biased variance of `x` per channel (dim 1), reduced over `dims` and
    /// kept as size-1 dims, and the number of values each channel's statistics count.
    fn mean_var(&self, x: &Tensor, dims: &[isize]) -> Result<(Tensor, Tensor, f64)>;
}

struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
    eps: f64,
    momentum: f64,
    training: bool,
    /// Allowed input ranks (2 or 3 for 1d, 4 for 2d) and the layer's name for errors.
    ranks: &'static [usize],
    name: &'static str,
    statistics: Option<Arc<dyn BatchStatistics>>,
}

impl BatchNorm {
    fn new(c: usize, ranks: &'static [usize], name: &'static str) -> Result<Self> {
        Ok(BatchNorm {
            weight: Tensor::ones([c], DType::F32)?.requires_grad_(true)?,
            bias: Tensor::zeros([c], DType::F32)?.requires_grad_(true)?,
            running_mean: Tensor::zeros([c], DType::F32)?,
            running_var: Tensor::ones([c], DType::F32)?,
            num_batches_tracked: Tensor::zeros([], DType::I64)?,
            eps: 1e-5,
            momentum: 0.1,
            training: true,
            ranks,
            name,
            statistics: None,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.weight.numel();
        if !self.ranks.contains(&x.rank()) || x.dims()[1] != c {
            return Err(Error::invalid(
                self.name,
                format!(
                    "expects input of rank {:?} with {c} channels in dim 1, got {:?}",
                    self.ranks,
                    x.dims()
                ),
            ));
        }
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
        let w = self.weight.reshape(bshape.clone())?;
        let b = self.bias.reshape(bshape.clone())?;
        if self.training {
            let too_few = || {
                Error::invalid(
                    self.name,
                    format!(
                        "expected more than 1 value per channel when training, got input {:?}",
                        x.dims()
                    ),
                )
            };
            let (mean, var, n) = match &self.statistics {
                Some(s) => s.mean_var(x, &dims)?,
                None => {
                    let n = (x.numel() / c) as f64;
                    if n < 2.0 {
                        return Err(too_few());
                    }
                    (x.mean(&dims, true)?, x.var(&dims, 0, true)?, n)
                }
            };
            if n < 2.0 {
                return Err(too_few());
            }
            let y = x
                .sub(&mean)?
                .mul(&var.add_scalar(self.eps)?.rsqrt()?)?
                .mul(&w)?
                .add(&b)?;
            no_grad(|| -> Result<()> {
                let m = self.momentum;
                let bm = mean.reshape([c])?.to_vec::<f32>()?;
                let unbiased = n / (n - 1.0);
                let bv = var.reshape([c])?.to_vec::<f32>()?;
                self.running_mean.update_f32(|r| {
                    r.iter_mut()
                        .zip(&bm)
                        .for_each(|(r, &v)| *r = ((1.0 - m) * *r as f64 + m * v as f64) as f32)
                })?;
                self.running_var.update_f32(|r| {
                    r.iter_mut().zip(&bv).for_each(|(r, &v)| {
                        *r = ((1.0 - m) * *r as f64 + m * v as f64 * unbiased) as f32
                    })
                })?;
                self.num_batches_tracked.update_data::<i64>(|t| t[0] += 1)?;
                Ok(())
            })?;
            Ok(y)
        } else {
            let rm = self.running_mean.reshape(bshape.clone())?;
            let rv = self.running_var.reshape(bshape)?;
            Ok(x.sub(&rm)?
                .mul(&rv.add_scalar(self.eps)?.rsqrt()?)?
                .mul(&w)?
                .add(&b)?)
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.weight);
        f(&join(prefix, "bias"), &self.bias);
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "running_mean"), &self.running_mean);
        f(&join(prefix, "running_var"), &self.running_var);
        f(
            &join(prefix, "num_batches_tracked"),
            &self.num_batches_tracked,
        );
    }
}

macro_rules! batchnorm {
    ($(#[$doc:meta])* $name:ident, $ranks:expr) => {
        $(#[$doc])*
        pub struct $name(BatchNorm);
        impl $name {
            /// Batch norm over `channels` with eps 1e-5 and momentum 0.1 (PyTorch's defaults).
            pub fn new(channels: usize) -> Result<Self> {
                Ok($name(BatchNorm::new(channels, $ranks, stringify!($name))?))
            }
            /// Changes eps and momentum.
            pub fn with(mut self, eps: f64, momentum: f64) -> Self {
                self.0.eps = eps;
                self.0.momentum = momentum;
                self
            }
            pub fn running_mean(&self) -> &Tensor {
                &self.0.running_mean
            }
            pub fn running_var(&self) -> &Tensor {
                &self.0.running_var
            }
            /// Takes the training statistics from `s` instead of this process's batch.
            pub fn with_statistics(mut self, s: Arc<dyn BatchStatistics>) -> Self {
                self.0.statistics = Some(s);
                self
            }
        }
        impl Module for $name {
            fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit_parameters(prefix, f)
            }
            fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
                self.0.visit_buffers(prefix, f)
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
            fn is_training(&self) -> bool {
                self.0.training
            }
        }

        impl Forward for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                self.0.forward(x)
            }
        }
    };
}

batchnorm!(
    /// Batch norm of `[N, C]` or `[N, C, L]` inputs.
    BatchNorm1d, &[2, 3]);
batchnorm!(
    /// Batch norm of `[N, C, H, W]` inputs.
    BatchNorm2d, &[4]);
batchnorm!(
    /// Batch norm of inputs of rank 2 to 4 with the channels in dim 1 (as PyTorch's
    /// SyncBatchNorm takes them).
    BatchNormNd, &[2, 3, 4]);

/// Layer norm over the trailing dims `normalized_shape`, with affine weight and bias.
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
    shape: Vec<usize>,
    training: bool,
}

impl LayerNorm {
    /// A layer norm around given affine parameters (their shape is the normalized shape).
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        if weight.dims() != bias.dims() {
            return Err(Error::invalid(
                "LayerNorm",
                format!(
                    "weight {:?} and bias {:?} differ",
                    weight.dims(),
                    bias.dims()
                ),
            ));
        }
        Ok(LayerNorm {
            shape: weight.dims().to_vec(),
            weight: weight.requires_grad_(true)?,
            bias: bias.requires_grad_(true)?,
            eps,
            training: true,
        })
    }

    pub fn new(normalized_shape: &[usize], eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: Tensor::ones(normalized_shape, DType::F32)?.requires_grad_(true)?,
            bias: Tensor::zeros(normalized_shape, DType::F32)?.requires_grad_(true)?,
            eps,
            shape: normalized_shape.to_vec(),
            training: true,
        })
    }
}

impl Module for LayerNorm {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join(prefix, "weight"), &self.weight);
        f(&join(prefix, "bias"), &self.bias);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn is_training(&self) -> bool {
        self.training
    }
}

impl Forward for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.shape.len();
        if x.rank() < k || x.dims()[x.rank() - k..] != self.shape[..] {
            return Err(Error::invalid(
                "LayerNorm",
                format!(
                    "input {:?} does not end in normalized shape {:?}",
                    x.dims(),
                    self.shape
                ),
            ));
        }
        let n = self.shape.iter().product();
        Ok(x.layer_norm(n, Some(&self.weight), Some(&self.bias), self.eps)?)
    }
}
