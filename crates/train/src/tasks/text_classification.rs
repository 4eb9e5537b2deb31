//! A text classifier on a pretrained encoder, Hugging Face's way: the examples in a fresh seeded
//! order each epoch, padded per batch; cross-entropy of the classifier's logits; accuracy and
//! macro-F1 on the held-out split; linear warmup then linear decay to 0.

use crate::error::Result;
use crate::metrics::accuracy_and_macro_f1;
use crate::step::{Batches, StepOutput, TrainStep};
use ferrograd_data::subword::pad_batch;
use ferrograd_models::bert::BertClassifier;
use ferrograd_models::text_classifier::predict_classes;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{Module, Schedule};
use ferrograd_tensor::{Rng, Tensor};
use std::sync::Arc;

/// Hugging Face's linear schedule as a composition: from 0 up to the rate over `warmup` steps,
/// then down to 0 at `total`.
pub fn warmup_linear_decay(warmup: usize, total: usize) -> Schedule {
    let decay = Schedule::Linear {
        start_factor: 1.0,
        end_factor: 0.0,
        total_iters: (total - warmup.min(total)).max(1),
    };
    if warmup == 0 {
        return decay;
    }
    Schedule::Sequential {
        schedules: vec![
            Schedule::Linear {
                start_factor: 0.0,
                end_factor: 1.0,
                total_iters: warmup,
            },
            decay,
        ],
        milestones: vec![warmup],
    }
}

/// A padded batch of token ids, its mask and its labels.
pub struct TextBatch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub labels: Tensor,
}

/// The training examples in a fresh order each epoch, from `(seed, epoch)`.
pub struct Examples {
    pub ids: Arc<Vec<Vec<u32>>>,
    pub labels: Arc<Vec<usize>>,
    pub batch: usize,
    pub seed: u64,
    /// Data-parallel replica `rank` of `world`: each epoch's order is sharded as PyTorch's
    /// DistributedSampler does ([`ferrograd_data::loader::shard_of`]). None: a single process.
    pub shard: Option<(usize, usize)>,
}

impl Examples {
    fn world(&self) -> usize {
        self.shard.map_or(1, |(_, w)| w.max(1))
    }
}

impl Batches for Examples {
    type Batch = TextBatch;
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.ids.len().div_ceil(self.world()).div_ceil(self.batch))
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<TextBatch>> + '_>> {
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        let e = epoch as u64 + 1;
        Rng::new(self.seed ^ e.wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
        if let Some((rank, world)) = self.shard {
            order = ferrograd_data::loader::shard_of(order, rank, world);
        }
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch).map(<[usize]>::to_vec).collect();
        let (ids, labels) = (self.ids.clone(), self.labels.clone());
        Ok(Box::new(chunks.into_iter().skip(start).map(move |c| {
            let seqs: Vec<Vec<u32>> = c.iter().map(|&j| ids[j].clone()).collect();
            let b = pad_batch(&seqs, 0)?;
            let y: Vec<i64> = c.iter().map(|&j| labels[j] as i64).collect();
            Ok(TextBatch {
                ids: b.ids,
                mask: b.mask,
                labels: Tensor::from_vec(y, [c.len()])?,
            })
        })))
    }
}

/// Cross-entropy of the classifier's logits; the evaluation is the held-out split's accuracy
/// and macro-F1.
pub struct TextClassifierStep {
    pub model: BertClassifier,
    pub val_ids: Vec<Vec<u32>>,
    pub val_labels: Vec<usize>,
    pub classes: usize,
}

impl TrainStep for TextClassifierStep {
    type Batch = TextBatch;
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, b: TextBatch) -> Result<StepOutput> {
        let n = b.labels.numel();
        let logits = self.model.logits(&b.ids, &b.mask)?;
        let loss = cross_entropy(&logits, &b.labels, &ClassLossOptions::default())?;
        Ok(StepOutput::new(loss, n))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let pred = predict_classes(&self.model, &self.val_ids, 64)?;
        let (acc, f1) = accuracy_and_macro_f1(&pred, &self.val_labels, self.classes)
            .map_err(crate::TrainError::Config)?;
        let correct = pred
            .iter()
            .zip(&self.val_labels)
            .filter(|(p, t)| p == t)
            .count();
        Ok(vec![
            ("val_accuracy".into(), acc),
            ("val_macro_f1".into(), f1),
            ("val_correct".into(), correct as f64),
            ("val_total".into(), pred.len() as f64),
        ])
    }
}
