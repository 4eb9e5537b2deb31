//! `ferrograd train`: the tutorial's networks on MNIST, as configuration + model + Trainer. The
//! loop, log lines, progress bar, evaluation after each epoch, checkpoints, metrics, plots and
//! TensorBoard files are the Trainer's.

use crate::common::{opt, CommonArgs};
use crate::config::{self, Model, OptimizerKind, SchedulerKind, Task};
use crate::evaluate::{accuracy_line, load_split};
use clap::Args;
use ferrograd_data::{DataLoader, Dataset, Mnist, Normalize, Split};
use ferrograd_nn::{parameters, LrScheduler};
use ferrograd_tensor::Rng;
use ferrograd_train::callbacks::{
    plot_loss_and_accuracy, Column, EpochEnd, LogLines, LossShown, ProgressBar,
};
use ferrograd_train::tasks::classify::ClassifyStep;
use ferrograd_train::{Console, RecordKind, Result, Setting, TrainConfig, TrainError, Trainer};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Learning rate (peak rate for one-cycle) [default: per model]
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
    Resolved {
        optimizer: a.optimizer.unwrap_or(d.optimizer),
        lr: a.lr.unwrap_or(d.lr),
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
fn settings(a: &TrainArgs, r: &Resolved, seed: u64) -> Vec<Setting> {
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

pub fn run(a: &TrainArgs) -> Result<()> {
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 || a.common.max_steps == Some(0) {
        return Err(TrainError::config(format!(
            "--epochs, --batch-size, --log-every and --max-steps must be positive, got {}, {}, {} and {:?}",
            a.epochs, a.batch_size, a.log_every, a.common.max_steps
        )));
    }
    let c = &a.common;
    let seed = c.seed_or(0);
    c.outputs(c.out.as_deref())
        .input("--data-dir", Some(&a.data_dir))
        .input("--init", a.init.as_deref())
        .check()?;
    let r = resolve(a);
    let normalize = a.normalize.then_some(Normalize::MNIST);
    let mut train_set = Mnist::load(&a.data_dir, Split::Train)?
        .with_normalize(normalize)
        .with_label_map(label_map(a.task));
    if let Some(n) = a.train_subset {
        train_set = train_set.truncate(n);
    }
    if train_set.is_empty() {
        return Err(TrainError::config("the training set is empty"));
    }
    let test = load_split(&a.data_dir, Split::Test, a.task, normalize)?;
    let mut loader = DataLoader::new(Arc::new(train_set), a.batch_size, !a.no_shuffle, seed)?;
    let batches = loader.num_batches();

    let mut rng = Rng::new(seed);
    let model = ferrograd_models::build(a.model.kind(), a.task.outputs(), &mut rng)?;
    if let (Some(p), None) = (&a.init, &c.resume) {
        ferrograd_nn::serialize::load_module(model.as_ref(), p)?;
        println!("Initialised weights from {}", p.display());
    }
    let mut opt = config::make_optimizer(
        r.optimizer,
        parameters(model.as_ref()),
        r.lr,
        r.momentum,
        a.weight_decay,
    )?;
    let (schedule, per_batch) = config::make_schedule(r.scheduler, r.lr, a.epochs, batches);
    let sched = LrScheduler::new(schedule, opt.as_mut())?;
    let mut tc = TrainConfig {
        epochs: a.epochs,
        schedule_per_batch: per_batch,
        plateau_metric: (r.scheduler == SchedulerKind::Plateau).then(|| "loss".to_string()),
        log_every: a.log_every,
        eval_each_epoch: true,
        workload: "mnist".into(),
        settings: settings(a, &r, seed),
        ..TrainConfig::default()
    };
    c.configure(&mut tc);
    let mut trainer = Trainer::new(tc, opt, Some(sched));
    let mut step = ClassifyStep {
        model,
        objective: a.task.objective(),
        classes: a.task.classes(),
        held_out: Some(Arc::new(test)),
        eval_batch: 1000,
    };
    let resume = match &c.resume {
        Some(p) => {
            let (changed, point) = trainer.restore(p, &mut step, &mut loader)?;
            println!(
                "Resumed from {} at epoch {}, step {}",
                p.display(),
                point.epoch + 1,
                point.step
            );
            if !changed.is_empty() {
                println!("Changed on resume: {}", changed.join(", "));
            }
            Some(point)
        }
        None => None,
    };
    println!(
        "Training {} ({} task, {} parameters) on {} images: {:?}, lr {}, momentum {}, weight decay {}, schedule {:?}, batch {}, {} epochs",
        a.model.kind().name(),
        a.task.name(),
        ferrograd_nn::num_parameters(step.model.as_ref()),
        loader.dataset_len(),
        r.optimizer,
        r.lr,
        r.momentum,
        a.weight_decay,
        r.scheduler,
        a.batch_size,
        a.epochs
    );
    let console = Console::default();
    trainer.add_callback(Box::new(ProgressBar::new(&console, "img")));
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::Last, false)
            .epoch_line(Box::new(epoch_line)),
    ));
    c.add_callbacks(
        &mut trainer,
        (
            vec![
                Column::Kind("kind"),
                Column::Epoch("epoch"),
                Column::Step("step"),
                Column::Fixed("loss", "loss", 6),
                Column::Exp("lr", "lr"),
                Column::Fixed("train_acc", "train_acc", 6),
                Column::Fixed("test_acc", "test_acc", 6),
                Column::Fixed("samples_per_s", "samples_per_s", 1),
            ],
            &[RecordKind::Step, RecordKind::Epoch],
        ),
    );
    let summary = trainer.fit(&mut step, &mut loader, resume)?;
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
    }
    if let Some(m) = &summary.last_eval {
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v) as usize;
        println!("{}", accuracy_line(get("test_correct"), get("test_total")));
    }
    if let Some(p) = &c.out {
        ferrograd_nn::serialize::save_module(step.model.as_ref(), p)?;
        println!("Saved weights to {}", p.display());
    }
    if let Some(p) = &c.plot {
        let title = format!("{} on MNIST ({})", a.model.kind().name(), a.task.name());
        plot_loss_and_accuracy(p, &summary.history, &title, ("train_acc", "test_acc"))?;
        println!("Saved plot to {}", p.display());
    }
    Ok(())
}

/// `Epoch [e/n] train loss x, train accuracy a%, test accuracy b% (c/t), s s, r images/s`.
fn epoch_line(e: &EpochEnd<'_>) -> String {
    let find =
        |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
    let ev = e.eval.unwrap_or(&[]);
    let (correct, total) = (find(ev, "test_correct"), find(ev, "test_total"));
    format!(
        "Epoch [{}/{}] train loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}% ({}/{}), {:.1} s, {:.0} images/s",
        e.epoch + 1,
        e.epochs.unwrap_or(0),
        e.loss,
        100.0 * find(e.means, "train_acc"),
        100.0 * correct / total.max(1.0),
        correct as usize,
        total as usize,
        e.seconds,
        e.samples as f64 / e.seconds.max(1e-9)
    )
}
