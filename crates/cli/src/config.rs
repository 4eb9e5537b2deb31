//! Models, tasks and their documented defaults.

use clap::ValueEnum;
use ferrograd_models::ModelKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    Mlp,
    Lenet5,
    #[value(name = "lenet5-classic")]
    Lenet5Classic,
    /// The CNN of the federated-averaging paper (two 5x5 convolutions, 32 and 64; fc 512)
    Cnn,
    /// The 2NN of the federated-averaging paper (784-200-200-10)
    #[value(name = "2nn")]
    TwoNn,
}

impl Model {
    pub fn kind(self) -> ModelKind {
        match self {
            Model::Mlp => ModelKind::Mlp,
            Model::Lenet5 => ModelKind::LeNet5,
            Model::Lenet5Classic => ModelKind::LeNet5Classic,
            Model::Cnn => ModelKind::FedCnn,
            Model::TwoNn => ModelKind::TwoNn,
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
    pub fn objective(self) -> ferrograd_train::tasks::classify::Objective {
        use ferrograd_train::tasks::classify::Objective;
        match self {
            Task::Digits => Objective::CrossEntropy,
            Task::Parity => Objective::BinaryLogit,
        }
    }
    pub fn classes(self) -> usize {
        self.objective().classes(self.outputs())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerKind {
    Sgd,
    Adagrad,
    Rmsprop,
    Adam,
    Adamw,
    Nadam,
    Radam,
    Adamax,
    Adadelta,
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

impl OptimizerKind {
    /// PyTorch's default learning rate of the optimizer (SGD has none).
    pub fn pytorch_lr(self) -> Option<f64> {
        match self {
            OptimizerKind::Sgd => None,
            OptimizerKind::Adagrad | OptimizerKind::Rmsprop => Some(1e-2),
            OptimizerKind::Adam | OptimizerKind::Adamw | OptimizerKind::Radam => Some(1e-3),
            OptimizerKind::Nadam | OptimizerKind::Adamax => Some(2e-3),
            OptimizerKind::Adadelta => Some(1.0),
        }
    }
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
        Model::Lenet5Classic | Model::Cnn => Defaults {
            optimizer: OptimizerKind::Sgd,
            lr: 0.05,
            momentum: 0.9,
            scheduler: SchedulerKind::Onecycle,
        },
        Model::TwoNn => Defaults {
            optimizer: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            scheduler: SchedulerKind::None,
        },
    }
}

pub const MODEL_DEFAULTS_HELP: &str =
    "Defaults per model (override with --optimizer, --lr, --momentum, --scheduler):
  mlp             SGD, lr 0.1, momentum 0.9, no schedule (the tutorial's recipe)
  lenet5          SGD, peak lr 0.05, momentum 0.9, one-cycle schedule (lr 0.1 diverges)
  lenet5-classic  SGD, peak lr 0.05, momentum 0.9, one-cycle schedule
  cnn             as lenet5 (the federated-averaging paper's CNN, trained centrally)
  2nn             as mlp (the paper's 784-200-200-10)
All: batch 64, 10 epochs, inputs scaled to [0, 1], seed 0. Another --optimizer without --lr
starts from its PyTorch default rate (Adagrad, RMSprop 1e-2; Adam, AdamW, RAdam 1e-3; NAdam,
Adamax 2e-3; Adadelta 1.0).";

/// The optimizer of a `train` run over `params`.
pub fn make_optimizer(
    kind: OptimizerKind,
    params: Vec<ferrograd_tensor::Tensor>,
    lr: f64,
    momentum: f64,
    wd: f64,
) -> ferrograd_nn::Result<Box<dyn ferrograd_nn::Optimizer>> {
    use ferrograd_nn::{Adadelta, Adagrad, Adam, AdamW, Adamax, NAdam, RAdam, RMSprop, Sgd};
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, lr, momentum, wd)?),
        OptimizerKind::Adagrad => Box::new(Adagrad::new(params, lr, wd)?),
        OptimizerKind::Rmsprop => Box::new(RMSprop::new(params, lr, momentum, wd)?),
        OptimizerKind::Adam => Box::new(Adam::new(params, lr, wd)?),
        OptimizerKind::Adamw => Box::new(AdamW::new(params, lr, wd)?),
        OptimizerKind::Nadam => Box::new(NAdam::new(params, lr, wd)?),
        OptimizerKind::Radam => Box::new(RAdam::new(params, lr, wd)?),
        OptimizerKind::Adamax => Box::new(Adamax::new(params, lr, wd)?),
        OptimizerKind::Adadelta => Box::new(Adadelta::new(params, lr, wd)?),
    })
}

/// The schedule of a `train` run over `epochs` of `batches`, and whether it steps per batch
/// (true) or per epoch.
pub fn make_schedule(
    kind: SchedulerKind,
    lr: f64,
    epochs: usize,
    batches: usize,
) -> (ferrograd_nn::Schedule, bool) {
    use ferrograd_nn::Schedule;
    let e = epochs.max(1);
    match kind {
        SchedulerKind::None => (Schedule::Constant, false),
        SchedulerKind::Step => (
            Schedule::Step {
                step_size: (e / 3).max(1),
                gamma: 0.1,
            },
            false,
        ),
        SchedulerKind::Multistep => (
            Schedule::MultiStep {
                milestones: vec![e / 2, e * 3 / 4],
                gamma: 0.1,
            },
            false,
        ),
        SchedulerKind::Exponential => (Schedule::Exponential { gamma: 0.9 }, false),
        SchedulerKind::Cosine => (
            Schedule::Cosine {
                t_max: e,
                eta_min: 0.0,
            },
            false,
        ),
        SchedulerKind::Onecycle => (
            Schedule::OneCycle {
                max_lr: lr,
                total_steps: e.saturating_mul(batches).max(2),
                pct_start: 0.3,
                div_factor: 25.0,
                final_div_factor: 1e4,
                base_momentum: 0.85,
                max_momentum: 0.95,
            },
            true,
        ),
        SchedulerKind::Plateau => (
            Schedule::ReduceOnPlateau {
                factor: 0.1,
                patience: 1,
                threshold: 1e-4,
                cooldown: 0,
                min_lr: 0.0,
            },
            false,
        ),
        SchedulerKind::Warmup => (
            Schedule::Linear {
                start_factor: 0.1,
                end_factor: 1.0,
                total_iters: batches.max(1),
            },
            true,
        ),
    }
}
