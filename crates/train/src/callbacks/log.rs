//! The log lines users know: `Epoch [e/n], Step [i/N], Loss: x` every logged step, a line per
//! epoch and per evaluation in the command's words (e.g. the GPT's
//! `step N: train loss X, val loss Y`).

use super::{Callback, Console, EpochEnd, EvalEnd, StepEnd};
use crate::error::Result;
use crate::record::Record;

/// Which loss the step line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossShown {
    /// The logged step's own loss (PyTorch tutorials' `loss.item()`).
    Last,
    /// The mean over the epoch's steps so far (Hugging Face's running loss).
    EpochMean,
}

/// Formats the line of an epoch's end or of an evaluation.
pub type EpochLine = Box<dyn FnMut(&EpochEnd<'_>) -> String>;
pub type EvalLine = Box<dyn FnMut(&EvalEnd<'_>) -> String>;

pub struct LogLines {
    console: Console,
    shown: Option<LossShown>,
    also_last_batch: bool,
    epoch_line: Option<EpochLine>,
    eval_line: Option<EvalLine>,
}

impl LogLines {
    pub fn new(console: &Console) -> Self {
        LogLines {
            console: console.clone(),
            shown: None,
            also_last_batch: false,
            epoch_line: None,
            eval_line: None,
        }
    }
    /// `Epoch [e/n], Step [i/N], Loss: x` at every logged step (and, with `also_last_batch`, at
    /// each epoch's last batch).
    pub fn step_lines(mut self, shown: LossShown, also_last_batch: bool) -> Self {
        self.shown = Some(shown);
        self.also_last_batch = also_last_batch;
        self
    }
    pub fn epoch_line(mut self, f: EpochLine) -> Self {
        self.epoch_line = Some(f);
        self
    }
    pub fn eval_line(mut self, f: EvalLine) -> Self {
        self.eval_line = Some(f);
        self
    }
}

impl Callback for LogLines {
    fn on_step_end(&mut self, s: &StepEnd, record: Option<&Record>) -> Result<()> {
        let Some(shown) = self.shown else {
            return Ok(());
        };
        let last = self.also_last_batch && s.batches_per_epoch == Some(s.batch);
        if record.is_none() && !last {
            return Ok(());
        }
        let loss = match shown {
            LossShown::Last => s.loss,
            LossShown::EpochMean => s.epoch_loss,
        };
        let of = |v: Option<usize>| v.map_or("?".to_string(), |n| n.to_string());
        self.console.println(&format!(
            "Epoch [{}/{}], Step [{}/{}], Loss: {loss:.4}",
            s.epoch + 1,
            of(s.epochs),
            s.batch,
            of(s.batches_per_epoch)
        ));
        Ok(())
    }
    fn on_evaluation(&mut self, e: &EvalEnd<'_>, _r: Option<&Record>) -> Result<()> {
        if let Some(f) = &mut self.eval_line {
            let line = f(e);
            self.console.println(&line);
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, e: &EpochEnd<'_>, _r: &Record) -> Result<()> {
        if let Some(f) = &mut self.epoch_line {
            let line = f(e);
            self.console.println(&line);
        }
        Ok(())
    }
}
