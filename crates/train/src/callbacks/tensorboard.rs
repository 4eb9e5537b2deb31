//! TensorBoard scalars: every value of every record, tagged `{kind}/{name}` (`step/loss`,
//! `step/lr`, `epoch/test_acc`, `eval/val_loss`, ...) at the record's optimizer step. A resumed
//! run starts a new event file in the same directory; TensorBoard joins the files of a
//! directory into one run.

use super::{Callback, EpochEnd, EvalEnd, StepEnd};
use crate::error::Result;
use crate::record::Record;
use crate::tensorboard::EventWriter;
use std::path::PathBuf;

pub struct TensorBoard {
    dir: PathBuf,
    writer: Option<EventWriter>,
}

impl TensorBoard {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TensorBoard {
            dir: dir.into(),
            writer: None,
        }
    }
    fn write(&mut self, r: &Record) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(EventWriter::create(&self.dir)?);
        }
        if let Some(w) = &mut self.writer {
            for (k, v) in &r.values {
                w.scalar(&format!("{}/{k}", r.kind.name()), r.step as i64, *v)?;
            }
        }
        Ok(())
    }
}

impl Callback for TensorBoard {
    fn on_train_start(&mut self, _s: &super::RunStart<'_>) -> Result<()> {
        self.writer = Some(EventWriter::create(&self.dir)?);
        Ok(())
    }
    fn on_step_end(&mut self, _s: &StepEnd, r: Option<&Record>) -> Result<()> {
        r.map_or(Ok(()), |r| self.write(r))
    }
    fn on_evaluation(&mut self, _e: &EvalEnd<'_>, r: Option<&Record>) -> Result<()> {
        r.map_or(Ok(()), |r| self.write(r))
    }
    fn on_epoch_end(&mut self, _e: &EpochEnd<'_>, r: &Record) -> Result<()> {
        self.write(r)
    }
}
