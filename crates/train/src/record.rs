//! The metrics history of a run: one record per logged step, per epoch and per evaluation. The
//! CSV, plot and TensorBoard callbacks draw from it, and checkpoints keep it, so a resumed run's
//! files hold the whole run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A logged training step: `loss` (that step's), `lr`, `samples_per_s`.
    Step,
    /// The end of an epoch: `loss` (the epoch's mean), `lr`, `samples_per_s`, `seconds` (of
    /// training, the evaluation excluded), the means of the
    /// step's per-sample sums (e.g. `train_acc`), the evaluation's metrics when there was one.
    Epoch,
    /// An evaluation that did not fall at an epoch's end: its metrics and `lr`.
    Eval,
}

impl RecordKind {
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Step => "step",
            RecordKind::Epoch => "epoch",
            RecordKind::Eval => "eval",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: RecordKind,
    /// 1-based epoch the record belongs to.
    pub epoch: usize,
    /// Optimizer steps taken when the record was made.
    pub step: usize,
    pub values: BTreeMap<String, f64>,
}

impl Record {
    pub fn new(kind: RecordKind, epoch: usize, step: usize) -> Self {
        Record {
            kind,
            epoch,
            step,
            values: BTreeMap::new(),
        }
    }
    pub fn with(mut self, key: &str, v: f64) -> Self {
        self.values.insert(key.to_string(), v);
        self
    }
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }
}
