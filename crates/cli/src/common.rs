//! The flags every training command shares, declared once: the same names, meanings and checks
//! in `train`, `gpt train` and `finetune`.

use clap::Args;
use ferrograd_train::callbacks::{Column, CsvMetrics, TensorBoard};
use ferrograd_train::{
    Batches, OutputPlan, RecordKind, Result, ResumePoint, Setting, TrainConfig, TrainStep, Trainer,
};
use std::path::{Path, PathBuf};

#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// Seed of the initial weights, the data order and dropout [default: per command]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads for the kernels (0: one per core); results do not depend on it
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Stop after this many optimizer steps in all, writing the checkpoint (to split a run; the
    /// schedule keeps the run's full length)
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Write a checkpoint (weights, optimizer, schedule, random streams, position, metrics)
    /// here after every evaluation and epoch, and on Ctrl-C
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint: the run goes on bit for bit as if it had not stopped
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Write the metrics as CSV here
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw the training curves as a PNG here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write TensorBoard event files into this directory (created if missing)
    #[arg(long)]
    pub tensorboard: Option<PathBuf>,
    /// Train data-parallel as one rank of an MPI job: `mpirun -n N ferrograd ... --distributed`
    /// (a build with `--features mpi`). Each rank reads its shard of every epoch; --batch-size is
    /// per rank; rank 0 alone prints and writes files
    #[arg(long)]
    pub distributed: bool,
    /// Write the trained weights (safetensors, PyTorch state_dict names) here [default: per command]
    #[arg(long, visible_alias = "save")]
    pub out: Option<PathBuf>,
}

impl CommonArgs {
    pub fn seed_or(&self, default: u64) -> u64 {
        self.seed.unwrap_or(default)
    }

    /// The output plan of the shared flags; the command adds its inputs and other outputs.
    pub fn outputs(&self, out: Option<&Path>) -> OutputPlan {
        OutputPlan::default()
            .file("--out", out)
            .file("--checkpoint", self.checkpoint.as_deref())
            .file("--metrics", self.metrics.as_deref())
            .file("--plot", self.plot.as_deref())
            .dir("--tensorboard", self.tensorboard.as_deref())
    }

    /// The shared flag that is a setting of the run (the others name files); a resumed run
    /// may change it.
    pub fn settings(&self) -> Vec<Setting> {
        vec![Setting::changeable("--max-steps", opt(self.max_steps))]
    }

    /// Applies the shared flags to a Trainer's configuration.
    pub fn configure(&self, c: &mut TrainConfig) {
        c.max_steps = self.max_steps;
        c.checkpoint = self.checkpoint.clone();
    }

    /// With `--resume`: restores the checkpoint into the trainer, step and data, prints where
    /// the run continues (`where_line`) and the settings that changed; None without it.
    pub fn resume<S: TrainStep, D: Batches>(
        &self,
        trainer: &mut Trainer,
        step: &mut S,
        data: &mut D,
        where_line: impl Fn(&Path, &ResumePoint) -> String,
    ) -> Result<Option<ResumePoint>> {
        let Some(p) = &self.resume else {
            return Ok(None);
        };
        let (changed, point) = trainer.restore(p, step, data)?;
        println!("{}", where_line(p, &point));
        if !changed.is_empty() {
            println!("Changed on resume: {}", changed.join(", "));
        }
        Ok(Some(point))
    }

    /// Adds the CSV and TensorBoard callbacks the flags ask for.
    pub fn add_callbacks(&self, t: &mut Trainer, csv: (Vec<Column>, &[RecordKind])) {
        if let Some(p) = &self.metrics {
            t.add_callback(Box::new(CsvMetrics::new(p, csv.0, csv.1)));
        }
        if let Some(d) = &self.tensorboard {
            t.add_callback(Box::new(TensorBoard::new(d)));
        }
    }
}

/// An optional value as a setting: the value, or `(none)`.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("(none)".to_string(), |v| v.to_string())
}
