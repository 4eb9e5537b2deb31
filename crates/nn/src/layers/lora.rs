//! LoRA, low-rank adaptation (Hu et al. 2021): a frozen linear layer plus a trainable low-rank
//! update,
//!
//! `y = x W^T + b + s (x A^T) B^T`, with `A: [r, in]`, `B: [out, r]`, `s = alpha / r`.
//!
//! `B` starts at zero, so an adapted layer first computes exactly what the base layer did; `A`
//! starts Kaiming-uniform as in PEFT. Only `A` and `B` train: the base weight and bias are marked
//! `requires_grad = false`, so backward allocates no gradient for them. The gradients are those
//! of the two products, `dB = s dY^T (X A^T)` and `dA = s (dY B)^T X`, recorded by the `linear`
//! ops. [`LoraLinear::merge`] folds the update into the base weight, `W' = W + s B A`, for export.
//!
//! Names: the base keeps its own (`query.weight`, `query.bias`), so pretrained weights load into
//! an adapted model unchanged; the adapter adds `query.lora_A.weight` and `query.lora_B.weight`.

use crate::error::{Error, Result};
use crate::init;
use crate::layers::Linear;
use crate::module::{join, Forward, Module};
use ferrograd_tensor::{no_grad, Rng, Tensor};

/// The trainable low-rank pair of a [`LoraLinear`].
pub struct LoraAdapter {
    /// `[r, in]`
    pub a: Tensor,
    /// `[out, r]`
    pub b: Tensor,
    /// `alpha / r`
    pub scale: f64,
}

/// A linear layer that can carry a LoRA adapter.
pub struct LoraLinear {
    pub base: Linear,
    pub adapter: Option<LoraAdapter>,
    training: bool,
}

impl LoraLinear {
    /// The plain layer, no adapter yet.
    pub fn new(base: Linear) -> Self {
        LoraLinear {
            base,
            adapter: None,
            training: true,
        }
    }

    /// Adds a rank-`rank` adapter with scale `alpha / rank` and freezes the base weights.
    pub fn attach(&mut self, rank: usize, alpha: f64, rng: &mut Rng) -> Result<()> {
        let [out, inp] = self.base.weight.dims() else {
            return Err(Error::invalid(
                "LoraLinear",
                "base weight must be [out, in]",
            ));
        };
        let (out, inp) = (*out, *inp);
        if rank == 0 || rank > out.min(inp) {
            return Err(Error::invalid(
                "LoraLinear",
                format!(
                    "rank {rank} must be in 1..={} for a [{out}, {inp}] weight",
                    out.min(inp)
                ),
            ));
        }
        if !alpha.is_finite() || alpha <= 0.0 {
            return Err(Error::invalid(
                "LoraLinear",
                format!("alpha must be positive, got {alpha}"),
            ));
        }
        if self.adapter.is_some() {
            return Err(Error::invalid(
                "LoraLinear",
                "an adapter is already attached",
            ));
        }
        let dtype = self.base.weight.dtype();
        let (a, _) = init::default_weight_and_bias(&[rank, inp], rng)?;
        let a = a.to_dtype(dtype)?.detach().requires_grad_(true)?;
        let b = Tensor::zeros([out, rank], dtype)?.requires_grad_(true)?;
        self.base.weight.requires_grad_(false)?;
        if let Some(bias) = &self.base.bias {
            bias.requires_grad_(false)?;
        }
        self.adapter = Some(LoraAdapter {
            a,
            b,
            scale: alpha / rank as f64,
        });
        Ok(())
    }

    /// Folds the adapter into the base weight (`W += s B A`) and removes it. The base weights
    /// become trainable again, as an ordinary linear layer's are.
    pub fn merge(&mut self) -> Result<()> {
        if let Some(ad) = self.adapter.take() {
            let delta = no_grad(|| ad.b.matmul(&ad.a)?.mul_scalar(ad.scale))?;
            let merged = no_grad(|| self.base.weight.add(&delta))?;
            self.base.weight.copy_from(&merged)?;
            self.base.weight.requires_grad_(true)?;
            if let Some(bias) = &self.base.bias {
                bias.requires_grad_(true)?;
            }
        }
        Ok(())
    }
}

impl Module for LoraLinear {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.base.visit_parameters(prefix, f);
        if let Some(ad) = &self.adapter {
            f(&join(prefix, "lora_A.weight"), &ad.a);
            f(&join(prefix, "lora_B.weight"), &ad.b);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn is_training(&self) -> bool {
        self.training
    }
}

impl Forward for LoraLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.adapter {
            None => Ok(y),
            Some(ad) => {
                let low = x.linear(&ad.a, None)?.linear(&ad.b, None)?;
                Ok(y.add(&low.mul_scalar(ad.scale)?)?)
            }
        }
    }
}
