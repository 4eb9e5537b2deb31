//! Callbacks: what happens around the loop. The Trainer calls each at the start, after every
//! optimizer step, after every evaluation, at the end of every epoch and at the end; built in
//! are the progress bar, the log lines, metrics CSV, PNG curves and TensorBoard event files.

mod csv;
mod log;
mod plot;
mod progress;
mod tensorboard;

pub use self::csv::{Column, CsvMetrics};
pub use self::log::{EpochLine, LogLines, LossShown};
pub use self::plot::{plot_curves, plot_loss_and_accuracy, Plot, PlotKind};
pub use self::progress::ProgressBar;
pub use self::tensorboard::TensorBoard;

use crate::error::Result;
use crate::record::Record;

/// Where the run starts (fresh or resumed).
pub struct RunStart<'a> {
    pub epochs: Option<usize>,
    pub batches_per_epoch: Option<usize>,
    pub start_epoch: usize,
    pub start_step: usize,
    /// Records of the run so far (non-empty when resumed).
    pub history: &'a [Record],
}

/// After an optimizer step.
pub struct StepEnd {
    /// 0-based epoch.
    pub epoch: usize,
    pub epochs: Option<usize>,
    /// 1-based batch within the epoch (the last micro-batch of the step).
    pub batch: usize,
    pub batches_per_epoch: Option<usize>,
    /// Optimizer steps taken so far.
    pub step: usize,
    /// The step's loss (mean over its micro-batches).
    pub loss: f64,
    /// Mean loss of the epoch's steps so far.
    pub epoch_loss: f64,
    /// Learning rate of the first parameter group, after the schedule moved.
    pub lr: f64,
    /// Samples per second in this epoch so far.
    pub samples_per_s: f64,
    /// Batches of this epoch run by this process (differs from `batch` after a resume).
    pub batches_this_run: usize,
}

/// After an evaluation.
pub struct EvalEnd<'a> {
    pub epoch: usize,
    pub step: usize,
    pub metrics: &'a [(String, f64)],
    /// Whether the chosen metric improved on the best so far (always false without one).
    pub is_best: bool,
    /// Samples per second of training since this process started.
    pub samples_per_s: f64,
    pub lr: f64,
    /// Whether it falls at the end of an epoch (the epoch's record then holds it).
    pub at_epoch_end: bool,
}

/// At the end of an epoch (after its evaluation, before a per-epoch schedule moves).
pub struct EpochEnd<'a> {
    pub epoch: usize,
    pub epochs: Option<usize>,
    pub step: usize,
    /// Mean loss of the epoch's steps.
    pub loss: f64,
    pub lr: f64,
    /// Per-sample means of the step's sums (e.g. `train_acc`).
    pub means: &'a [(String, f64)],
    /// The evaluation at this epoch's end, if any.
    pub eval: Option<&'a [(String, f64)]>,
    pub is_best: bool,
    pub samples: usize,
    /// Seconds of training in the epoch (the evaluation excluded).
    pub seconds: f64,
}

/// Something that happens around the loop. Every method has an empty default.
pub trait Callback {
    fn on_train_start(&mut self, _s: &RunStart<'_>) -> Result<()> {
        Ok(())
    }
    /// Before the epoch's first batch; `batches` is how many this process will run.
    fn on_epoch_start(&mut self, _epoch: usize, _batches: Option<usize>) -> Result<()> {
        Ok(())
    }
    /// After a step; `record` is set when the step is a logged one.
    fn on_step_end(&mut self, _s: &StepEnd, _record: Option<&Record>) -> Result<()> {
        Ok(())
    }
    fn on_evaluation(&mut self, _e: &EvalEnd<'_>, _record: Option<&Record>) -> Result<()> {
        Ok(())
    }
    fn on_epoch_end(&mut self, _e: &EpochEnd<'_>, _record: &Record) -> Result<()> {
        Ok(())
    }
    /// At the end of a run that completed or stopped at `--max-steps`, with its whole history.
    fn on_train_end(&mut self, _history: &[Record]) -> Result<()> {
        Ok(())
    }
}

/// Standard output shared by the callbacks: a line goes above the progress bar while one is
/// drawn (so the bar is not broken), else straight to stdout.
#[derive(Clone, Default)]
pub struct Console {
    bar: std::sync::Arc<std::sync::Mutex<Option<indicatif::ProgressBar>>>,
}

impl Console {
    pub fn println(&self, line: &str) {
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match bar.as_ref() {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }
    fn set_bar(&self, b: Option<indicatif::ProgressBar>) {
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = b;
    }
}
