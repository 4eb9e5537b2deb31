//! A language model on a token stream, nanoGPT's way: each step trains on random contiguous
//! blocks of the training tokens (an endless source whose state is its generator); the
//! evaluation estimates the train and val losses over `eval_iters` random batches each, from a
//! generator of its own; the schedule is linear warmup then cosine decay.

use crate::error::{Result, TrainError};
use crate::step::{Batches, StepOutput, TrainStep};
use ferrograd_data::text::{random_blocks, TokenSplit};
use ferrograd_models::Gpt;
use ferrograd_nn::{Forward, Module, Schedule};
use ferrograd_tensor::{no_grad, Rng, Tensor};
use serde_json::Value;
use std::sync::Arc;

/// Random contiguous blocks of `[batch, block]` tokens (inputs) and the same shifted by one
/// (targets), drawn from one generator.
pub struct RandomBlocks {
    pub tokens: Arc<Vec<u32>>,
    pub batch: usize,
    pub block: usize,
    pub rng: Rng,
    /// Data-parallel replica `rank` of `world`: every replica draws the same `world * batch`
    /// offsets from the one seeded stream and keeps its own `batch` of them, so the replicas
    /// together see what one process at `world * batch` sees. None: a single process.
    pub shard: Option<(usize, usize)>,
}

impl Batches for RandomBlocks {
    type Batch = (Tensor, Tensor);
    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }
    fn epoch(
        &mut self,
        _epoch: usize,
        _start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>> + '_>> {
        let (rank, world) = self.shard.unwrap_or((0, 1));
        if world == 0 || rank >= world {
            return Err(TrainError::config(format!(
                "RandomBlocks: rank {rank} is not one of a world of {world}"
            )));
        }
        Ok(Box::new(std::iter::repeat_with(move || {
            if world == 1 {
                return Ok(random_blocks(
                    &self.tokens,
                    self.batch,
                    self.block,
                    &mut self.rng,
                )?);
            }
            // the other replicas' blocks are drawn only to keep the stream in step
            let mut mine = None;
            for r in 0..world {
                let b = random_blocks(&self.tokens, self.batch, self.block, &mut self.rng)?;
                if r == rank {
                    mine = Some(b);
                }
            }
            mine.ok_or_else(|| TrainError::config("RandomBlocks: no shard drawn"))
        })))
    }
    fn state(&self) -> Value {
        serde_json::json!(self.rng.state())
    }
    fn load_state(&mut self, v: &Value) -> Result<()> {
        self.rng = Rng::from_state(rng_state(v)?);
        Ok(())
    }
}

fn rng_state(v: &Value) -> Result<[u64; 4]> {
    serde_json::from_value(v.clone())
        .map_err(|e| TrainError::config(format!("checkpoint: bad generator state: {e}")))
}

/// Next-token cross-entropy of a GPT; the evaluation reports `train_loss` and `val_loss`.
pub struct LanguageModelStep {
    pub model: Gpt,
    pub split: TokenSplit,
    pub eval_rng: Rng,
    pub batch: usize,
    pub block: usize,
    pub eval_iters: usize,
}

impl LanguageModelStep {
    fn estimate(&mut self, val: bool) -> Result<f64> {
        let data = if val {
            &self.split.val
        } else {
            &self.split.train
        };
        let mut s = 0.0;
        for _ in 0..self.eval_iters {
            let (x, y) = random_blocks(data, self.batch, self.block, &mut self.eval_rng)?;
            s += no_grad(|| Gpt::loss(&self.model.forward(&x)?, &y))?.item()?;
        }
        Ok(s / self.eval_iters.max(1) as f64)
    }
}

impl TrainStep for LanguageModelStep {
    type Batch = (Tensor, Tensor);
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, (x, y): Self::Batch) -> Result<StepOutput> {
        let tokens = x.numel();
        Ok(StepOutput::new(
            Gpt::loss(&self.model.forward(&x)?, &y)?,
            tokens,
        ))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let tl = self.estimate(false)?;
        let vl = self.estimate(true)?;
        Ok(vec![("train_loss".into(), tl), ("val_loss".into(), vl)])
    }
    fn state(&self) -> Value {
        serde_json::json!(self.eval_rng.state())
    }
    fn load_state(&mut self, v: &Value) -> Result<()> {
        self.eval_rng = Rng::from_state(rng_state(v)?);
        Ok(())
    }
}

/// nanoGPT's schedule as a composition: linear warmup over `warmup` steps from
/// `1 / (warmup + 1)` of the rate (step `t` gets `(t + 1) / (warmup + 1)` of it), then cosine
/// decay to `min_lr` at `total`.
pub fn warmup_cosine(warmup: usize, total: usize, min_lr: f64) -> Schedule {
    let cosine = Schedule::Cosine {
        t_max: total.saturating_sub(warmup).max(1),
        eta_min: min_lr,
    };
    if warmup == 0 {
        return cosine;
    }
    Schedule::Sequential {
        schedules: vec![
            Schedule::Linear {
                // (in floating point: `warmup + 1` wraps to 0 for usize::MAX)
                start_factor: 1.0 / (warmup as f64 + 1.0),
                end_factor: 1.0,
                total_iters: warmup,
            },
            cosine,
        ],
        milestones: vec![warmup],
    }
}

#[cfg(test)]
mod tests {
    use super::warmup_cosine;
    use ferrograd_nn::LrSchedule;

    /// A warmup of usize::MAX iterations once wrapped `warmup + 1` to 0 and gave an infinite
    /// learning rate; longer warmups than runs are allowed (as nanoGPT does) and stay finite.
    #[test]
    fn any_warmup_length_gives_finite_rates() {
        for (warmup, total) in [(usize::MAX, 10), (100, 10), (0, 1), (10, 100)] {
            let s = warmup_cosine(warmup, total, 1e-4);
            for t in [0, 1, 5, 10, 99, 1000] {
                let lr = s.lr(1e-3, t, 1e-3);
                assert!(
                    lr.is_finite() && lr >= 0.0,
                    "warmup {warmup}: lr {lr} at {t}"
                );
            }
        }
    }
}
