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

/// The samples of `inner` at `indices`, in that order (a client's part of a federated split, a
/// shard).
pub struct Subset {
    inner: std::sync::Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl Subset {
    /// Refuses an index past the end of `inner`.
    pub fn new(inner: std::sync::Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            return Err(crate::Error::Invalid(format!(
                "Subset: index {bad} of a dataset of {}",
                inner.len()
            )));
        }
        Ok(Subset { inner, indices })
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let idx = indices
            .iter()
            .map(|&i| {
                self.indices.get(i).copied().ok_or_else(|| {
                    crate::Error::Invalid(format!(
                        "Subset: index {i} of {} samples",
                        self.indices.len()
                    ))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        self.inner.batch(&idx)
    }
}
