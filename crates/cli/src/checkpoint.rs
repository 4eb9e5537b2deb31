//! Training checkpoints: one safetensors file holding the model (`model.*`, PyTorch names), the
//! optimizer state (`optim.*`), and in its metadata the schedule, the progress (epoch, batch,
//! global step), the run's settings and the metric history. Resuming restores all of it, and the
//! data order is recomputed from the seed and the epoch, so a resumed run continues bit-exactly.

use crate::metrics::MetricRow;
use crate::train::{Resolved, TrainArgs};
use ferrograd_nn::serialize::{load_tensors, save_tensors};
use ferrograd_nn::{load_state_dict, state_dict, Error, LrScheduler, Module, Optimizer, Result};
use ferrograd_tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

const FORMAT: &str = "ferrograd-checkpoint-1";

/// What a checkpoint records besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub model: String,
    pub task: String,
    pub optimizer: String,
    pub batch_size: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub train_subset: Option<usize>,
    pub normalize: bool,
    /// Epochs completed (0-based index of the epoch to run next).
    pub epoch: usize,
    /// Batches of `epoch` already done (non-zero only after --max-steps stopped mid-epoch).
    pub batch: usize,
    pub step: usize,
    pub scheduler: LrScheduler,
    pub history: Vec<MetricRow>,
}

pub struct Checkpoint {
    pub meta: Meta,
    pub epoch: usize,
    pub batch: usize,
    pub step: usize,
    pub scheduler: LrScheduler,
    pub history: Vec<MetricRow>,
    model: BTreeMap<String, Tensor>,
    optim: BTreeMap<String, Tensor>,
}

#[allow(clippy::too_many_arguments)]
pub fn save(
    path: &Path,
    a: &TrainArgs,
    r: &Resolved,
    model: &dyn Module,
    opt: &dyn Optimizer,
    sched: &LrScheduler,
    epoch: usize,
    batch: usize,
    step: usize,
    history: &[MetricRow],
) -> Result<()> {
    let meta = Meta {
        format: FORMAT.into(),
        model: a.model.kind().name().into(),
        task: a.task.name().into(),
        optimizer: format!("{:?}", r.optimizer),
        batch_size: a.batch_size,
        seed: a.seed,
        shuffle: !a.no_shuffle,
        train_subset: a.train_subset,
        normalize: a.normalize,
        epoch,
        batch,
        step,
        scheduler: sched.clone(),
        history: history.to_vec(),
    };
    let mut tensors = BTreeMap::new();
    for (k, t) in state_dict(model) {
        tensors.insert(format!("model.{k}"), t);
    }
    for (k, t) in opt.state_dict()? {
        tensors.insert(format!("optim.{k}"), t);
    }
    let json = serde_json::to_string(&meta).map_err(|e| Error::file(path, e))?;
    let mut md = HashMap::new();
    md.insert("ferrograd".to_string(), json);
    save_tensors(path, &tensors, Some(md))
}

impl Checkpoint {
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let (tensors, md) = load_tensors(path)?;
        let json = md.get("ferrograd").ok_or_else(|| {
            Error::file(path, "not a ferrograd checkpoint (no ferrograd metadata)")
        })?;
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| Error::file(path, format!("corrupt checkpoint metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(Error::file(
                path,
                format!("checkpoint format {} is not {FORMAT}", meta.format),
            ));
        }
        let mut model = BTreeMap::new();
        let mut optim = BTreeMap::new();
        for (k, t) in tensors {
            if let Some(n) = k.strip_prefix("model.") {
                model.insert(n.to_string(), t);
            } else if let Some(n) = k.strip_prefix("optim.") {
                optim.insert(n.to_string(), t);
            }
        }
        Ok(Checkpoint {
            epoch: meta.epoch,
            batch: meta.batch,
            step: meta.step,
            scheduler: meta.scheduler.clone(),
            history: meta.history.clone(),
            meta,
            model,
            optim,
        })
    }

    /// The settings that fix the data order and the model must match the resumed run's.
    pub fn check_compatible(&self, a: &TrainArgs, r: &Resolved) -> std::result::Result<(), String> {
        let m = &self.meta;
        let mut diffs = Vec::new();
        let mut cmp = |what: &str, saved: String, now: String| {
            if saved != now {
                diffs.push(format!("{what} was {saved}, now {now}"));
            }
        };
        cmp("--model", m.model.clone(), a.model.kind().name().into());
        cmp("--task", m.task.clone(), a.task.name().into());
        cmp(
            "--optimizer",
            m.optimizer.clone(),
            format!("{:?}", r.optimizer),
        );
        cmp(
            "--batch-size",
            m.batch_size.to_string(),
            a.batch_size.to_string(),
        );
        cmp("--seed", m.seed.to_string(), a.seed.to_string());
        cmp(
            "shuffling",
            m.shuffle.to_string(),
            (!a.no_shuffle).to_string(),
        );
        cmp(
            "--train-subset",
            format!("{:?}", m.train_subset),
            format!("{:?}", a.train_subset),
        );
        cmp(
            "--normalize",
            m.normalize.to_string(),
            a.normalize.to_string(),
        );
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(format!("cannot resume: {}", diffs.join("; ")))
        }
    }

    pub fn restore(&self, model: &dyn Module, opt: &mut dyn Optimizer) -> Result<()> {
        load_state_dict(model, &self.model)?;
        opt.load_state_dict(&self.optim)?;
        Ok(())
    }
}
