//! SyncBatchNorm: batch norm whose training statistics are those of the whole data-parallel
//! batch (every replica's samples), as PyTorch's `nn.SyncBatchNorm`; DDP's default keeps them
//! per replica ([`ferrograd_nn::BatchNorm2d`]).
//!
//! Per channel c, with `n` the samples (times spatial positions) of all replicas:
//!
//! `mean_c = S1_c / n`, `var_c = S2_c / n - mean_c^2`, `S1 = allsum(sum x)`, `S2 = allsum(sum x^2)`,
//! `y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`.
//!
//! The sums over the replicas are a differentiable op: its forward sums a rank's tensor over the
//! ranks, and so does its backward (the sum's Jacobian is all ones: `dL/ds_r = sum_r' dL/dS_r'`
//! on every rank). The rest is made of gradchecked tensor ops, so the backward is theirs. The
//! running estimates are updated as BatchNorm's, with the unbiased variance of the whole batch.
//! Every replica must run the same layers in the same order (their collectives pair up).

use crate::collective::{Collective, Flat};
use ferrograd_nn::{Forward, Module};
use ferrograd_tensor::{no_grad, DType, Tensor};
use std::sync::{Arc, Mutex, PoisonError};

type Shared = Arc<Mutex<Box<dyn Collective>>>;

/// Batch norm of `[N, C]`, `[N, C, L]` or `[N, C, H, W]` inputs over every replica's batch.
pub struct SyncBatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
    eps: f64,
    momentum: f64,
    training: bool,
    comm: Shared,
}

fn sum_over_ranks(comm: &Shared, t: &Tensor) -> ferrograd_tensor::Result<Tensor> {
    let fail = |e: String| ferrograd_tensor::Error::Value {
        op: "SyncBatchNorm sum over the replicas",
        msg: e,
    };
    let dims = t.dims().to_vec();
    let v = t.to_vec_f64();
    let mut c = comm.lock().unwrap_or_else(PoisonError::into_inner);
    let summed = match c
        .start_sum(Flat::F64(v))
        .and_then(|p| p.wait())
        .map_err(|e| fail(e.to_string()))?
    {
        Flat::F64(s) => s,
        Flat::F32(_) => return Err(fail("the sum came back in f32".into())),
    };
    Tensor::from_vec(summed, dims)?.to_dtype(t.dtype())
}

/// `allsum(t)`: the sum of `t` over the replicas, differentiable (its backward is the same sum
/// of the upstream gradients).
fn all_sum(comm: &Shared, t: &Tensor) -> ferrograd_tensor::Result<Tensor> {
    let value = no_grad(|| sum_over_ranks(comm, t))?;
    let c = comm.clone();
    Tensor::custom_op(
        "all_sum",
        &value,
        &[t],
        Box::new(move |_out, g| Ok(vec![Some(sum_over_ranks(&c, g)?)])),
    )
}

impl SyncBatchNorm {
    /// `channels` channels with eps 1e-5 and momentum 0.1 (PyTorch's defaults), summing over
    /// `comm`'s replicas.
    pub fn new(channels: usize, comm: Box<dyn Collective>) -> ferrograd_nn::Result<Self> {
        Ok(SyncBatchNorm {
            weight: Tensor::ones([channels], DType::F32)?.requires_grad_(true)?,
            bias: Tensor::zeros([channels], DType::F32)?.requires_grad_(true)?,
            running_mean: Tensor::zeros([channels], DType::F32)?,
            running_var: Tensor::ones([channels], DType::F32)?,
            num_batches_tracked: Tensor::zeros([], DType::I64)?,
            eps: 1e-5,
            momentum: 0.1,
            training: true,
            comm: Arc::new(Mutex::new(comm)),
        })
    }

    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }
}

impl Module for SyncBatchNorm {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&ferrograd_nn::module::join(prefix, "weight"), &self.weight);
        f(&ferrograd_nn::module::join(prefix, "bias"), &self.bias);
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        use ferrograd_nn::module::join;
        f(&join(prefix, "running_mean"), &self.running_mean);
        f(&join(prefix, "running_var"), &self.running_var);
        f(
            &join(prefix, "num_batches_tracked"),
            &self.num_batches_tracked,
        );
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn is_training(&self) -> bool {
        self.training
    }
}

impl Forward for SyncBatchNorm {
    fn forward(&self, x: &Tensor) -> ferrograd_nn::Result<Tensor> {
        let c = self.weight.numel();
        if !(2..=4).contains(&x.rank()) || x.dims()[1] != c {
            return Err(ferrograd_nn::Error::invalid(
                "SyncBatchNorm",
                format!(
                    "expects input of rank 2 to 4 with {c} channels in dim 1, got {:?}",
                    x.dims()
                ),
            ));
        }
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
        let w = self.weight.reshape(bshape.clone())?;
        let b = self.bias.reshape(bshape.clone())?;
        if !self.training {
            let rm = self.running_mean.reshape(bshape.clone())?;
            let rv = self.running_var.reshape(bshape)?;
            return Ok(x
                .sub(&rm)?
                .mul(&rv.add_scalar(self.eps)?.rsqrt()?)?
                .mul(&w)?
                .add(&b)?);
        }
        let local_n = (x.numel() / c.max(1)) as f64;
        let n_all = no_grad(|| sum_over_ranks(&self.comm, &Tensor::from_vec(vec![local_n], [1])?))?
            .to_vec_f64()[0];
        if n_all < 2.0 {
            return Err(ferrograd_nn::Error::invalid(
                "SyncBatchNorm",
                format!("expected more than 1 value per channel when training, got {n_all}"),
            ));
        }
        let s1 = all_sum(&self.comm, &x.sum(&dims, false)?)?;
        let s2 = all_sum(&self.comm, &x.square()?.sum(&dims, false)?)?;
        let mean = s1.div_scalar(n_all)?;
        let var = s2.div_scalar(n_all)?.sub(&mean.square()?)?;
        let y = x
            .sub(&mean.reshape(bshape.clone())?)?
            .mul(&var.add_scalar(self.eps)?.rsqrt()?.reshape(bshape)?)?
            .mul(&w)?
            .add(&b)?;
        no_grad(|| -> ferrograd_nn::Result<()> {
            let m = self.momentum;
            let unbiased = n_all / (n_all - 1.0);
            let (bm, bv) = (mean.to_vec_f64(), var.to_vec_f64());
            self.running_mean.update_f32(|r| {
                r.iter_mut()
                    .zip(&bm)
                    .for_each(|(r, &v)| *r = ((1.0 - m) * *r as f64 + m * v) as f32)
            })?;
            self.running_var.update_f32(|r| {
                r.iter_mut()
                    .zip(&bv)
                    .for_each(|(r, &v)| *r = ((1.0 - m) * *r as f64 + m * v * unbiased) as f32)
            })?;
            self.num_batches_tracked.update_data::<i64>(|t| t[0] += 1)?;
            Ok(())
        })?;
        Ok(y)
    }
}
