//! What the user supplies: the training step (a model, a batch -> loss and metrics) and the data
//! (batches per epoch, resumable).

use crate::error::Result;
use ferrograd_nn::Module;
use ferrograd_tensor::Tensor;
use serde_json::Value;

/// The result of one forward pass.
pub struct StepOutput {
    /// The scalar loss, with its graph (the Trainer calls `backward`).
    pub loss: Tensor,
    /// Samples in the batch (for samples per second and per-sample means).
    pub samples: usize,
    /// Per-batch totals of per-sample metrics, e.g. `("train_acc", correct as f64)`: the
    /// epoch's record holds each one's sum over the epoch divided by the samples seen.
    pub sums: Vec<(String, f64)>,
}

impl StepOutput {
    pub fn new(loss: Tensor, samples: usize) -> Self {
        StepOutput {
            loss,
            samples,
            sums: Vec::new(),
        }
    }
    pub fn with_sum(mut self, name: &str, v: f64) -> Self {
        self.sums.push((name.to_string(), v));
        self
    }
}

/// A training step: the model and how a batch becomes a loss, and optionally an evaluation.
pub trait TrainStep {
    type Batch;

    /// The model: its parameters, buffers and random streams go into checkpoints; the Trainer
    /// switches it between training and evaluation mode.
    fn model(&self) -> &dyn Module;
    fn model_mut(&mut self) -> &mut dyn Module;

    /// Forward pass and loss of one batch, recording the graph.
    fn forward(&mut self, batch: Self::Batch) -> Result<StepOutput>;

    /// Metrics on held-out data, e.g. `[("test_acc", 0.98)]`; the model is in evaluation mode.
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }

    /// Any other state a resumed run needs (e.g. the generator an evaluation draws from).
    fn state(&self) -> Value {
        Value::Null
    }
    fn load_state(&mut self, _state: &Value) -> Result<()> {
        Ok(())
    }
}

/// Where batches come from.
pub trait Batches {
    type Batch;

    /// Batches in one epoch; None for an endless source (random blocks of a corpus), whose run
    /// is bounded by a step count.
    fn batches_per_epoch(&self) -> Option<usize>;

    /// The batches of `epoch` (0-based) from batch `start` on: the same batches whether the
    /// epoch is run whole or resumed at `start`.
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>> + '_>>;

    /// The state of the source's random streams, for checkpoints.
    fn state(&self) -> Value {
        Value::Null
    }
    fn load_state(&mut self, _state: &Value) -> Result<()> {
        Ok(())
    }
}

/// A [`ferrograd_data::DataLoader`] is a source of batches: its order is a function of the seed
/// and the epoch, so it keeps no state of its own.
impl Batches for ferrograd_data::DataLoader {
    type Batch = ferrograd_data::Batch;
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.num_batches())
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>> + '_>> {
        Ok(Box::new(
            ferrograd_data::DataLoader::epoch(self, epoch, start).map(|b| b.map_err(Into::into)),
        ))
    }
}
