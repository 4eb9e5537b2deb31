//! The Trainer: the one training loop, for every workload and every user's model.
//!
//! Per optimizer step: `zero_grad`, then for each of `grad_accum` micro-batches `forward` (the
//! user's [`TrainStep`]), a check that the loss is finite, and `backward` of the loss divided by
//! `grad_accum`; then gradient clipping, the optimizer step and a per-batch schedule. Around it:
//! evaluation every N steps and/or at each epoch's end, the best weights by a chosen metric,
//! early stopping, checkpoints after every evaluation and epoch (and when the run stops early
//! or is interrupted), callbacks for everything that is printed or written.

use crate::callbacks::{Callback, EpochEnd, EvalEnd, RunStart, StepEnd};
use crate::checkpoint::{Best, Checkpoint, Meta, Setting, FORMAT};
use crate::error::{Result, TrainError};
use crate::record::{Record, RecordKind};
use crate::step::{Batches, TrainStep};
use crate::strategy::Strategy;
use ferrograd_nn::clip::clip_grad_norm;
use ferrograd_nn::{
    load_state_dict, load_state_dict_partial, rng_streams, state_dict, LrScheduler, Module,
    Optimizer,
};
use ferrograd_tensor::Tensor;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// Which way the chosen metric improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    Maximize,
    Minimize,
}

/// How the run goes. `Default` gives one epoch, no evaluation, no checkpoint.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Epochs over a source with a length; ignored for an endless one.
    pub epochs: usize,
    /// The run's length in optimizer steps for an endless source (required there).
    pub total_steps: Option<usize>,
    /// Stop after this many optimizer steps in all (a checkpoint is written).
    pub max_steps: Option<usize>,
    /// Micro-batches per optimizer step (their gradients averaged).
    pub grad_accum: usize,
    /// Clip the global gradient norm to this before each step.
    pub clip_grad_norm: Option<f64>,
    /// Step the schedule after every optimizer step (true) or every epoch.
    pub schedule_per_batch: bool,
    /// The epoch record's value a ReduceOnPlateau schedule watches (e.g. `loss`).
    pub plateau_metric: Option<String>,
    /// A [`Record`] of the step every this many batches of an epoch (steps of an endless run).
    pub log_every: usize,
    /// Evaluate every this many optimizer steps.
    pub eval_every: Option<usize>,
    /// Evaluate at every epoch's end.
    pub eval_each_epoch: bool,
    /// Evaluate before the first step and after the last (nanoGPT's estimates).
    pub eval_at_start_and_end: bool,
    /// Keep the best weights by this evaluation metric.
    pub best_metric: Option<(String, Goal)>,
    /// Load the best weights into the model when the run ends.
    pub restore_best: bool,
    /// Stop when the best metric has not improved for this many evaluations.
    pub early_stopping: Option<usize>,
    /// Write a checkpoint here after every evaluation and epoch.
    pub checkpoint: Option<PathBuf>,
    /// The name the checkpoint is written under; resuming checks it.
    pub workload: String,
    /// The run's settings, kept in the checkpoint and compared on resume.
    pub settings: Vec<Setting>,
    /// Stop at the next step boundary on SIGINT/SIGTERM.
    pub handle_signals: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            total_steps: None,
            max_steps: None,
            grad_accum: 1,
            clip_grad_norm: None,
            schedule_per_batch: false,
            plateau_metric: None,
            log_every: 100,
            eval_every: None,
            eval_each_epoch: false,
            eval_at_start_and_end: false,
            best_metric: None,
            restore_best: false,
            early_stopping: None,
            checkpoint: None,
            workload: "model".into(),
            settings: Vec::new(),
            handle_signals: true,
        }
    }
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct Summary {
    pub steps: usize,
    pub history: Vec<Record>,
    /// The last evaluation's metrics.
    pub last_eval: Option<Vec<(String, f64)>>,
    pub best: Option<Best>,
    /// Stopped by `max_steps` before the run's end.
    pub stopped_at_max_steps: bool,
    pub early_stopped: bool,
}

/// Where a run stands.
struct Progress {
    epoch: usize,
    batch: usize,
    step: usize,
    last_eval_step: Option<usize>,
    history: Vec<Record>,
    best: Option<Best>,
    best_weights: BTreeMap<String, Tensor>,
    evals_since_best: usize,
    last_eval: Option<Vec<(String, f64)>>,
}

pub struct Trainer {
    pub config: TrainConfig,
    pub optimizer: Box<dyn Optimizer>,
    pub schedule: Option<LrScheduler>,
    callbacks: Vec<Box<dyn Callback>>,
    strategy: Option<Box<dyn Strategy>>,
}

/// Deep copies of what training changes in a module: the parameters that require a gradient
/// and the buffers (the best weights, kept while training moves on; frozen weights, e.g. an
/// encoder under LoRA adapters, are not copied).
fn snapshot(m: &dyn Module) -> Result<BTreeMap<String, Tensor>> {
    let mut live: Vec<(String, Tensor)> = ferrograd_nn::trainable_parameters(m);
    m.visit_buffers("", &mut |n, t| live.push((n.to_string(), t.clone())));
    live.into_iter()
        .map(|(k, t)| {
            let copy = Tensor::zeros(t.dims(), t.dtype())?;
            copy.copy_from(&t)?;
            Ok((k, copy))
        })
        .collect()
}

impl Trainer {
    pub fn new(
        config: TrainConfig,
        optimizer: Box<dyn Optimizer>,
        schedule: Option<LrScheduler>,
    ) -> Self {
        Trainer {
            config,
            optimizer,
            schedule,
            callbacks: Vec::new(),
            strategy: None,
        }
    }

    /// Trains data-parallel: this process is one replica of `strategy`'s world. Rank 0 alone runs
    /// the callbacks and writes checkpoints.
    pub fn set_strategy(&mut self, strategy: Box<dyn Strategy>) -> &mut Self {
        self.strategy = Some(strategy);
        self
    }

    /// The strategy's line on what its communication cost (None without one).
    pub fn strategy_report(&self) -> Option<String> {
        self.strategy.as_ref().and_then(|s| s.report())
    }

    /// The replicas of this run (1 without a strategy).
    pub fn world_size(&self) -> usize {
        self.strategy.as_ref().map_or(1, |s| s.world_size())
    }

    /// Whether this process prints, logs and writes checkpoints: rank 0, or a run of one.
    pub fn is_leader(&self) -> bool {
        self.strategy.as_ref().is_none_or(|s| s.rank() == 0)
    }

    pub fn add_callback(&mut self, c: Box<dyn Callback>) -> &mut Self {
        self.callbacks.push(c);
        self
    }

    fn each(&mut self, mut f: impl FnMut(&mut dyn Callback) -> Result<()>) -> Result<()> {
        if !self.is_leader() {
            return Ok(());
        }
        for c in &mut self.callbacks {
            f(c.as_mut())?;
        }
        Ok(())
    }

    /// Restores a checkpoint into the model, optimizer, schedule, data and step, after checking
    /// its settings against this run's; returns the changed settings for the banner.
    pub fn restore<S: TrainStep, D: Batches>(
        &mut self,
        path: &std::path::Path,
        step: &mut S,
        data: &mut D,
    ) -> Result<(Vec<String>, ResumePoint)> {
        let ck = Checkpoint::load(path)?;
        let changed = ck.check_settings(path, &self.config.workload, &self.config.settings)?;
        // the position is kept in samples: `batch` batches on each of `world_size` replicas
        let (old, new) = (ck.meta.world_size.max(1), self.world_size());
        let batch = if old == new {
            ck.meta.batch
        } else {
            let replica_batches = ck.meta.batch.saturating_mul(old);
            if replica_batches % new != 0 {
                return Err(TrainError::file(
                    path,
                    format!(
                        "it stopped after {} batches of each of {old} replicas, which is not a whole number of batches for {new} replicas: resume on {old} (or a number of replicas dividing {replica_batches})",
                        ck.meta.batch
                    ),
                ));
            }
            replica_batches / new
        };
        if let Some(n) = data.batches_per_epoch().filter(|&n| batch > n) {
            return Err(TrainError::file(
                path,
                format!(
                    "corrupt checkpoint: it stopped after batch {batch} of an epoch of {n} batches"
                ),
            ));
        }
        let in_file = |e: ferrograd_nn::Error| TrainError::file(path, e);
        load_state_dict(step.model(), &ck.model).map_err(in_file)?;
        self.optimizer.load_state_dict(&ck.optim).map_err(in_file)?;
        if let (Some(s), Some(saved)) = (&mut self.schedule, &ck.meta.schedule) {
            s.load_state(saved).map_err(in_file)?;
        }
        let mut missing = Vec::new();
        step.model()
            .visit_rng_streams("", &mut |name, s| match ck.meta.rng_streams.get(name) {
                Some(st) => s.set_state(*st),
                None => missing.push(name.to_string()),
            });
        if !missing.is_empty() {
            return Err(TrainError::file(
                path,
                format!("no state for the random streams {missing:?}"),
            ));
        }
        data.load_state(&ck.meta.data)?;
        step.load_state(&ck.meta.task)?;
        let m = ck.meta;
        Ok((
            changed,
            ResumePoint {
                epoch: m.epoch,
                batch,
                step: m.step,
                last_eval_step: m.last_eval_step,
                history: m.history,
                best: m.best,
                best_weights: ck.best,
                evals_since_best: m.evals_since_best,
            },
        ))
    }

    fn save_checkpoint<S: TrainStep, D: Batches>(
        &self,
        step: &S,
        data: &D,
        p: &Progress,
        (epoch, batch): (usize, usize),
    ) -> Result<()> {
        let Some(path) = &self.config.checkpoint else {
            return Ok(());
        };
        if !self.is_leader() {
            return Ok(());
        }
        let ck = Checkpoint {
            meta: Meta {
                format: FORMAT.into(),
                workload: self.config.workload.clone(),
                settings: self.config.settings.clone(),
                epoch,
                batch,
                world_size: self.world_size(),
                step: p.step,
                last_eval_step: p.last_eval_step,
                schedule: self.schedule.as_ref().map(LrScheduler::state),
                rng_streams: rng_streams(step.model()),
                data: data.state(),
                task: step.state(),
                history: p.history.clone(),
                best: p.best.clone(),
                evals_since_best: p.evals_since_best,
            },
            model: state_dict(step.model()),
            optim: self.optimizer.state_dict()?,
            best: p.best_weights.clone(),
        };
        ck.save(path)
    }

    /// Runs an evaluation; returns its metrics and whether the chosen metric improved.
    fn evaluate<S: TrainStep>(
        &mut self,
        step: &mut S,
        p: &mut Progress,
        epoch: usize,
    ) -> Result<(Vec<(String, f64)>, bool)> {
        let leader = self.is_leader();
        let metrics = if leader {
            let was_training = step.model().is_training();
            step.model_mut().eval();
            let metrics = step.evaluate();
            if was_training {
                step.model_mut().train();
            }
            metrics
        } else {
            Ok(Vec::new())
        };
        // rank 0 evaluates (the replicas hold the same weights) and tells the others, who wait
        // for it: the best weights and early stopping are decided the same way everywhere
        let metrics = match &mut self.strategy {
            Some(s) if s.world_size() > 1 => {
                // as bits: JSON has no NaN
                type Wire = std::result::Result<Vec<(String, u64)>, String>;
                let mut bytes = if leader {
                    let wire: Wire = match &metrics {
                        Ok(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect()),
                        Err(e) => Err(e.to_string()),
                    };
                    serde_json::to_vec(&wire)
                        .map_err(|e| TrainError::config(format!("evaluation results: {e}")))?
                } else {
                    Vec::new()
                };
                s.broadcast_bytes(&mut bytes)?;
                match serde_json::from_slice::<Wire>(&bytes) {
                    _ if leader => metrics,
                    Ok(Ok(m)) => Ok(m.into_iter().map(|(k, v)| (k, f64::from_bits(v))).collect()),
                    Ok(Err(e)) => Err(TrainError::config(format!("rank 0's evaluation: {e}"))),
                    Err(e) => Err(TrainError::config(format!(
                        "evaluation results from rank 0: {e}"
                    ))),
                }
            }
            _ => metrics,
        };
        let metrics = metrics?;
        p.last_eval_step = Some(p.step);
        let mut improved = false;
        if let Some((name, goal)) = &self.config.best_metric {
            let v = metrics
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    TrainError::config(format!(
                        "the evaluation has no metric {name:?} to keep the best weights by"
                    ))
                })?;
            improved = v.is_finite()
                && p.best.as_ref().is_none_or(|b| match goal {
                    Goal::Maximize => v > b.value,
                    Goal::Minimize => v < b.value,
                });
            if improved {
                p.best = Some(Best {
                    metric: name.clone(),
                    value: v,
                    step: p.step,
                    epoch: epoch + 1,
                });
                p.evals_since_best = 0;
                if self.config.restore_best {
                    p.best_weights = snapshot(step.model())?;
                }
            } else {
                p.evals_since_best += 1;
            }
        }
        p.last_eval = Some(metrics.clone());
        Ok((metrics, improved))
    }

    /// Trains `step`'s model on `data`, from the start or from `resume` (see [`Trainer::restore`]).
    pub fn fit<S, D>(
        &mut self,
        step: &mut S,
        data: &mut D,
        resume: Option<ResumePoint>,
    ) -> Result<Summary>
    where
        S: TrainStep,
        D: Batches<Batch = S::Batch>,
    {
        let cfg = self.config.clone();
        if cfg.grad_accum == 0
            || cfg.log_every == 0
            || cfg.epochs == 0
            || cfg.max_steps == Some(0)
            || cfg.eval_every == Some(0)
        {
            return Err(TrainError::config(format!(
                "Trainer: grad_accum, log_every, epochs, max_steps and eval_every must be positive, got {}, {}, {}, {:?} and {:?}",
                cfg.grad_accum, cfg.log_every, cfg.epochs, cfg.max_steps, cfg.eval_every
            )));
        }
        let bpe = data.batches_per_epoch();
        let total = match (bpe, cfg.total_steps) {
            (Some(_), _) => None,
            (None, Some(t)) => Some(t),
            (None, None) => {
                return Err(TrainError::config(
                    "Trainer: an endless data source needs total_steps",
                ))
            }
        };
        if bpe == Some(0) {
            return Err(TrainError::config("Trainer: the data has no batches"));
        }
        let r = resume.unwrap_or_default();
        let mut p = Progress {
            epoch: r.epoch,
            batch: r.batch,
            step: r.step,
            last_eval_step: r.last_eval_step,
            history: r.history,
            best: r.best,
            best_weights: r.best_weights,
            evals_since_best: r.evals_since_best,
            last_eval: None,
        };
        let _signals = cfg.handle_signals.then(crate::signal::install);
        let start = RunStart {
            epochs: bpe.map(|_| cfg.epochs),
            batches_per_epoch: bpe,
            start_epoch: p.epoch,
            start_step: p.step,
            history: &p.history,
        };
        if self.is_leader() {
            for c in &mut self.callbacks {
                c.on_train_start(&start)?;
            }
        }
        let t_run = Instant::now();
        let mut samples_run = 0usize;
        let params: Vec<Tensor> = self
            .optimizer
            .groups()
            .iter()
            .flat_map(|g| g.params.iter().cloned())
            .collect();
        let world = self.world_size();
        if let Some(s) = &mut self.strategy {
            // frozen parameters and buffers are made equal too, but have nothing to average
            let mut others: Vec<Tensor> = ferrograd_nn::parameters(step.model())
                .into_iter()
                .filter(|t| !params.iter().any(|p| p.id() == t.id()))
                .collect();
            step.model()
                .visit_buffers("", &mut |_, t| others.push(t.clone()));
            s.start(&params, &others)?;
        }
        let rate = |n: usize, t: Instant| n as f64 / t.elapsed().as_secs_f64().max(1e-9);
        // stopped: by max_steps inside an epoch; stop_after: by max_steps (at an epoch's end
        // the epoch is complete and the run stops after it)
        let (mut stopped, mut stop_after, mut interrupted, mut early) =
            (false, false, false, false);

        // a due evaluation that is not at an epoch's end (and not already done before a resume)
        let eval_due = |p: &Progress| {
            let s = p.step;
            p.last_eval_step != Some(s)
                && ((cfg.eval_at_start_and_end && (s == 0 || Some(s) == total))
                    || cfg.eval_every.is_some_and(|n| s > 0 && s.is_multiple_of(n)))
        };
        step.model_mut().train();
        if eval_due(&p) {
            self.mid_eval(step, data, &mut p, rate(samples_run, t_run))?;
        }
        'epochs: while total.is_some() || p.epoch < cfg.epochs {
            if total.is_some_and(|t| p.step >= t) {
                break;
            }
            let epoch = p.epoch;
            step.model_mut().train();
            let left = bpe.map(|n| n.saturating_sub(p.batch));
            self.each(|c| c.on_epoch_start(epoch, left))?;
            let t_epoch = Instant::now();
            let (mut loss_sum, mut steps_in_epoch, mut samples) = (0.0f64, 0usize, 0usize);
            let mut sums: Vec<(String, f64)> = Vec::new();
            let start_batch = p.batch;
            let mut batch = p.batch;
            let mut batches = data.epoch(epoch, start_batch)?;
            loop {
                if total.is_some_and(|t| p.step >= t) {
                    break;
                }
                self.optimizer.zero_grad();
                let (mut micro, mut step_loss) = (0usize, 0.0f64);
                while micro < cfg.grad_accum {
                    let Some(b) = batches.next() else { break };
                    let out = step.forward(b?)?;
                    let lv = out.loss.item()?;
                    if !lv.is_finite() {
                        let kept = match &cfg.checkpoint {
                            Some(c) if c.exists() => {
                                format!("; {} is the last good checkpoint", c.display())
                            }
                            _ => "; nothing was written for this step".into(),
                        };
                        return Err(TrainError::Diverged {
                            step: p.step + 1,
                            at: bpe.map_or(String::new(), |_| {
                                format!(" (epoch {}, batch {})", epoch + 1, batch + 1)
                            }),
                            value: lv,
                            lr: self.optimizer.lr(),
                            kept,
                        });
                    }
                    let loss = if cfg.grad_accum > 1 {
                        out.loss.div_scalar(cfg.grad_accum as f64)?
                    } else {
                        out.loss
                    };
                    match &mut self.strategy {
                        // only the last micro-batch's backward hands gradients over as they
                        // become final (PyTorch's no_sync for the others)
                        Some(s) if micro + 1 == cfg.grad_accum => {
                            loss.backward_with_hook(&mut |t| {
                                s.grad_ready(t).map_err(|e| ferrograd_tensor::Error::Value {
                                    op: "data-parallel backward",
                                    msg: e.to_string(),
                                })
                            })?
                        }
                        _ => loss.backward()?,
                    }
                    step_loss += lv;
                    samples += out.samples;
                    samples_run += out.samples;
                    for (k, v) in out.sums {
                        match sums.iter_mut().find(|(n, _)| *n == k) {
                            Some(e) => e.1 += v,
                            None => sums.push((k, v)),
                        }
                    }
                    batch += 1;
                    micro += 1;
                }
                if micro == 0 {
                    break;
                }
                // the replicas' mean loss, and whether any of them was asked to stop: all of
                // them stop at the same step
                let mut agreed = [
                    step_loss,
                    (cfg.handle_signals && crate::signal::requested()) as u8 as f64,
                ];
                if let Some(s) = &mut self.strategy {
                    s.finish_gradients()?;
                    s.sum(&mut agreed)?;
                    agreed[0] /= world as f64;
                }
                let (step_loss, stop_requested) = (agreed[0], agreed[1] > 0.0);
                if let Some(max) = cfg.clip_grad_norm {
                    clip_grad_norm(&params, max)?;
                }
                self.optimizer.step()?;
                if cfg.schedule_per_batch {
                    if let Some(s) = &mut self.schedule {
                        if s.can_step() {
                            s.step(self.optimizer.as_mut(), None)?;
                        }
                    }
                }
                p.step += 1;
                let loss = step_loss / micro as f64;
                loss_sum += loss;
                steps_in_epoch += 1;
                let samples_per_s = rate(samples * world, t_epoch);
                let logged = match bpe {
                    Some(_) => batch.is_multiple_of(cfg.log_every),
                    None => p.step.is_multiple_of(cfg.log_every),
                };
                let record = logged.then(|| {
                    Record::new(RecordKind::Step, epoch + 1, p.step)
                        .with("loss", loss)
                        .with("lr", self.optimizer.lr())
                        .with("samples_per_s", samples_per_s)
                });
                let s = StepEnd {
                    epoch,
                    epochs: bpe.map(|_| cfg.epochs),
                    batch,
                    batches_per_epoch: bpe,
                    step: p.step,
                    loss,
                    epoch_loss: loss_sum / steps_in_epoch as f64,
                    lr: self.optimizer.lr(),
                    samples_per_s,
                    batches_this_run: batch - start_batch,
                };
                self.each(|c| c.on_step_end(&s, record.as_ref()))?;
                if let Some(r) = record {
                    p.history.push(r);
                }
                let end_of_epoch = bpe == Some(batch);
                if !(end_of_epoch && cfg.eval_each_epoch) && eval_due(&p) {
                    drop(batches);
                    let improved_stop =
                        self.mid_eval(step, data, &mut p, rate(samples_run, t_run))?;
                    batches = data.epoch(epoch, batch)?;
                    if improved_stop {
                        early = true;
                        break;
                    }
                }
                if cfg.max_steps.is_some_and(|m| p.step >= m) && total.is_none_or(|t| p.step < t) {
                    stop_after = true;
                    if !end_of_epoch {
                        stopped = true;
                        break;
                    }
                }
                if stop_requested {
                    interrupted = true;
                    break;
                }
            }
            drop(batches);
            if interrupted {
                self.save_checkpoint(step, data, &p, (epoch, batch))?;
                let how = match &cfg.checkpoint {
                    Some(c) => format!(
                        "; the checkpoint {} was written: --resume {} continues",
                        c.display(),
                        c.display()
                    ),
                    None => "; nothing was saved (no --checkpoint)".into(),
                };
                return Err(TrainError::Interrupted { step: p.step, how });
            }
            if bpe.is_none() {
                // an endless source has no epochs: the run ends at total_steps or max_steps
                p.batch = batch;
                if stopped || early {
                    self.save_checkpoint(step, data, &p, (epoch, batch))?;
                }
                break 'epochs;
            }
            // the end of an epoch (or of the part of it run before max_steps)
            if let Some(s) = &mut self.strategy {
                let mut v: Vec<f64> = std::iter::once(samples as f64)
                    .chain(sums.iter().map(|(_, v)| *v))
                    .collect();
                s.sum(&mut v)?;
                samples = v[0] as usize;
                for (e, v) in sums.iter_mut().zip(&v[1..]) {
                    e.1 = *v;
                }
            }
            let seconds = t_epoch.elapsed().as_secs_f64();
            let (eval, improved) = if cfg.eval_each_epoch {
                let (m, imp) = self.evaluate(step, &mut p, epoch)?;
                (Some(m), imp)
            } else {
                (None, false)
            };
            let means: Vec<(String, f64)> = sums
                .iter()
                .map(|(k, v)| (k.clone(), v / samples.max(1) as f64))
                .collect();
            let epoch_loss = loss_sum / steps_in_epoch.max(1) as f64;
            let mut rec = Record::new(RecordKind::Epoch, epoch + 1, p.step)
                .with("loss", epoch_loss)
                .with("lr", self.optimizer.lr())
                .with("samples_per_s", samples as f64 / seconds.max(1e-9))
                .with("seconds", seconds);
            for (k, v) in means.iter().chain(eval.iter().flatten()) {
                rec = rec.with(k, *v);
            }
            let e = EpochEnd {
                epoch,
                epochs: Some(cfg.epochs),
                step: p.step,
                loss: epoch_loss,
                lr: self.optimizer.lr(),
                means: &means,
                eval: eval.as_deref(),
                is_best: improved,
                samples,
                seconds,
            };
            if let Some(m) = &eval {
                let ev = EvalEnd {
                    epoch,
                    step: p.step,
                    metrics: m,
                    is_best: improved,
                    samples_per_s: rate(samples_run, t_run),
                    lr: self.optimizer.lr(),
                    at_epoch_end: true,
                };
                self.each(|c| c.on_evaluation(&ev, None))?;
            }
            self.each(|c| c.on_epoch_end(&e, &rec))?;
            p.history.push(rec);
            if !stopped {
                if !cfg.schedule_per_batch {
                    if let Some(s) = &mut self.schedule {
                        let metric = cfg
                            .plateau_metric
                            .as_ref()
                            .and_then(|k| p.history.last().and_then(|r| r.get(k)));
                        s.step(self.optimizer.as_mut(), metric)?;
                    }
                }
                p.epoch += 1;
                p.batch = 0;
            } else {
                p.batch = batch;
            }
            self.save_checkpoint(step, data, &p, (p.epoch, p.batch))?;
            if cfg.early_stopping.is_some_and(|n| p.evals_since_best >= n) {
                early = true;
            }
            if stop_after || early {
                break;
            }
        }
        if total.is_some_and(|t| p.step >= t) && eval_due(&p) {
            self.mid_eval(step, data, &mut p, rate(samples_run, t_run))?;
        }
        if cfg.restore_best && !p.best_weights.is_empty() {
            load_state_dict_partial(step.model(), &p.best_weights)?;
        }
        let history = p.history.clone();
        if self.is_leader() {
            for c in &mut self.callbacks {
                c.on_train_end(&history)?;
            }
        }
        Ok(Summary {
            steps: p.step,
            history,
            last_eval: p.last_eval,
            best: p.best,
            stopped_at_max_steps: stopped || (stop_after && p.epoch < cfg.epochs),
            early_stopped: early,
        })
    }

    /// An evaluation between epochs' ends: its record, the callbacks, a checkpoint. Returns
    /// whether early stopping now ends the run.
    fn mid_eval<S: TrainStep, D: Batches>(
        &mut self,
        step: &mut S,
        data: &D,
        p: &mut Progress,
        samples_per_s: f64,
    ) -> Result<bool> {
        let epoch = p.epoch;
        let (metrics, improved) = self.evaluate(step, p, epoch)?;
        let mut rec =
            Record::new(RecordKind::Eval, epoch + 1, p.step).with("lr", self.optimizer.lr());
        for (k, v) in &metrics {
            rec = rec.with(k, *v);
        }
        let ev = EvalEnd {
            epoch,
            step: p.step,
            metrics: &metrics,
            is_best: improved,
            samples_per_s,
            lr: self.optimizer.lr(),
            at_epoch_end: false,
        };
        self.each(|c| c.on_evaluation(&ev, Some(&rec)))?;
        p.history.push(rec);
        self.save_checkpoint(step, data, p, (p.epoch, p.batch))?;
        Ok(self
            .config
            .early_stopping
            .is_some_and(|n| p.evals_since_best >= n))
    }
}

/// Where a resumed run continues, as [`Trainer::restore`] read it.
#[derive(Default)]
pub struct ResumePoint {
    pub epoch: usize,
    pub batch: usize,
    pub step: usize,
    pub last_eval_step: Option<usize>,
    pub history: Vec<Record>,
    pub best: Option<Best>,
    pub best_weights: BTreeMap<String, Tensor>,
    pub evals_since_best: usize,
}
