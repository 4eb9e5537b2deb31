//! Optimizers: the engine (`engine.rs`: groups, state, state_dict, dtype dispatch, parallel
//! chunks) and one file per update rule, each following PyTorch's rule operation by operation so
//! that trajectories agree to float precision. Updates run in place on the parameters' storage,
//! outside the graph.

pub mod adadelta;
pub mod adagrad;
pub mod adam;
pub mod adamax;
pub mod engine;
pub mod nadam;
pub mod radam;
pub mod rmsprop;
pub mod sgd;
pub mod sparse_adam;

pub use adadelta::Adadelta;
pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use adamax::Adamax;
pub use engine::{Engine, Rule, StepCtx};
pub use nadam::NAdam;
pub use radam::RAdam;
pub use rmsprop::RMSprop;
pub use sgd::Sgd;
pub use sparse_adam::SparseAdam;

use crate::error::{Error, Result};
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::{DType, Element, Tensor};
use std::collections::BTreeMap;

/// Parameters sharing hyperparameters: their own learning rate and weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    pub params: Vec<Tensor>,
    pub lr: f64,
    pub weight_decay: f64,
}

impl ParamGroup {
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Self {
        ParamGroup {
            params,
            lr,
            weight_decay,
        }
    }
}

/// A state buffer of one parameter, in the parameter's dtype.
#[derive(Clone, Debug)]
pub enum Buf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Per-parameter state: the number of steps taken and the optimizer's buffers (named by the
/// optimizer's `BUFFERS`).
#[derive(Clone, Debug, Default)]
pub struct ParamState {
    pub step: u64,
    pub bufs: Vec<Buf>,
}

/// The floating types optimizers update.
pub trait OptFloat: Float + Element + Send + Sync {
    fn unwrap(b: Buf) -> Option<Vec<Self>>;
    fn wrap(v: Vec<Self>) -> Buf;
}
impl OptFloat for f32 {
    fn unwrap(b: Buf) -> Option<Vec<Self>> {
        match b {
            Buf::F32(v) => Some(v),
            Buf::F64(_) => None,
        }
    }
    fn wrap(v: Vec<Self>) -> Buf {
        Buf::F32(v)
    }
}
impl OptFloat for f64 {
    fn unwrap(b: Buf) -> Option<Vec<Self>> {
        match b {
            Buf::F64(v) => Some(v),
            Buf::F32(_) => None,
        }
    }
    fn wrap(v: Vec<Self>) -> Buf {
        Buf::F64(v)
    }
}

/// The common interface of optimizers.
pub trait Optimizer: Send {
    /// Applies one update to every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    fn groups(&self) -> &[ParamGroup];
    fn groups_mut(&mut self) -> &mut [ParamGroup];
    /// Names of the per-parameter buffers, in `ParamState::bufs` order.
    fn buffer_names(&self) -> &'static [&'static str];
    fn states(&self) -> &[Vec<ParamState>];
    fn states_mut(&mut self) -> &mut Vec<Vec<ParamState>>;
    /// The momentum-like coefficient that one-cycle schedules vary (SGD and RMSprop momentum,
    /// Adam's beta1), if the optimizer has one.
    fn momentum(&self) -> Option<f64> {
        None
    }
    fn set_momentum(&mut self, _m: f64) {}

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        for g in self.groups() {
            for p in &g.params {
                p.zero_grad();
            }
        }
    }
    /// Sets the learning rate of every group.
    fn set_lr(&mut self, lr: f64) {
        for g in self.groups_mut() {
            g.lr = lr;
        }
    }
    /// The learning rate of the first group.
    fn lr(&self) -> f64 {
        self.groups().first().map_or(0.0, |g| g.lr)
    }

    /// The state as named tensors (`{group}.{param}.{buffer}` and `{group}.{param}.step`), plus
    /// each group's hyperparameters (`{group}.lr`, `{group}.weight_decay`) and the momentum.
    fn state_dict(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        let names = self.buffer_names();
        for (gi, (g, sts)) in self.groups().iter().zip(self.states()).enumerate() {
            out.insert(format!("{gi}.lr"), Tensor::scalar(g.lr));
            out.insert(format!("{gi}.weight_decay"), Tensor::scalar(g.weight_decay));
            for (pi, st) in sts.iter().enumerate() {
                out.insert(format!("{gi}.{pi}.step"), Tensor::scalar(st.step as i64));
                for (name, b) in names.iter().zip(&st.bufs) {
                    let t = match b {
                        Buf::F32(v) => Tensor::from_slice(v, [v.len()])?,
                        Buf::F64(v) => Tensor::from_slice(v, [v.len()])?,
                    };
                    out.insert(format!("{gi}.{pi}.{name}"), t);
                }
            }
        }
        if let Some(m) = self.momentum() {
            out.insert("momentum".into(), Tensor::scalar(m));
        }
        Ok(out)
    }

    /// Restores a state written by [`Optimizer::state_dict`] for the same parameter layout.
    fn load_state_dict(&mut self, d: &BTreeMap<String, Tensor>) -> Result<()> {
        let names = self.buffer_names();
        let get = |k: &str| {
            d.get(k)
                .ok_or_else(|| Error::StateDict(format!("optimizer state lacks {k}")))
        };
        let shapes: Vec<Vec<(usize, DType)>> = self
            .groups()
            .iter()
            .map(|g| g.params.iter().map(|p| (p.numel(), p.dtype())).collect())
            .collect();
        let mut new_states = Vec::new();
        let mut hyper = Vec::new();
        for (gi, ps) in shapes.iter().enumerate() {
            let (lr, wd) = (
                get(&format!("{gi}.lr"))?.item()?,
                get(&format!("{gi}.weight_decay"))?.item()?,
            );
            // values from a file: a crafted or corrupt one must not become the run's rates
            if !lr.is_finite() || lr < 0.0 || !wd.is_finite() || wd < 0.0 {
                return Err(Error::StateDict(format!(
                    "group {gi}: learning rate {lr} and weight decay {wd} must be finite and >= 0"
                )));
            }
            hyper.push((lr, wd));
            let mut sts = Vec::new();
            for (pi, &(n, dt)) in ps.iter().enumerate() {
                let step = get(&format!("{gi}.{pi}.step"))?.item()?;
                if !(0.0..=1e15).contains(&step) || step.fract() != 0.0 {
                    return Err(Error::StateDict(format!(
                        "{gi}.{pi}.step is {step}, not a step count"
                    )));
                }
                let step = step as u64;
                let mut bufs = Vec::new();
                for name in names {
                    let key = format!("{gi}.{pi}.{name}");
                    let Some(t) = d.get(&key) else {
                        if step == 0 {
                            continue;
                        }
                        return Err(Error::StateDict(format!("optimizer state lacks {key}")));
                    };
                    if t.numel() != n || t.dtype() != dt {
                        return Err(Error::StateDict(format!(
                            "{key}: expected {n} values of {dt}, got {} of {}",
                            t.numel(),
                            t.dtype()
                        )));
                    }
                    bufs.push(match dt {
                        DType::F64 => Buf::F64(t.to_vec()?),
                        _ => Buf::F32(t.to_vec()?),
                    });
                }
                sts.push(ParamState { step, bufs });
            }
            new_states.push(sts);
        }
        for (g, (lr, wd)) in self.groups_mut().iter_mut().zip(hyper) {
            g.lr = lr;
            g.weight_decay = wd;
        }
        *self.states_mut() = new_states;
        if let Some(m) = d.get("momentum") {
            self.set_momentum(m.item()?);
        }
        Ok(())
    }
}

/// Fresh per-parameter states for `groups`.
pub(crate) fn empty_states(groups: &[ParamGroup]) -> Vec<Vec<ParamState>> {
    groups
        .iter()
        .map(|g| vec![ParamState::default(); g.params.len()])
        .collect()
}

pub(crate) fn check_groups(op: &'static str, groups: &[ParamGroup]) -> Result<()> {
    for (i, g) in groups.iter().enumerate() {
        if !g.lr.is_finite() || g.lr < 0.0 {
            return Err(Error::invalid(
                op,
                format!("group {i}: invalid learning rate {}", g.lr),
            ));
        }
        if g.weight_decay.is_nan() || g.weight_decay < 0.0 {
            return Err(Error::invalid(
                op,
                format!("group {i}: invalid weight_decay {}", g.weight_decay),
            ));
        }
        for p in &g.params {
            if !p.is_leaf() || !p.requires_grad() {
                return Err(Error::invalid(
                    op,
                    "parameters must be leaf tensors that require grad",
                ));
            }
        }
    }
    Ok(())
}

/// Weight decay modes of the Adam family's kernels (const generic parameters): none.
pub(crate) const NO_DECAY: u8 = 0;
/// `wd p` added to the gradient (Adam, NAdam and RAdam by default).
pub(crate) const L2: u8 = 1;
/// `p *= 1 - lr wd` before the update (AdamW; NAdam and RAdam with `decoupled_weight_decay`).
pub(crate) const DECOUPLED: u8 = 2;

/// The decay mode of a step with weight decay `wd`.
pub(crate) fn decay_mode(wd: f64, decoupled: bool) -> u8 {
    match (wd != 0.0, decoupled) {
        (false, _) => NO_DECAY,
        (true, false) => L2,
        (true, true) => DECOUPLED,
    }
}

/// The part of one element's update that Adam, AdamW, NAdam and RAdam share: weight decay as
/// `DECAY` says (decoupled: `p *= 1 - lr wd`; L2: `d = g + wd p`), then the moments
/// `m = lerp(m, d, 1 - b1)` and `v = b2 v + (1 - b2) d^2`. Returns `d`. `c` is
/// `(wd, 1 - lr wd, 1 - b1, b2, 1 - b2)`.
#[inline(always)]
pub(crate) fn adam_moments<T: Float, const DECAY: u8>(
    p: &mut T,
    g: T,
    m: &mut T,
    v: &mut T,
    (wd, decay, w1, b2, omb2): (T, T, T, T, T),
) -> T {
    let mut d = g;
    if DECAY == DECOUPLED {
        *p *= decay;
    } else if DECAY == L2 {
        d += wd * *p;
    }
    *m = lerp(*m, d, w1);
    *v = *v * b2 + omb2 * d * d;
    d
}

/// PyTorch's CPU `lerp`: `a + w (b - a)` for w < 0.5, else `b - (b - a)(1 - w)`.
#[inline]
pub(crate) fn lerp<T: Float>(a: T, b: T, w: T) -> T {
    if w < T::cast(0.5) {
        a + w * (b - a)
    } else {
        b - (b - a) * (T::one() - w)
    }
}

/// Checks an optimizer's f32 update against a scalar reference, bit for bit, over three steps,
/// on the single-threaded path (1,000 elements) and the parallel one (70,001: more than two
/// chunks and a short last one). `reference(n)` makes the reference with fresh state for `n`
/// elements; it updates the parameter values given the gradient and the step (1-based).
#[cfg(test)]
pub(crate) fn check_exact<R: FnMut(&mut [f32], &[f32], i32)>(
    what: &str,
    make: impl Fn(Tensor) -> Box<dyn Optimizer>,
    reference: impl Fn(usize) -> R,
) {
    for n in [1000, 70_001] {
        let p0: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
            .collect();
        let p = Tensor::from_vec(p0.clone(), [n])
            .and_then(|t| t.requires_grad_(true))
            .unwrap();
        let (mut opt, mut reference, mut want) = (make(p.clone()), reference(n), p0);
        for step in 1..=3 {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 13 + step * 7) % 29) as f32 / 16.0 - 0.9)
                .collect();
            p.set_grad(Some(Tensor::from_vec(g.clone(), [n]).unwrap()))
                .unwrap();
            opt.step().unwrap();
            reference(&mut want, &g, step as i32);
            let got = p.with_data(|v: &[f32]| v.to_vec()).unwrap();
            let bad = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits());
            assert!(
                bad.is_none(),
                "{what}, n {n}, step {step}: element {bad:?} differs"
            );
        }
    }
}

/// The usual split into two parameter groups: the trainable parameters whose name satisfies
/// `decayed` get `weight_decay`, the others none (biases, layer norms and embeddings in
/// nanoGPT's and Hugging Face's recipes), both at `lr`, in registration order.
pub fn decay_groups(
    m: &dyn crate::Module,
    lr: f64,
    weight_decay: f64,
    decayed: impl Fn(&str) -> bool,
) -> Vec<ParamGroup> {
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (n, t) in crate::trainable_parameters(m) {
        if decayed(&n) {
            yes.push(t);
        } else {
            no.push(t);
        }
    }
    vec![
        ParamGroup::new(yes, lr, weight_decay),
        ParamGroup::new(no, lr, 0.0),
    ]
}
