//! The `Dataset` trait: indexed samples, gathered into batches.

use crate::error::Result;
use ferrograd_tensor::Tensor;

/// A finite set of (input, target) samples.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The inputs and targets of the samples at `indices`, stacked along a new first dim.
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)>;
}
