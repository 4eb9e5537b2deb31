//! `ferrograd train`: the tutorial's networks on MNIST, as configuration + model + Trainer. The
//! loop, log lines, progress bar, evaluation after each epoch, checkpoints, metrics, plots and
//! TensorBoard files are the Trainer's.

use crate::config::{self, SchedulerKind};
use crate::distributed;
use crate::evaluate::{accuracy_line, load_split};
use crate::train_args::{label_map, resolve, settings, TrainArgs};
use ferrograd_data::{DataLoader, Dataset, Mnist, Normalize, Split};
use ferrograd_nn::{parameters, LrScheduler};
use ferrograd_tensor::Rng;
use ferrograd_train::callbacks::{
    plot_loss_and_accuracy, Column, EpochEnd, LogLines, LossShown, ProgressBar,
};
use ferrograd_train::tasks::classify::ClassifyStep;
use ferrograd_train::{Console, RecordKind, Result, TrainConfig, TrainError, Trainer};
use std::sync::Arc;

pub fn run(a: &TrainArgs) -> Result<()> {
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 || a.common.max_steps == Some(0) {
        return Err(TrainError::config(format!(
            "--epochs, --batch-size, --log-every and --max-steps must be positive, got {}, {}, {} and {:?}",
            a.epochs, a.batch_size, a.log_every, a.common.max_steps
        )));
    }
    let c = &a.common;
    let seed = c.seed_or(0);
    // the four IDX files, compressed or not, are inputs too
    let plan = c
        .outputs(c.out.as_deref())
        .input("--init", a.init.as_deref());
    crate::evaluate::with_mnist_inputs(plan, &a.data_dir).check()?;
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
    let place = distributed::place(c.distributed)?;
    let mut loader = DataLoader::new(Arc::new(train_set), a.batch_size, !a.no_shuffle, seed)?
        .with_shard(place.rank, place.world)?;
    let batches = loader.num_batches();
    // the schedules count steps in f64 and usize: a run longer than 2^53 steps is a typo
    if a.epochs.checked_mul(batches).is_none_or(|n| n > 1 << 53) {
        return Err(TrainError::config(format!(
            "--epochs {} of {batches} batches each is more than 2^53 steps",
            a.epochs
        )));
    }

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
    distributed::attach(c.distributed, &mut trainer)?;
    let mut step = ClassifyStep {
        model,
        objective: a.task.objective(),
        classes: a.task.classes(),
        held_out: Some(Arc::new(test)),
        eval_batch: 1000,
    };
    let resume = c.resume(&mut trainer, &mut step, &mut loader, |p, point| {
        format!(
            "Resumed from {} at epoch {}, step {}",
            p.display(),
            point.epoch + 1,
            point.step
        )
    })?;
    println!(
        "Training {} ({} task, {} parameters) on {} images: {:?}, lr {}, momentum {}, weight decay {}, schedule {:?}, batch {}{}, {} epochs",
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
        place.batch_note(a.batch_size),
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
    if let Some(r) = trainer.strategy_report() {
        println!("{r}");
    }
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
    }
    if let Some(m) = &summary.last_eval {
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v) as usize;
        println!("{}", accuracy_line(get("test_correct"), get("test_total")));
    }
    if !trainer.is_leader() {
        return Ok(());
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
    epoch_line_of(e, "images")
}

/// [`epoch_line`] with the throughput in `items` per second (`images`, `clips`).
pub fn epoch_line_of(e: &EpochEnd<'_>, items: &str) -> String {
    let find =
        |m: &[(String, f64)], k: &str| m.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
    let ev = e.eval.unwrap_or(&[]);
    let (correct, total) = (find(ev, "test_correct"), find(ev, "test_total"));
    format!(
        "Epoch [{}/{}] train loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}% ({}/{}), {:.1} s, {:.0} {items}/s",
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
