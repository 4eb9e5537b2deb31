//! One checkpoint format for every workload: a safetensors file holding the model's state dict
//! (`model.*`, PyTorch names), the optimizer's state (`optim.*`), the best weights so far when
//! the run keeps them (`best.*`), and in its metadata (`ferrograd.checkpoint`, JSON) the run's
//! configuration, the position (epoch, batch, optimizer step, last evaluation), the schedule,
//! every random stream (each dropout layer's, the data order's, the step's own), the metrics so
//! far and the best metric. Resuming restores all of it, so a resumed run continues bit for bit.

use crate::error::{Result, TrainError};
use crate::record::Record;
use ferrograd_nn::serialize::{load_tensors, save_tensors};
use ferrograd_nn::SchedulerState;
use ferrograd_tensor::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT: &str = "ferrograd-checkpoint-2";
const META_KEY: &str = "ferrograd.checkpoint";

/// One setting of the run, as the command line names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// The flag (`--lr`) or, for settings without one, a name.
    pub flag: String,
    pub value: String,
    /// Whether a resumed run may give it another value (`--epochs`, `--log-every`, output
    /// paths); the others fix the run (model, data order, optimizer, schedule).
    pub may_change: bool,
}

impl Setting {
    pub fn fixed(flag: &str, value: impl ToString) -> Self {
        Setting {
            flag: flag.into(),
            value: value.to_string(),
            may_change: false,
        }
    }
    pub fn changeable(flag: &str, value: impl ToString) -> Self {
        Setting {
            flag: flag.into(),
            value: value.to_string(),
            may_change: true,
        }
    }
}

/// The best value of the chosen metric so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub metric: String,
    pub value: f64,
    pub step: usize,
    pub epoch: usize,
}

/// Everything but the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    /// What wrote it (`mnist`, `gpt`, `finetune`, or a user's name).
    pub workload: String,
    pub settings: Vec<Setting>,
    /// Epoch to run next (0-based).
    pub epoch: usize,
    /// Batches of that epoch already done, on each of `world_size` replicas.
    pub batch: usize,
    /// The replicas that trained it (1 without data parallelism): the position in samples is
    /// `batch * world_size * per-replica batch`, so a run can resume on another number of ranks.
    #[serde(default = "one")]
    pub world_size: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// The step of the last evaluation (not repeated on resume).
    pub last_eval_step: Option<usize>,
    pub schedule: Option<SchedulerState>,
    /// The model's random streams by name.
    pub rng_streams: BTreeMap<String, [u64; 4]>,
    pub data: Value,
    pub task: Value,
    pub history: Vec<Record>,
    pub best: Option<Best>,
    /// Evaluations since the best one (early stopping).
    pub evals_since_best: usize,
}

fn one() -> usize {
    1
}

impl Meta {
    /// What can be checked without the run: positions that agree with each other, learning
    /// rates and metrics that are numbers. (The batch is checked against the data's epoch length
    /// when the run resumes, the tensors against the model.)
    fn check(&self) -> std::result::Result<(), String> {
        if let Some(e) = self.last_eval_step.filter(|&e| e > self.step) {
            return Err(format!(
                "its last evaluation (step {e}) is after its step {}",
                self.step
            ));
        }
        if let Some(b) = &self.best {
            if b.step > self.step || b.epoch > self.epoch || b.value.is_nan() {
                return Err(format!(
                    "its best {} {} at step {} epoch {} does not fit step {} epoch {}",
                    b.metric, b.value, b.step, b.epoch, self.step, self.epoch
                ));
            }
        }
        if let Some(s) = &self.schedule {
            if let Some(lr) = s.base_lrs.iter().find(|l| !l.is_finite() || **l < 0.0) {
                return Err(format!("its schedule's base learning rate is {lr}"));
            }
            if s.last_epoch > self.step.saturating_add(self.epoch).saturating_add(1) {
                return Err(format!(
                    "its schedule has taken {} steps, the run {}",
                    s.last_epoch, self.step
                ));
            }
        }
        Ok(())
    }
}

pub struct Checkpoint {
    pub meta: Meta,
    pub model: BTreeMap<String, Tensor>,
    pub optim: BTreeMap<String, Tensor>,
    pub best: BTreeMap<String, Tensor>,
}

impl Checkpoint {
    /// Writes it atomically (temporary file, renamed into place).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = BTreeMap::new();
        for (prefix, part) in [
            ("model", &self.model),
            ("optim", &self.optim),
            ("best", &self.best),
        ] {
            for (k, t) in part {
                tensors.insert(format!("{prefix}.{k}"), t.clone());
            }
        }
        let json = serde_json::to_string(&self.meta).map_err(|e| TrainError::file(path, e))?;
        let mut md = HashMap::new();
        md.insert(META_KEY.to_string(), json);
        Ok(save_tensors(path, &tensors, Some(md))?)
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let (tensors, md) = load_tensors(path)?;
        Self::from_parts(path, tensors, md)
    }

    /// A checkpoint from the bytes of its file (`path` only names it in errors): what
    /// [`Checkpoint::load`] does after reading, the fuzz target's entry point.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
        let (tensors, md) = ferrograd_nn::serialize::tensors_from_bytes(bytes)
            .map_err(|e| TrainError::file(path, e))?;
        Self::from_parts(path, tensors, md)
    }

    fn from_parts(
        path: &Path,
        tensors: BTreeMap<String, Tensor>,
        md: HashMap<String, String>,
    ) -> Result<Checkpoint> {
        let json = md.get(META_KEY).ok_or_else(|| {
            TrainError::file(
                path,
                "not a ferrograd checkpoint (no ferrograd.checkpoint metadata)",
            )
        })?;
        let meta: Meta = serde_json::from_str(json)
            .map_err(|e| TrainError::file(path, format!("corrupt checkpoint metadata: {e}")))?;
        if meta.format != FORMAT {
            return Err(TrainError::file(
                path,
                format!("checkpoint format {} is not {FORMAT}", meta.format),
            ));
        }
        meta.check()
            .map_err(|e| TrainError::file(path, format!("corrupt checkpoint: {e}")))?;
        let (mut model, mut optim, mut best) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for (k, t) in tensors {
            let (part, name) = k.split_once('.').unwrap_or(("", &k));
            let name = name.to_string();
            match part {
                "model" => model.insert(name, t),
                "optim" => optim.insert(name, t),
                "best" => best.insert(name, t),
                _ => {
                    return Err(TrainError::file(
                        path,
                        format!("unexpected tensor {k} in a checkpoint"),
                    ))
                }
            };
        }
        Ok(Checkpoint {
            meta,
            model,
            optim,
            best,
        })
    }

    /// Compares the resumed run's settings with the checkpoint's. A fixed setting that differs
    /// is an error naming every such flag with both values; changeable ones that differ are
    /// returned as lines for the banner (`--epochs 3 (was 2)`).
    pub fn check_settings(
        &self,
        path: &Path,
        workload: &str,
        now: &[Setting],
    ) -> Result<Vec<String>> {
        if self.meta.workload != workload {
            return Err(TrainError::file(
                path,
                format!("a checkpoint of {}, not of {workload}", self.meta.workload),
            ));
        }
        let saved: BTreeMap<&str, &Setting> = self
            .meta
            .settings
            .iter()
            .map(|s| (s.flag.as_str(), s))
            .collect();
        let (mut refused, mut changed) = (Vec::new(), Vec::new());
        for s in now {
            let was = saved.get(s.flag.as_str()).map(|w| w.value.as_str());
            if was == Some(s.value.as_str()) {
                continue;
            }
            let was = was.unwrap_or("(not set)");
            if s.may_change {
                changed.push(format!("{} {} (was {was})", s.flag, s.value));
            } else {
                refused.push(format!(
                    "{} is {was} in the checkpoint, {} now",
                    s.flag, s.value
                ));
            }
        }
        if !refused.is_empty() {
            return Err(TrainError::config(format!(
                "cannot resume from {}: {} (these fix the run; give the checkpoint's values or start a new run)",
                path.display(),
                refused.join("; ")
            )));
        }
        Ok(changed)
    }
}
