//! The progress bar (indicatif): position in the epoch, elapsed and remaining time, the loss and
//! the throughput. Drawn only when stderr is a terminal.

use super::{Callback, Console, EpochEnd, StepEnd};
use crate::error::Result;
use crate::record::Record;
use std::io::IsTerminal;

pub struct ProgressBar {
    console: Console,
    unit: String,
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
}

impl ProgressBar {
    /// A bar whose rate is shown in `unit`s per second (e.g. "img"); lines printed through
    /// `console` go above it.
    pub fn new(console: &Console, unit: &str) -> Self {
        ProgressBar {
            console: console.clone(),
            unit: unit.to_string(),
            bar: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }
}

impl Callback for ProgressBar {
    fn on_epoch_start(&mut self, _epoch: usize, batches: Option<usize>) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let pb = match batches {
            Some(n) => indicatif::ProgressBar::new(n as u64),
            None => indicatif::ProgressBar::no_length(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        pb.set_style(style);
        self.console.set_bar(Some(pb.clone()));
        self.bar = Some(pb);
        Ok(())
    }
    fn on_step_end(&mut self, s: &StepEnd, _r: Option<&Record>) -> Result<()> {
        if let Some(pb) = &self.bar {
            pb.set_position(s.batches_this_run as u64);
            pb.set_message(format!(
                "loss {:.4}  {:.0} {}/s",
                s.loss, s.samples_per_s, self.unit
            ));
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, _e: &EpochEnd<'_>, _r: &Record) -> Result<()> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        self.console.set_bar(None);
        Ok(())
    }
    fn on_train_end(&mut self, _h: &[Record]) -> Result<()> {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        self.console.set_bar(None);
        Ok(())
    }
}
