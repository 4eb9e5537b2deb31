//! The Trainer on a model of a user's own (not one ferrograd ships): resume is bit-exact with
//! dropout on and a per-batch schedule, a NaN loss stops the run and leaves the checkpoint as
//! it was, gradient accumulation equals the large batch, the best weights and early stopping
//! follow the chosen metric, and output paths are checked before anything runs.

use ferrograd_nn::loss::{mse_loss, Reduction};
use ferrograd_nn::{
    parameters, state_dict, Dropout, Forward, Linear, LrScheduler, Module, Schedule, Sgd,
};
use ferrograd_tensor::{Rng, Tensor};
use ferrograd_train::{
    Batches, Goal, OutputPlan, Result, Setting, StepOutput, TrainConfig, TrainError, TrainStep,
    Trainer,
};
use serde_json::Value;

/// Two linear layers with dropout between them.
#[derive(Module)]
struct Net {
    fc1: Linear,
    drop: Dropout,
    fc2: Linear,
    training: bool,
}

impl Net {
    fn new(seed: u64) -> Net {
        let mut rng = Rng::new(seed);
        Net {
            fc1: Linear::new(4, 16, &mut rng).unwrap(),
            drop: Dropout::new(0.2, seed + 1).unwrap(),
            fc2: Linear::new(16, 1, &mut rng).unwrap(),
            training: true,
        }
    }
}

impl Forward for Net {
    fn forward(&self, x: &Tensor) -> ferrograd_nn::Result<Tensor> {
        self.fc2
            .forward(&self.drop.forward(&self.fc1.forward(x)?.tanh()?)?)
    }
}

/// 40 points of y = sum(x) + noise, shuffled per epoch from (seed, epoch).
struct Points {
    x: Vec<f32>,
    y: Vec<f32>,
    batch: usize,
}

impl Points {
    fn new(batch: usize) -> Points {
        let mut rng = Rng::new(7);
        let x: Vec<f32> = (0..160)
            .map(|_| rng.next_f64() as f32 * 2.0 - 1.0)
            .collect();
        let y = x.chunks(4).map(|r| r.iter().sum::<f32>() * 0.5).collect();
        Points { x, y, batch }
    }
}

impl Batches for Points {
    type Batch = (Tensor, Tensor);
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.y.len().div_ceil(self.batch))
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<(Tensor, Tensor)>> + '_>> {
        let mut order: Vec<usize> = (0..self.y.len()).collect();
        Rng::new(100 + epoch as u64).shuffle(&mut order);
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch).map(|c| c.to_vec()).collect();
        Ok(Box::new(chunks.into_iter().skip(start).map(move |idx| {
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| self.x[4 * i..4 * i + 4].to_vec())
                .collect();
            let y: Vec<f32> = idx.iter().map(|&i| self.y[i]).collect();
            Ok((
                Tensor::from_vec(x, [idx.len(), 4])?,
                Tensor::from_vec(y, [idx.len(), 1])?,
            ))
        })))
    }
}

struct Regress {
    net: Net,
    /// A scripted sequence of evaluation values, to drive best-weights and early stopping.
    evals: Vec<f64>,
    calls: usize,
    scale: f32,
}

impl TrainStep for Regress {
    type Batch = (Tensor, Tensor);
    fn model(&self) -> &dyn Module {
        &self.net
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.net
    }
    fn forward(&mut self, (x, y): (Tensor, Tensor)) -> Result<StepOutput> {
        let n = x.dims()[0];
        let loss = mse_loss(
            &self.net.forward(&x.mul_scalar(self.scale as f64)?)?,
            &y,
            Reduction::Mean,
        )?;
        Ok(StepOutput::new(loss, n))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let v = self.evals.get(self.calls).copied().unwrap_or(0.0);
        self.calls += 1;
        Ok(vec![("score".into(), v)])
    }
    fn state(&self) -> Value {
        Value::from(self.calls)
    }
    fn load_state(&mut self, s: &Value) -> Result<()> {
        self.calls = s.as_u64().unwrap_or(0) as usize;
        Ok(())
    }
}

fn trainer(net: &Net, cfg: TrainConfig) -> Trainer {
    let mut opt = Box::new(Sgd::new(parameters(net), 0.05, 0.9, 0.0).unwrap());
    let sched = LrScheduler::new(
        Schedule::OneCycle {
            max_lr: 0.05,
            total_steps: 30,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            base_momentum: 0.85,
            max_momentum: 0.95,
        },
        opt.as_mut(),
    )
    .unwrap();
    Trainer::new(cfg, opt, Some(sched))
}

fn regress(seed: u64) -> Regress {
    Regress {
        net: Net::new(seed),
        evals: Vec::new(),
        calls: 0,
        scale: 1.0,
    }
}

fn weights(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    state_dict(m)
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                t.to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            )
        })
        .collect()
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        schedule_per_batch: true,
        eval_each_epoch: true,
        workload: "regression".into(),
        settings: vec![
            Setting::fixed("--lr", 0.05),
            Setting::changeable("--epochs", epochs),
        ],
        handle_signals: false,
        ..TrainConfig::default()
    }
}

#[test]
fn stopped_and_resumed_equals_one_run_with_dropout_and_a_per_batch_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    // 3 epochs of 10 batches straight, a step record every 5 batches
    let logged = || TrainConfig {
        log_every: 5,
        ..config(3)
    };
    let mut a = regress(1);
    let s = trainer(&a.net, logged())
        .fit(&mut a, &mut Points::new(4), None)
        .unwrap();
    assert_eq!(s.steps, 30);
    let straight = s.history;
    // 13 steps (mid-epoch), then resumed from the checkpoint in a fresh process-like setup
    let mut b = regress(1);
    let mut cfg = logged();
    cfg.max_steps = Some(13);
    cfg.checkpoint = Some(ck.clone());
    let s = trainer(&b.net, cfg.clone())
        .fit(&mut b, &mut Points::new(4), None)
        .unwrap();
    assert!(s.stopped_at_max_steps && s.steps == 13);
    assert_ne!(weights(&a.net), weights(&b.net));
    let mut c = regress(99); // other initial weights and dropout seed: all restored from the file
    cfg.max_steps = None;
    let mut t = trainer(&c.net, cfg);
    let mut data = Points::new(4);
    let (changed, point) = t.restore(&ck, &mut c, &mut data).unwrap();
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!((point.epoch, point.batch, point.step), (1, 3, 13));
    let s = t.fit(&mut c, &mut data, Some(point)).unwrap();
    assert_eq!(s.steps, 30);
    assert_eq!(weights(&a.net), weights(&c.net), "resumed run differs");
    // the history holds the whole run: 3 epoch records, the first one from before the stop
    assert_eq!(
        s.history
            .iter()
            .filter(|r| r.kind == ferrograd_train::RecordKind::Epoch)
            .count(),
        3 + 1
    );
    // and its logged steps are the straight run's, the same losses bit for bit
    let steps = |h: &[ferrograd_train::Record]| -> Vec<(usize, u64)> {
        h.iter()
            .filter(|r| r.kind == ferrograd_train::RecordKind::Step)
            .map(|r| (r.step, r.get("loss").unwrap().to_bits()))
            .collect()
    };
    assert_eq!(steps(&s.history).len(), 6);
    assert_eq!(steps(&s.history), steps(&straight));
}

#[test]
fn a_contradicting_setting_is_refused_and_a_changeable_one_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let mut a = regress(1);
    let mut cfg = config(1);
    cfg.checkpoint = Some(ck.clone());
    trainer(&a.net, cfg.clone())
        .fit(&mut a, &mut Points::new(4), None)
        .unwrap();
    let mut b = regress(1);
    let mut cfg2 = config(2);
    cfg2.settings[0] = Setting::fixed("--lr", 0.5);
    let e = trainer(&b.net, cfg2)
        .restore(&ck, &mut b, &mut Points::new(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--lr is 0.05 in the checkpoint, 0.5 now"), "{e}");
    let (changed, _) = trainer(&b.net, config(2))
        .restore(&ck, &mut b, &mut Points::new(4))
        .unwrap();
    assert_eq!(changed, vec!["--epochs 2 (was 1)".to_string()]);
    let mut other = config(2);
    other.workload = "gpt".into();
    let e = trainer(&b.net, other)
        .restore(&ck, &mut b, &mut Points::new(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("a checkpoint of regression, not of gpt"), "{e}");
}

#[test]
fn a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let mut a = regress(1);
    let mut cfg = config(1);
    cfg.checkpoint = Some(ck.clone());
    trainer(&a.net, cfg.clone())
        .fit(&mut a, &mut Points::new(4), None)
        .unwrap();
    let before = std::fs::read(&ck).unwrap();
    let mut b = regress(1);
    b.scale = f32::NAN;
    let e = trainer(&b.net, cfg)
        .fit(&mut b, &mut Points::new(4), None)
        .err()
        .unwrap();
    assert!(matches!(e, TrainError::Diverged { step: 1, .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("step 1 (epoch 1, batch 1): the loss is NaN")
            && e.contains("is the last good checkpoint"),
        "{e}"
    );
    assert_eq!(std::fs::read(&ck).unwrap(), before);
}

#[test]
fn gradient_accumulation_equals_the_larger_batch() {
    let run = |batch: usize, accum: usize| {
        let mut s = regress(3);
        s.net.drop.p = 0.0;
        let mut cfg = config(2);
        cfg.grad_accum = accum;
        cfg.eval_each_epoch = false;
        trainer(&s.net, cfg)
            .fit(&mut s, &mut Points::new(batch), None)
            .unwrap();
        state_dict(&s.net)
            .into_values()
            .flat_map(|t| t.to_vec::<f32>().unwrap())
            .collect::<Vec<f32>>()
    };
    let (big, accumulated) = (run(8, 1), run(4, 2));
    let worst = big
        .iter()
        .zip(&accumulated)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst < 1e-5, "largest difference {worst}");
    assert_ne!(
        run(4, 1),
        big,
        "the test cannot tell accumulation from none"
    );
}

#[test]
fn best_weights_and_early_stopping_follow_the_metric() {
    let mut a = regress(1);
    a.evals = vec![0.5, 0.9, 0.7, 0.8, 0.6, 0.95];
    let mut cfg = config(6);
    cfg.best_metric = Some(("score".into(), Goal::Maximize));
    cfg.restore_best = true;
    cfg.early_stopping = Some(3);
    cfg.schedule_per_batch = false;
    // the weights after epoch 2 are the best; epochs 3-5 do not improve, so epoch 5 is the last
    let mut t = trainer(&a.net, cfg);
    let s = t.fit(&mut a, &mut Points::new(4), None).unwrap();
    assert!(s.early_stopped);
    assert_eq!(s.steps, 50);
    let best = s.best.unwrap();
    assert_eq!((best.value, best.epoch, best.step), (0.9, 2, 20));
    // the model now holds the epoch-2 weights: re-run two epochs and compare
    let mut b = regress(1);
    let mut cfg = config(6);
    cfg.max_steps = Some(20);
    cfg.schedule_per_batch = false;
    trainer(&b.net, cfg)
        .fit(&mut b, &mut Points::new(4), None)
        .unwrap();
    assert_eq!(weights(&a.net), weights(&b.net));
}

#[test]
fn outputs_are_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("corpus.txt");
    std::fs::write(&data, "text").unwrap();
    let missing = d.join("no/such/dir/w.safetensors");
    let e = OutputPlan::default()
        .file("--out", Some(&missing))
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("--out") && e.contains("does not exist"), "{e}");
    let e = OutputPlan::default()
        .input("--data", Some(&data))
        .file("--out", Some(&data))
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("is also the input --data"), "{e}");
    // the same file by another spelling
    let w = d.join("w.safetensors");
    let other = d.join(".").join("w.safetensors");
    let e = OutputPlan::default()
        .file("--out", Some(&w))
        .file("--checkpoint", Some(&other))
        .check()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--out and --checkpoint are the same path"),
        "{e}"
    );
    let e = OutputPlan::default()
        .dir("--tensorboard", Some(&data))
        .check()
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
    OutputPlan::default()
        .input("--data", Some(&data))
        .file("--out", Some(&w))
        .dir("--tensorboard", Some(&d.join("tb")))
        .check()
        .unwrap();
    assert_eq!(
        std::fs::read_dir(d).unwrap().count(),
        1,
        "the check left files behind"
    );
}

/// A schedule of one's own: `lr = base / sqrt(max(t, warmup))` (the Transformer paper's
/// inverse square root, without its warmup ramp).
struct InverseSqrt {
    warmup: usize,
}

impl ferrograd_nn::LrSchedule for InverseSqrt {
    fn lr(&self, base: f64, t: usize, _current: f64) -> f64 {
        base / (t.max(self.warmup) as f64).sqrt()
    }
}

/// It drives the learning rate, and a run stopped and resumed with it (the schedule built again,
/// its position from the checkpoint) equals one run.
#[test]
fn a_users_own_schedule_runs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck.safetensors");
    let make = |net: &Net, cfg: TrainConfig| {
        let mut opt = Box::new(Sgd::new(parameters(net), 0.05, 0.9, 0.0).unwrap());
        let sched = LrScheduler::with(std::sync::Arc::new(InverseSqrt { warmup: 4 }), opt.as_mut());
        Trainer::new(cfg, opt, Some(sched))
    };
    let mut a = regress(1);
    let mut t = make(&a.net, config(3));
    t.fit(&mut a, &mut Points::new(4), None).unwrap();
    let want = 0.05 / 30f64.sqrt();
    assert!(
        (t.optimizer.lr() - want).abs() < 1e-15,
        "{} vs {want}",
        t.optimizer.lr()
    );
    let mut b = regress(1);
    let mut cfg = config(3);
    cfg.max_steps = Some(13);
    cfg.checkpoint = Some(ck.clone());
    make(&b.net, cfg.clone())
        .fit(&mut b, &mut Points::new(4), None)
        .unwrap();
    let mut c = regress(1);
    cfg.max_steps = None;
    let mut t = make(&c.net, cfg);
    let mut data = Points::new(4);
    let (_, point) = t.restore(&ck, &mut c, &mut data).unwrap();
    t.fit(&mut c, &mut data, Some(point)).unwrap();
    assert_eq!(weights(&a.net), weights(&c.net));
    // a built-in schedule cannot resume a checkpoint written with a custom one
    let e = trainer(&c.net, config(3))
        .restore(&ck, &mut regress(1), &mut Points::new(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("custom"), "{e}");
}

/// A callback of one's own sees every step, evaluation and epoch, and the whole history at
/// the end; the CSV of a resumed run holds the rows from before the stop.
#[test]
fn callbacks_see_the_run_and_a_resumed_csv_holds_it_all() {
    use ferrograd_train::callbacks::{Callback, Column, CsvMetrics, EpochEnd, EvalEnd, StepEnd};
    use ferrograd_train::{Record, RecordKind};
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Counts {
        steps: usize,
        logged: usize,
        evals: usize,
        epochs: usize,
        end_history: usize,
    }
    struct Count(Arc<Mutex<Counts>>);
    impl Callback for Count {
        fn on_step_end(&mut self, _s: &StepEnd, r: Option<&Record>) -> ferrograd_train::Result<()> {
            let mut c = self.0.lock().unwrap();
            c.steps += 1;
            c.logged += usize::from(r.is_some());
            Ok(())
        }
        fn on_evaluation(
            &mut self,
            _e: &EvalEnd<'_>,
            _r: Option<&Record>,
        ) -> ferrograd_train::Result<()> {
            self.0.lock().unwrap().evals += 1;
            Ok(())
        }
        fn on_epoch_end(&mut self, _e: &EpochEnd<'_>, _r: &Record) -> ferrograd_train::Result<()> {
            self.0.lock().unwrap().epochs += 1;
            Ok(())
        }
        fn on_train_end(&mut self, h: &[Record]) -> ferrograd_train::Result<()> {
            self.0.lock().unwrap().end_history = h.len();
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (ck, full_csv, part_csv) = (
        dir.path().join("ck.safetensors"),
        dir.path().join("full.csv"),
        dir.path().join("part.csv"),
    );
    let columns = || {
        vec![
            Column::Kind("kind"),
            Column::Epoch("epoch"),
            Column::Step("step"),
            Column::Fixed("loss", "loss", 9),
        ]
    };
    let cfg = TrainConfig {
        log_every: 5,
        eval_every: Some(7),
        ..config(3)
    };
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut a = regress(1);
    let mut t = trainer(&a.net, cfg.clone());
    t.add_callback(Box::new(Count(counts.clone())));
    t.add_callback(Box::new(CsvMetrics::new(
        &full_csv,
        columns(),
        &[RecordKind::Step, RecordKind::Epoch],
    )));
    let s = t.fit(&mut a, &mut Points::new(4), None).unwrap();
    {
        let c = counts.lock().unwrap();
        // 30 steps, a record every 5 batches of an epoch (2 per epoch), evaluations at steps
        // 7, 14, 21, 28 and at each epoch's end
        assert_eq!((c.steps, c.logged, c.evals, c.epochs), (30, 6, 4 + 3, 3));
        assert_eq!(c.end_history, s.history.len());
    }
    // the same run in two parts, each writing the CSV
    let mut b = regress(1);
    let mut first = cfg.clone();
    first.max_steps = Some(12);
    first.checkpoint = Some(ck.clone());
    let mut t = trainer(&b.net, first.clone());
    t.add_callback(Box::new(CsvMetrics::new(
        &part_csv,
        columns(),
        &[RecordKind::Step, RecordKind::Epoch],
    )));
    t.fit(&mut b, &mut Points::new(4), None).unwrap();
    let mut c = regress(1);
    first.max_steps = None;
    let mut t = trainer(&c.net, first);
    t.add_callback(Box::new(CsvMetrics::new(
        &part_csv,
        columns(),
        &[RecordKind::Step, RecordKind::Epoch],
    )));
    let mut data = Points::new(4);
    let (_, point) = t.restore(&ck, &mut c, &mut data).unwrap();
    t.fit(&mut c, &mut data, Some(point)).unwrap();
    let rows = |p: &std::path::Path, kind: &str| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(kind))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(&part_csv, "step,"), rows(&full_csv, "step,"));
    assert_eq!(rows(&full_csv, "step,").len(), 6);
    // the stop at step 12 (epoch 2, batch 2) left a partial epoch row before the full ones
    assert_eq!(rows(&part_csv, "epoch,").len(), 4);
}
