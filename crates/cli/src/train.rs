//! `ferrograd train`: the tutorial's workflow, `zero_grad -> forward -> loss -> backward ->
//! step`, with log lines, a progress bar, evaluation after each epoch, checkpoints that resume
//! bit-exactly, metrics and plots.

use crate::checkpoint::{self, Checkpoint};
use crate::config::{self, Model, OptimizerKind, SchedulerKind, Task};
use crate::evaluate::{accuracy_line, evaluate, load_split};
use crate::metrics::{MetricRow, Metrics};
use clap::Args;
use ferrograd_data::{DataLoader, Dataset, Mnist, Normalize, Split};
use ferrograd_nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy, ClassLossOptions, Reduction,
};
use ferrograd_nn::{
    parameters, Adagrad, Adam, AdamW, LrScheduler, Optimizer, RMSprop, Schedule, Sgd,
};
use ferrograd_tensor::{DType, Rng, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
    /// Weight decay (L2 for SGD/Adam/AdaGrad/RMSprop, decoupled for AdamW)
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule [default: per model]
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Seed of the initial weights and of the shuffling
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory with the four MNIST IDX files (.gz or raw)
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
    /// Worker threads for the kernels (0: one per core); results do not depend on it
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Write the final weights (safetensors, PyTorch state_dict names) here
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write a checkpoint (weights, optimizer, schedule, progress) here after every epoch
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Resume from a checkpoint written by --checkpoint
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start from these weights (safetensors, e.g. written by PyTorch) instead of a random init
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Stop after this many optimizer steps in total
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Keep the dataset order instead of shuffling every epoch
    #[arg(long)]
    pub no_shuffle: bool,
    /// Write a CSV row per logged step and per epoch here
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw the loss and accuracy curves as a PNG here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Normalise inputs with MNIST's mean 0.1307 and std 0.3081 after scaling to [0, 1]
    #[arg(long)]
    pub normalize: bool,
    /// Train on the first N training images only (quick runs and tests)
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Log a line every N steps
    #[arg(long, default_value_t = 100)]
    pub log_every: usize,
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

fn make_optimizer(
    r: &Resolved,
    params: Vec<Tensor>,
    wd: f64,
) -> ferrograd_nn::Result<Box<dyn Optimizer>> {
    Ok(match r.optimizer {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, r.lr, r.momentum, wd)?),
        OptimizerKind::Adagrad => Box::new(Adagrad::new(params, r.lr, wd)?),
        OptimizerKind::Rmsprop => Box::new(RMSprop::new(params, r.lr, r.momentum, wd)?),
        OptimizerKind::Adam => Box::new(Adam::new(params, r.lr, wd)?),
        OptimizerKind::Adamw => Box::new(AdamW::new(params, r.lr, wd)?),
    })
}

/// The schedule and whether it steps per batch (true) or per epoch.
fn make_schedule(r: &Resolved, epochs: usize, batches: usize) -> (Schedule, bool) {
    let e = epochs.max(1);
    match r.scheduler {
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
                max_lr: r.lr,
                total_steps: (e * batches).max(2),
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

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Loss and number of correct predictions of one batch.
pub fn batch_loss(task: Task, logits: &Tensor, targets: &Tensor) -> Result<Tensor, String> {
    match task {
        Task::Digits => cross_entropy(logits, targets, &ClassLossOptions::default()).map_err(err),
        Task::Parity => {
            let y = targets
                .to_dtype(DType::F32)
                .map_err(err)?
                .reshape([targets.numel(), 1])
                .map_err(err)?;
            binary_cross_entropy_with_logits(logits, &y, None, Reduction::Mean).map_err(err)
        }
    }
}

/// Predicted classes of a batch of logits.
pub fn predictions(task: Task, logits: &Tensor) -> Result<Vec<i64>, String> {
    match task {
        Task::Digits => logits
            .argmax(1, false)
            .map_err(err)?
            .to_vec::<i64>()
            .map_err(err),
        Task::Parity => Ok(logits
            .to_vec_f64()
            .into_iter()
            .map(|v| i64::from(v > 0.0))
            .collect()),
    }
}

pub fn label_map(task: Task) -> fn(u8) -> i64 {
    match task {
        Task::Digits => |d| d as i64,
        Task::Parity => |d| (d % 2) as i64,
    }
}

pub(crate) fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}

pub fn run(a: &TrainArgs) -> Result<(), String> {
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 || a.max_steps == Some(0) {
        return Err(format!(
            "--epochs, --batch-size, --log-every and --max-steps must be positive, got {}, {}, {} and {:?}",
            a.epochs, a.batch_size, a.log_every, a.max_steps
        ));
    }
    let r = resolve(a);
    let normalize = a.normalize.then_some(Normalize::MNIST);
    let mut train_set = Mnist::load(&a.data_dir, Split::Train)
        .map_err(err)?
        .with_normalize(normalize)
        .with_label_map(label_map(a.task));
    if let Some(n) = a.train_subset {
        train_set = train_set.truncate(n);
    }
    if train_set.is_empty() {
        return Err("the training set is empty".into());
    }
    let test_set = load_split(&a.data_dir, Split::Test, a.task, normalize)?;
    let loader =
        DataLoader::new(Arc::new(train_set), a.batch_size, !a.no_shuffle, a.seed).map_err(err)?;
    let batches = loader.num_batches();

    let mut rng = Rng::new(a.seed);
    let mut model =
        ferrograd_models::build(a.model.kind(), a.task.outputs(), &mut rng).map_err(err)?;
    if let Some(p) = &a.init {
        ferrograd_nn::serialize::load_module(model.as_ref(), p).map_err(err)?;
        println!("Initialised weights from {}", p.display());
    }
    let mut opt = make_optimizer(&r, parameters(model.as_ref()), a.weight_decay).map_err(err)?;
    let (schedule, per_batch) = make_schedule(&r, a.epochs, batches);
    let mut sched = LrScheduler::new(schedule, opt.as_mut()).map_err(err)?;

    let (mut start_epoch, mut start_batch, mut global_step) = (0usize, 0usize, 0usize);
    let mut history: Vec<MetricRow> = Vec::new();
    if let Some(p) = &a.resume {
        let ck = Checkpoint::load(p).map_err(err)?;
        ck.check_compatible(a, &r)
            .map_err(|m| format!("{}: {m}", p.display()))?;
        ck.restore(model.as_ref(), opt.as_mut()).map_err(err)?;
        sched = ck.scheduler.clone();
        start_epoch = ck.epoch;
        start_batch = ck.batch;
        global_step = ck.step;
        history = ck.history.clone();
        println!(
            "Resumed from {} at epoch {}, step {}",
            p.display(),
            start_epoch + 1,
            global_step
        );
    }
    let mut metrics = match &a.metrics {
        Some(p) => Some(Metrics::create(p, &history).map_err(err)?),
        None => None,
    };

    println!(
        "Training {} ({} task, {} parameters) on {} images: {:?}, lr {}, momentum {}, weight decay {}, schedule {:?}, batch {}, {} epochs",
        a.model.kind().name(),
        a.task.name(),
        ferrograd_nn::num_parameters(model.as_ref()),
        loader.dataset_len(),
        r.optimizer,
        r.lr,
        r.momentum,
        a.weight_decay,
        r.scheduler,
        a.batch_size,
        a.epochs
    );
    let mut stopped = false;
    let mut final_acc = None;
    for epoch in start_epoch..a.epochs {
        model.train();
        let t0 = Instant::now();
        let (mut seen, mut correct, mut loss_sum, mut nb) = (0usize, 0usize, 0.0f64, 0usize);
        let pb = progress_bar((batches - start_batch) as u64);
        for item in loader.epoch(epoch, start_batch) {
            let batch = item.map_err(err)?;
            let logits = model.forward(&batch.inputs).map_err(err)?;
            let loss = batch_loss(a.task, &logits, &batch.targets)?;
            let lv = loss.item().map_err(err)?;
            if !lv.is_finite() {
                return Err(format!(
                    "step {} (epoch {}, batch {}): the loss is {lv}; training diverged (lr {} is too large?) and was stopped; no checkpoint was written for this epoch",
                    global_step + 1,
                    epoch + 1,
                    batch.index + 1,
                    opt.lr()
                ));
            }
            opt.zero_grad();
            loss.backward().map_err(err)?;
            opt.step().map_err(err)?;
            if per_batch && global_step + 1 < sched_total(&sched) {
                sched.step(opt.as_mut(), None).map_err(err)?;
            }
            global_step += 1;
            let preds = predictions(a.task, &logits)?;
            let targets: Vec<i64> = batch.targets.to_vec().map_err(err)?;
            correct += preds.iter().zip(&targets).filter(|(p, t)| p == t).count();
            seen += targets.len();
            loss_sum += lv;
            nb += 1;
            let step_in_epoch = batch.index + 1;
            if let Some(pb) = &pb {
                pb.set_position((step_in_epoch - start_batch) as u64);
                let rate = seen as f64 / t0.elapsed().as_secs_f64();
                pb.set_message(format!("loss {lv:.4}  {rate:.0} img/s"));
            }
            if step_in_epoch % a.log_every == 0 {
                let line = format!(
                    "Epoch [{}/{}], Step [{}/{}], Loss: {:.4}",
                    epoch + 1,
                    a.epochs,
                    step_in_epoch,
                    batches,
                    lv
                );
                match &pb {
                    Some(pb) => pb.println(line),
                    None => println!("{line}"),
                }
                let row = MetricRow::step(
                    epoch + 1,
                    global_step,
                    lv,
                    opt.lr(),
                    seen as f64 / t0.elapsed().as_secs_f64(),
                );
                if let Some(m) = &mut metrics {
                    m.write(&row).map_err(err)?;
                }
                history.push(row);
            }
            if a.max_steps.is_some_and(|m| global_step >= m) {
                stopped = true;
                start_batch = step_in_epoch;
                break;
            }
        }
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        let secs = t0.elapsed().as_secs_f64();
        model.eval();
        let ev = evaluate(model.as_ref(), &test_set, a.task, 1000)?;
        let train_loss = loss_sum / nb.max(1) as f64;
        let train_acc = correct as f64 / seen.max(1) as f64;
        let rate = seen as f64 / secs;
        println!(
            "Epoch [{}/{}] train loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}% ({}/{}), {:.1} s, {:.0} images/s",
            epoch + 1,
            a.epochs,
            train_loss,
            100.0 * train_acc,
            100.0 * ev.correct as f64 / ev.total as f64,
            ev.correct,
            ev.total,
            secs,
            rate
        );
        let row = MetricRow::epoch(
            epoch + 1,
            global_step,
            train_loss,
            opt.lr(),
            train_acc,
            ev.accuracy(),
            rate,
        );
        if let Some(m) = &mut metrics {
            m.write(&row).map_err(err)?;
        }
        history.push(row);
        final_acc = Some(ev);
        if !stopped {
            start_batch = 0;
            if !per_batch {
                let metric = matches!(r.scheduler, SchedulerKind::Plateau).then_some(train_loss);
                sched.step(opt.as_mut(), metric).map_err(err)?;
            }
        }
        if let Some(p) = &a.checkpoint {
            let (ce, cb) = if stopped {
                (epoch, start_batch)
            } else {
                (epoch + 1, 0)
            };
            checkpoint::save(
                p,
                a,
                &r,
                model.as_ref(),
                opt.as_ref(),
                &sched,
                ce,
                cb,
                global_step,
                &history,
            )
            .map_err(err)?;
        }
        if stopped {
            println!("Stopped after {global_step} steps (--max-steps)");
            break;
        }
    }
    if let Some(ev) = &final_acc {
        println!("{}", accuracy_line(ev));
    }
    if let Some(p) = &a.save {
        ferrograd_nn::serialize::save_module(model.as_ref(), p).map_err(err)?;
        println!("Saved weights to {}", p.display());
    }
    if let Some(p) = &a.plot {
        crate::metrics::plot(
            p,
            &history,
            &format!("{} on MNIST ({})", a.model.kind().name(), a.task.name()),
        )
        .map_err(err)?;
        println!("Saved plot to {}", p.display());
    }
    Ok(())
}

/// Total steps of a per-batch schedule (OneCycle cannot step past its end).
fn sched_total(s: &LrScheduler) -> usize {
    match &s.schedule {
        Schedule::OneCycle { total_steps, .. } => *total_steps,
        _ => usize::MAX,
    }
}
