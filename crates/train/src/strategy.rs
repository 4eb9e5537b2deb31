//! How the replicas of a data-parallel run work together, as the Trainer sees it.
//!
//! The Trainer runs the same loop on every rank; a [`Strategy`] makes the replicas agree: rank 0's
//! weights everywhere before the first step, each parameter's gradient averaged over the ranks
//! before the optimizer step (handed over as soon as it is final during the backward, so the
//! communication hides behind the rest of the backward), and the numbers that go into records
//! summed. Rank 0 alone runs the callbacks (prints, logs, metrics files) and writes checkpoints.
//! `ferrograd-dist` implements it over MPI; a run without one is a world of one.

use crate::error::Result;
use ferrograd_tensor::Tensor;

pub trait Strategy {
    /// This replica's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of replicas.
    fn world_size(&self) -> usize;

    /// Before the first step: every replica's `params` and `buffers` take rank 0's values, and
    /// the strategy learns the parameters whose gradients it will average (in this order).
    fn start(&mut self, params: &[Tensor], buffers: &[Tensor]) -> Result<()>;

    /// During the backward of a step's last micro-batch: `param`'s gradient is final.
    fn grad_ready(&mut self, param: &Tensor) -> Result<()>;

    /// After that backward: every parameter's gradient becomes the mean over the replicas
    /// (a parameter without a gradient on some rank counts as zero there).
    fn finish_gradients(&mut self) -> Result<()>;

    /// Sums `values` over the replicas, in place (losses, sample counts, metric sums).
    fn sum(&mut self, values: &mut [f64]) -> Result<()>;

    /// Rank 0's `bytes` on every replica (evaluation results).
    fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>) -> Result<()>;

    /// A line on what the communication cost so far, for the end of a run.
    fn report(&self) -> Option<String> {
        None
    }
}
