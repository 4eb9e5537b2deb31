//! The flags of `ferrograd train`, the model's defaults applied to them, and the run's settings
//! (compared on resume).

use crate::common::{opt, CommonArgs};
use crate::config::{self, Model, OptimizerKind, SchedulerKind, Task};
use clap::Args;
use ferrograd_train::Setting;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
#[command(after_help = config::MODEL_DEFAULTS_HELP)]
pub struct TrainArgs {
    /// Model to train
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: Model,
    /// digits: 10 classes; parity: even vs odd with one sigmoid output
    #[arg(long, value_enum, default_value = "digits")]
    pub task: Task,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Optimizer [default: per model, see below]
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate (peak rate for one-cycle) [default: per model; with another --optimizer
    /// than the model's, that optimizer's PyTorch default]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum of SGD and RMSprop [default: per model]
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Weight decay (decoupled for AdamW, added to the gradient for the others)
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule [default: per model]
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Directory with the four MNIST IDX files (.gz or raw)
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
    /// Start from these weights (safetensors, e.g. written by PyTorch) instead of a random init
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Keep the dataset order instead of shuffling every epoch
    #[arg(long)]
    pub no_shuffle: bool,
    /// Normalise inputs with MNIST's mean 0.1307 and std 0.3081 after scaling to [0, 1]
    #[arg(long)]
    pub normalize: bool,
    /// Train on the first N training images only (quick runs and tests)
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Log a line every N steps
    #[arg(long, default_value_t = 100)]
    pub log_every: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl TrainArgs {
    /// The arguments of `ferrograd` with no subcommand: every flag at its default.
    pub fn default_args() -> TrainArgs {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            a: TrainArgs,
        }
        <Wrap as clap::Parser>::parse_from(["ferrograd"]).a
    }
}

/// Hyperparameters after applying the model's defaults.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub scheduler: SchedulerKind,
}

pub fn resolve(a: &TrainArgs) -> Resolved {
    let d = config::defaults(a.model);
    let optimizer = a.optimizer.unwrap_or(d.optimizer);
    // the model's rate is tuned for its optimizer; another one starts from PyTorch's default
    let lr = match optimizer.pytorch_lr() {
        Some(lr) if optimizer != d.optimizer => lr,
        _ => d.lr,
    };
    Resolved {
        optimizer,
        lr: a.lr.unwrap_or(lr),
        momentum: a.momentum.unwrap_or(d.momentum),
        scheduler: a.scheduler.unwrap_or(d.scheduler),
    }
}

pub fn label_map(task: Task) -> fn(u8) -> i64 {
    match task {
        Task::Digits => |d| d as i64,
        Task::Parity => |d| (d % 2) as i64,
    }
}

/// The run's settings: what fixes it (refused if changed on resume) and what may change.
pub fn settings(a: &TrainArgs, r: &Resolved, seed: u64) -> Vec<Setting> {
    let mut s = vec![
        Setting::fixed("--model", a.model.kind().name()),
        Setting::fixed("--task", a.task.name()),
        Setting::fixed("--optimizer", format!("{:?}", r.optimizer).to_lowercase()),
        Setting::fixed("--lr", r.lr),
        Setting::fixed("--momentum", r.momentum),
        Setting::fixed("--weight-decay", a.weight_decay),
        Setting::fixed("--scheduler", format!("{:?}", r.scheduler).to_lowercase()),
        Setting::fixed("--batch-size", a.batch_size),
        Setting::fixed("--seed", seed),
        Setting::fixed("--no-shuffle", a.no_shuffle),
        Setting::fixed("--train-subset", opt(a.train_subset)),
        Setting::fixed("--normalize", a.normalize),
        Setting::changeable("--epochs", a.epochs),
        Setting::changeable("--log-every", a.log_every),
        Setting::changeable("--data-dir", a.data_dir.display()),
    ];
    s.extend(a.common.settings());
    s
}
