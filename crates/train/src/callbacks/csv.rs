//! Metrics as CSV: chosen columns of the run's records, the file rewritten atomically after
//! every row (so it is never half-written) and, on resume, started with the rows of the run so
//! far.

use super::{Callback, EpochEnd, EvalEnd, RunStart, StepEnd};
use crate::error::Result;
use crate::outputs::write_atomic;
use crate::record::{Record, RecordKind};
use std::path::PathBuf;

/// One column: its header, the record value it shows and how.
#[derive(Clone, Debug)]
pub enum Column {
    /// `step`, `epoch` or `eval`.
    Kind(&'static str),
    /// The 1-based epoch.
    Epoch(&'static str),
    /// Optimizer steps taken.
    Step(&'static str),
    /// A value with this many decimals (empty when the record lacks it).
    Fixed(&'static str, &'static str, usize),
    /// A value in Rust's `{:e}` notation.
    Exp(&'static str, &'static str),
}

impl Column {
    fn header(&self) -> &'static str {
        match self {
            Column::Kind(h) | Column::Epoch(h) | Column::Step(h) => h,
            Column::Fixed(h, ..) | Column::Exp(h, _) => h,
        }
    }
    fn cell(&self, r: &Record) -> String {
        match self {
            Column::Kind(_) => r.kind.name().to_string(),
            Column::Epoch(_) => r.epoch.to_string(),
            Column::Step(_) => r.step.to_string(),
            Column::Fixed(_, k, d) => r.get(k).map_or(String::new(), |v| format!("{v:.*}", d)),
            Column::Exp(_, k) => r.get(k).map_or(String::new(), |v| format!("{v:e}")),
        }
    }
}

pub struct CsvMetrics {
    path: PathBuf,
    columns: Vec<Column>,
    kinds: Vec<RecordKind>,
    text: String,
}

impl CsvMetrics {
    /// A CSV of `columns` with a row per record of the given kinds.
    pub fn new(path: impl Into<PathBuf>, columns: Vec<Column>, kinds: &[RecordKind]) -> Self {
        let header: Vec<&str> = columns.iter().map(Column::header).collect();
        CsvMetrics {
            path: path.into(),
            columns,
            kinds: kinds.to_vec(),
            text: format!("{}\n", header.join(",")),
        }
    }
    fn push(&mut self, r: &Record) -> Result<()> {
        if !self.kinds.contains(&r.kind) {
            return Ok(());
        }
        let cells: Vec<String> = self.columns.iter().map(|c| c.cell(r)).collect();
        self.text.push_str(&cells.join(","));
        self.text.push('\n');
        Ok(write_atomic(&self.path, self.text.as_bytes())?)
    }
}

impl Callback for CsvMetrics {
    fn on_train_start(&mut self, s: &RunStart<'_>) -> Result<()> {
        for r in s.history {
            if self.kinds.contains(&r.kind) {
                let cells: Vec<String> = self.columns.iter().map(|c| c.cell(r)).collect();
                self.text.push_str(&cells.join(","));
                self.text.push('\n');
            }
        }
        Ok(write_atomic(&self.path, self.text.as_bytes())?)
    }
    fn on_step_end(&mut self, _s: &StepEnd, r: Option<&Record>) -> Result<()> {
        r.map_or(Ok(()), |r| self.push(r))
    }
    fn on_evaluation(&mut self, _e: &EvalEnd<'_>, r: Option<&Record>) -> Result<()> {
        r.map_or(Ok(()), |r| self.push(r))
    }
    fn on_epoch_end(&mut self, _e: &EpochEnd<'_>, r: &Record) -> Result<()> {
        self.push(r)
    }
}
