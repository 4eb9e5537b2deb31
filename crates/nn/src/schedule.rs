//! Learning-rate schedules with PyTorch's semantics: call `step()` once per epoch (or per batch
//! for one-cycle and warmup), after the optimizer's step; the schedule then sets the optimizer's
//! learning rate for the next epoch. Closed forms are used where PyTorch's recursive updates equal
//! them.
//!
//! A schedule is anything that implements [`LrSchedule`]: the rate after `t` steps. PyTorch's
//! are the variants of [`Schedule`], a serialisable description, so that a checkpoint can store
//! the schedule itself (a run split in two keeps the length it was made with); a user's own
//! schedule implements the trait, and a resumed run builds it again and takes only its position
//! from the checkpoint.

use crate::error::{Error, Result};
use crate::optim::Optimizer;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::sync::Arc;

/// A learning-rate schedule.
pub trait LrSchedule: Send + Sync {
    /// The rate after `t` steps of a group whose rate was `base` when the schedule was bound and
    /// is `current` now.
    fn lr(&self, base: f64, t: usize, current: f64) -> f64;
    /// The momentum after `t` steps, for schedules that cycle it (one-cycle).
    fn momentum(&self, _t: usize) -> Option<f64> {
        None
    }
    /// The most steps it can take (one-cycle: `total_steps - 1`); None: no end.
    fn last_step(&self) -> Option<usize> {
        None
    }
    /// The built-in description, which checkpoints store; None for a user's own schedule.
    fn builtin(&self) -> Option<&Schedule> {
        None
    }
}

/// Which schedule, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Constant learning rate.
    Constant,
    /// `lr = base * gamma^floor(epoch / step_size)`.
    Step { step_size: usize, gamma: f64 },
    /// `lr = base * gamma^(number of milestones <= epoch)`.
    MultiStep { milestones: Vec<usize>, gamma: f64 },
    /// `lr = base * gamma^epoch`.
    Exponential { gamma: f64 },
    /// `lr = eta_min + (base - eta_min) (1 + cos(pi epoch / t_max)) / 2`.
    Cosine { t_max: usize, eta_min: f64 },
    /// Linear warmup (PyTorch's LinearLR): factor from `start` to `end` over `total` steps.
    Linear {
        start_factor: f64,
        end_factor: f64,
        total_iters: usize,
    },
    /// One-cycle (cosine annealing): from `max_lr / div_factor` up to `max_lr` over
    /// `pct_start` of `total_steps`, then down to `initial / final_div_factor`; the momentum
    /// cycles inversely between `max_momentum` and `base_momentum` when the optimizer has one.
    OneCycle {
        max_lr: f64,
        total_steps: usize,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
        base_momentum: f64,
        max_momentum: f64,
    },
    /// PyTorch's PolynomialLR: `lr = base * (1 - min(epoch, total_iters) / total_iters)^power`.
    Polynomial { total_iters: usize, power: f64 },
    /// PyTorch's SequentialLR: `schedules[i]` from `milestones[i - 1]` on, counting its own
    /// steps from 0 there (warmup then cosine or linear decay are compositions).
    Sequential {
        schedules: Vec<Schedule>,
        milestones: Vec<usize>,
    },
    /// Multiplies the rate by `factor` when the monitored metric has not improved (relative
    /// threshold, mode min) for more than `patience` epochs, then waits `cooldown` epochs.
    ReduceOnPlateau {
        factor: f64,
        patience: usize,
        threshold: f64,
        cooldown: usize,
        min_lr: f64,
    },
}

/// A schedule bound to its base rates, and its progress.
#[derive(Clone)]
pub struct LrScheduler {
    schedule: Arc<dyn LrSchedule>,
    /// The learning rate of each group when the schedule was made.
    pub base_lrs: Vec<f64>,
    /// Number of `step()` calls so far.
    pub last_epoch: usize,
    /// Best metric so far (ReduceOnPlateau); None before the first step.
    best: Option<f64>,
    bad_epochs: usize,
    cooldown_left: usize,
}

/// Where a scheduler stands, as checkpoints store it: the schedule when it is a built-in one,
/// the base rates and the position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    pub schedule: Option<Schedule>,
    pub base_lrs: Vec<f64>,
    pub last_epoch: usize,
    pub best: Option<f64>,
    pub bad_epochs: usize,
    pub cooldown_left: usize,
}

fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
}

impl LrScheduler {
    /// Binds `schedule` to the optimizer and sets the initial learning rate (epoch 0).
    pub fn new(schedule: Schedule, opt: &mut dyn Optimizer) -> Result<Self> {
        validate(&schedule)?;
        Ok(Self::with(Arc::new(schedule), opt))
    }

    /// Binds a schedule of one's own (any [`LrSchedule`]) and sets the initial rate.
    pub fn with(schedule: Arc<dyn LrSchedule>, opt: &mut dyn Optimizer) -> Self {
        let base_lrs = opt.groups().iter().map(|g| g.lr).collect();
        let s = LrScheduler {
            schedule,
            base_lrs,
            last_epoch: 0,
            best: None,
            bad_epochs: 0,
            cooldown_left: 0,
        };
        s.apply(opt);
        s
    }

    /// The learning rate of group `i` at the current epoch.
    pub fn lr_at(&self, i: usize, current: f64) -> f64 {
        let base = self.base_lrs.get(i).copied().unwrap_or(current);
        self.schedule.lr(base, self.last_epoch, current)
    }

    pub fn schedule(&self) -> &dyn LrSchedule {
        self.schedule.as_ref()
    }

    /// Whether `step` may be called again (a one-cycle schedule ends).
    pub fn can_step(&self) -> bool {
        self.schedule
            .last_step()
            .is_none_or(|m| self.last_epoch < m)
    }

    /// Where it stands, for a checkpoint.
    pub fn state(&self) -> SchedulerState {
        SchedulerState {
            schedule: self.schedule.builtin().cloned(),
            base_lrs: self.base_lrs.clone(),
            last_epoch: self.last_epoch,
            best: self.best,
            bad_epochs: self.bad_epochs,
            cooldown_left: self.cooldown_left,
        }
    }

    /// Continues from a checkpoint's state: its built-in schedule replaces this one (so a run
    /// keeps the length it was made with); a schedule of one's own stays, at the saved position.
    pub fn load_state(&mut self, s: &SchedulerState) -> Result<()> {
        if s.base_lrs.len() != self.base_lrs.len() {
            return Err(Error::StateDict(format!(
                "schedule state for {} parameter groups, the optimizer has {}",
                s.base_lrs.len(),
                self.base_lrs.len()
            )));
        }
        match (&s.schedule, self.schedule.builtin()) {
            (Some(b), _) => {
                validate(b)?;
                self.schedule = Arc::new(b.clone());
            }
            (None, Some(_)) => {
                return Err(Error::StateDict(
                    "the checkpoint's schedule was a custom one, this run's is built in".into(),
                ))
            }
            (None, None) => {}
        }
        self.base_lrs = s.base_lrs.clone();
        self.last_epoch = s.last_epoch;
        self.best = s.best;
        self.bad_epochs = s.bad_epochs;
        self.cooldown_left = s.cooldown_left;
        Ok(())
    }
}

impl LrSchedule for Schedule {
    fn lr(&self, base: f64, t: usize, current: f64) -> f64 {
        closed_form(self, base, t, current)
    }
    fn momentum(&self, t: usize) -> Option<f64> {
        match self {
            Schedule::OneCycle {
                total_steps,
                pct_start,
                base_momentum,
                max_momentum,
                ..
            } => {
                let up_end = pct_start * *total_steps as f64 - 1.0;
                let down_end = *total_steps as f64 - 1.0;
                let s = t as f64;
                Some(if s <= up_end {
                    cos_anneal(*max_momentum, *base_momentum, s / up_end)
                } else {
                    cos_anneal(
                        *base_momentum,
                        *max_momentum,
                        (s - up_end) / (down_end - up_end),
                    )
                })
            }
            _ => None,
        }
    }
    fn last_step(&self) -> Option<usize> {
        match self {
            Schedule::OneCycle { total_steps, .. } => Some(total_steps - 1),
            _ => None,
        }
    }
    fn builtin(&self) -> Option<&Schedule> {
        Some(self)
    }
}

/// Checks what `LrScheduler::new` cannot use, naming PyTorch's class.
fn validate(schedule: &Schedule) -> Result<()> {
    match schedule {
        Schedule::Step { step_size: 0, .. } => {
            return Err(Error::invalid("StepLR", "step_size must be positive"))
        }
        Schedule::Cosine { t_max: 0, .. } => {
            return Err(Error::invalid(
                "CosineAnnealingLR",
                "t_max must be positive",
            ))
        }
        Schedule::Linear { total_iters: 0, .. } => {
            return Err(Error::invalid("LinearLR", "total_iters must be positive"))
        }
        Schedule::Polynomial { total_iters: 0, .. } => {
            return Err(Error::invalid(
                "PolynomialLR",
                "total_iters must be positive",
            ))
        }
        Schedule::OneCycle {
            total_steps,
            pct_start,
            ..
        } if *total_steps < 2 || !(0.0..=1.0).contains(pct_start) => {
            return Err(Error::invalid("OneCycleLR", format!("need total_steps >= 2 and pct_start in [0, 1], got {total_steps} and {pct_start}")));
        }
        Schedule::ReduceOnPlateau { factor, .. } if factor.is_nan() || *factor >= 1.0 => {
            return Err(Error::invalid(
                "ReduceLROnPlateau",
                format!("factor must be < 1, got {factor}"),
            ));
        }
        Schedule::Sequential {
            schedules,
            milestones,
        } => {
            if schedules.len() != milestones.len() + 1
                || milestones.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(Error::invalid(
                    "SequentialLR",
                    format!(
                        "needs one more schedule than milestones, milestones increasing; got {} schedules and milestones {milestones:?}",
                        schedules.len()
                    ),
                ));
            }
            for s in schedules {
                if matches!(
                    s,
                    Schedule::ReduceOnPlateau { .. } | Schedule::Sequential { .. }
                ) {
                    return Err(Error::invalid(
                        "SequentialLR",
                        "cannot hold ReduceLROnPlateau or another SequentialLR",
                    ));
                }
                validate(s)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The learning rate of a schedule with base rate `base` after `e` steps (`current` for the
/// schedules that keep it).
fn closed_form(schedule: &Schedule, base: f64, e: usize, current: f64) -> f64 {
    {
        match schedule {
            Schedule::Constant | Schedule::ReduceOnPlateau { .. } => current,
            Schedule::Step { step_size, gamma } => base * gamma.powi((e / step_size) as i32),
            Schedule::MultiStep { milestones, gamma } => {
                base * gamma.powi(milestones.iter().filter(|&&m| m <= e).count() as i32)
            }
            Schedule::Exponential { gamma } => base * gamma.powi(e as i32),
            Schedule::Cosine { t_max, eta_min } => {
                eta_min + (base - eta_min) * (1.0 + (PI * e as f64 / *t_max as f64).cos()) / 2.0
            }
            Schedule::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                let t = e.min(*total_iters) as f64 / *total_iters as f64;
                base * (start_factor + (end_factor - start_factor) * t)
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                ..
            } => {
                let initial = max_lr / div_factor;
                let min_lr = initial / final_div_factor;
                let up_end = pct_start * *total_steps as f64 - 1.0;
                let down_end = *total_steps as f64 - 1.0;
                let s = e as f64;
                if s <= up_end {
                    cos_anneal(initial, *max_lr, s / up_end)
                } else {
                    cos_anneal(*max_lr, min_lr, (s - up_end) / (down_end - up_end))
                }
            }
            Schedule::Polynomial { total_iters, power } => {
                let t = e.min(*total_iters) as f64 / *total_iters as f64;
                base * (1.0 - t).powf(*power)
            }
            Schedule::Sequential {
                schedules,
                milestones,
            } => {
                let i = milestones.iter().filter(|&&m| m <= e).count();
                let start = if i == 0 { 0 } else { milestones[i - 1] };
                closed_form(&schedules[i], base, e - start, current)
            }
        }
    }
}

impl LrScheduler {
    fn apply(&self, opt: &mut dyn Optimizer) {
        let lrs: Vec<f64> = opt
            .groups()
            .iter()
            .enumerate()
            .map(|(i, g)| self.lr_at(i, g.lr))
            .collect();
        for (g, lr) in opt.groups_mut().iter_mut().zip(lrs) {
            g.lr = lr;
        }
        if let (Some(m), Some(_)) = (self.schedule.momentum(self.last_epoch), opt.momentum()) {
            opt.set_momentum(m);
        }
    }

    /// Advances one epoch (or batch). `metric` is required by ReduceOnPlateau and ignored by the
    /// others.
    pub fn step(&mut self, opt: &mut dyn Optimizer, metric: Option<f64>) -> Result<()> {
        if !self.can_step() {
            return Err(Error::invalid(
                "LrScheduler",
                format!(
                    "stepped {} times, the most this schedule takes (one-cycle: total_steps - 1)",
                    self.last_epoch + 1
                ),
            ));
        }
        self.last_epoch += 1;
        if let Some(Schedule::ReduceOnPlateau {
            factor,
            patience,
            threshold,
            cooldown,
            min_lr,
        }) = self.schedule.builtin().cloned()
        {
            let m = metric.ok_or_else(|| {
                Error::invalid("ReduceLROnPlateau", "step needs the monitored metric")
            })?;
            if m.is_nan() {
                return Err(Error::invalid(
                    "ReduceLROnPlateau",
                    "the monitored metric is NaN",
                ));
            }
            if self.best.is_none_or(|b| m < b * (1.0 - threshold)) {
                self.best = Some(m);
                self.bad_epochs = 0;
            } else {
                self.bad_epochs += 1;
            }
            if self.cooldown_left > 0 {
                self.cooldown_left -= 1;
                self.bad_epochs = 0;
            }
            if self.bad_epochs > patience {
                for g in opt.groups_mut() {
                    let new = (g.lr * factor).max(min_lr);
                    if g.lr - new > 1e-8 {
                        g.lr = new;
                    }
                }
                self.cooldown_left = cooldown;
                self.bad_epochs = 0;
            }
            return Ok(());
        }
        self.apply(opt);
        Ok(())
    }
}
