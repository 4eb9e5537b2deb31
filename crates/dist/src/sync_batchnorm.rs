//! SyncBatchNorm: batch norm whose training statistics are those of the whole data-parallel
//! batch (every replica's samples), as PyTorch's `nn.SyncBatchNorm`; DDP's default keeps them
//! per replica ([`ferrograd_nn::BatchNorm2d`]). It is ferrograd-nn's batch norm with its
//! statistics taken by [`SyncStatistics`]: the layer, its evaluation and its running estimates
//! are BatchNorm's own.
//!
//! Per channel c, with `n` the samples (times spatial positions) of all replicas:
//!
//! `mean_c = S1_c / n`, `var_c = S2_c / n - mean_c^2`, `S1 = allsum(sum x)`, `S2 = allsum(sum x^2)`,
//! `y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c`.
//!
//! The sums over the replicas are a differentiable op: its forward sums a rank's tensor over the
//! ranks, and so does its backward (the sum's Jacobian is all ones: `dL/ds_r = sum_r' dL/dS_r'`
//! on every rank). The rest is made of gradchecked tensor ops, so the backward is theirs. The
//! running estimates get the unbiased variance of the whole batch.
//! Every replica must run the same layers in the same order (their collectives pair up).

use crate::collective::{Collective, Flat};
use ferrograd_nn::{BatchNormNd, BatchStatistics};
use ferrograd_tensor::{no_grad, Tensor};
use std::sync::{Arc, Mutex, PoisonError};

type Shared = Arc<Mutex<Box<dyn Collective>>>;

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

/// Per-channel statistics of every replica's batch.
pub struct SyncStatistics {
    comm: Shared,
}

impl SyncStatistics {
    pub fn new(comm: Box<dyn Collective>) -> Self {
        SyncStatistics {
            comm: Arc::new(Mutex::new(comm)),
        }
    }
}

impl BatchStatistics for SyncStatistics {
    fn mean_var(&self, x: &Tensor, dims: &[isize]) -> ferrograd_nn::Result<(Tensor, Tensor, f64)> {
        let c = x.dims().get(1).copied().unwrap_or(1).max(1);
        let local_n = (x.numel() / c) as f64;
        let n = no_grad(|| sum_over_ranks(&self.comm, &Tensor::from_vec(vec![local_n], [1])?))?
            .to_vec_f64()[0];
        let s1 = all_sum(&self.comm, &x.sum(dims, true)?)?;
        let s2 = all_sum(&self.comm, &x.square()?.sum(dims, true)?)?;
        let mean = s1.div_scalar(n.max(1.0))?;
        let var = s2.div_scalar(n.max(1.0))?.sub(&mean.square()?)?;
        Ok((mean, var, n))
    }
}

/// SyncBatchNorm's constructor: [`SyncBatchNorm::new`] gives a [`BatchNormNd`] (inputs of rank 2
/// to 4) whose training statistics are every replica's.
pub struct SyncBatchNorm;

impl SyncBatchNorm {
    /// `channels` channels with eps 1e-5 and momentum 0.1 (PyTorch's defaults), the statistics
    /// summed over `comm`'s replicas.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(channels: usize, comm: Box<dyn Collective>) -> ferrograd_nn::Result<BatchNormNd> {
        Ok(BatchNormNd::new(channels)?.with_statistics(Arc::new(SyncStatistics::new(comm))))
    }
}
