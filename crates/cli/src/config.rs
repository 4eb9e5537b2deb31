//! Models, tasks and their documented defaults.

use clap::ValueEnum;
use ferrograd_models::ModelKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    Mlp,
    Lenet5,
    #[value(name = "lenet5-classic")]
    Lenet5Classic,
}

impl Model {
    pub fn kind(self) -> ModelKind {
        match self {
            Model::Mlp => ModelKind::Mlp,
            Model::Lenet5 => ModelKind::LeNet5,
            Model::Lenet5Classic => ModelKind::LeNet5Classic,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// Ten-way digit classification with cross-entropy
    Digits,
    /// Even versus odd digits: one logit, sigmoid and binary cross-entropy (tutorial section 4.2)
    Parity,
}

impl Task {
    pub fn outputs(self) -> usize {
        match self {
            Task::Digits => 10,
            Task::Parity => 1,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Task::Digits => "digits",
            Task::Parity => "parity",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Adagrad,
    Rmsprop,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SchedulerKind {
    /// Constant learning rate
    None,
    /// x0.1 every third of the epochs
    Step,
    /// x0.1 at 50% and 75% of the epochs
    Multistep,
    /// x0.9 per epoch
    Exponential,
    /// Cosine annealing to 0 over the epochs
    Cosine,
    /// One-cycle per batch: warm up to 10x... see --help of the model defaults
    Onecycle,
    /// x0.1 when the epoch's training loss stops improving (patience 1)
    Plateau,
    /// Linear warmup over the first epoch, then constant
    Warmup,
}

/// The defaults of a model, where the tutorial's recipe (SGD, lr 0.1, momentum 0.9, batch 64)
/// would fail. Measured figures are in the README.
pub struct Defaults {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub scheduler: SchedulerKind,
}

pub fn defaults(model: Model) -> Defaults {
    match model {
        // the tutorial's recipe works for the MLP on inputs scaled to [0, 1]
        Model::Mlp => Defaults {
            optimizer: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            scheduler: SchedulerKind::None,
        },
        // lr 0.1 with momentum 0.9 diverges for LeNet-5; 0.05 peak with one-cycle trains well
        Model::Lenet5 => Defaults {
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            scheduler: SchedulerKind::Onecycle,
        },
        Model::Lenet5Classic => Defaults {
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            scheduler: SchedulerKind::Onecycle,
        },
    }
}

pub const MODEL_DEFAULTS_HELP: &str =
    "Defaults per model (override with --optimizer, --lr, --momentum, --scheduler):
  mlp             SGD, lr 0.1, momentum 0.9, no schedule (the tutorial's recipe)
  lenet5          SGD, peak lr 0.05, momentum 0.9, one-cycle schedule (lr 0.1 diverges)
  lenet5-classic  SGD, peak lr 0.05, momentum 0.9, one-cycle schedule
All: batch 64, 10 epochs, inputs scaled to [0, 1], seed 0.";
