//! NAdam (Dozat 2016, PyTorch's `NAdam`): Adam with Nesterov momentum and a momentum schedule.
//! With `mu_t = b1 (1 - 0.5 * 0.96^(t psi))` (psi the momentum decay) and `P_t = mu_1 ... mu_t`:
//! `g = grad + wd p` (or `p = p (1 - lr wd)` when decoupled); `m = lerp(m, g, 1 - b1)`;
//! `v = b2 v + (1 - b2) g^2`; `d = sqrt(v / (1 - b2^t)) + eps`;
//! `p = p - lr (1 - mu_t) / (1 - P_t) * g / d - lr mu_{t+1} / (1 - P_t mu_{t+1}) * m / d`.
//! `P_t` is a product in the parameter's dtype, as PyTorch keeps it in the default dtype.

use super::adam::check_betas;
use super::engine::{Engine, Rule, StepCtx};
use super::{adam_moments, decay_mode, OptFloat, ParamGroup, DECOUPLED, L2, NO_DECAY};
use crate::error::{Error, Result};
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// NAdam's settings (PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, momentum decay 4e-3,
/// L2 weight decay).
pub struct NAdamRule {
    pub betas: (f64, f64),
    pub eps: f64,
    pub momentum_decay: f64,
    pub decoupled_weight_decay: bool,
}

pub type NAdam = Engine<NAdamRule>;

impl Engine<NAdamRule> {
    /// NAdam with PyTorch's defaults (its default lr is 2e-3).
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            (0.9, 0.999),
            1e-8,
            4e-3,
            false,
        )
    }
    pub fn with_groups(
        groups: Vec<ParamGroup>,
        betas: (f64, f64),
        eps: f64,
        momentum_decay: f64,
        decoupled_weight_decay: bool,
    ) -> Result<Self> {
        check_betas("NAdam", betas)?;
        if momentum_decay.is_nan() || momentum_decay < 0.0 {
            return Err(Error::invalid(
                "NAdam",
                format!("invalid momentum_decay {momentum_decay}"),
            ));
        }
        Engine::from_rule(
            groups,
            NAdamRule {
                betas,
                eps,
                momentum_decay,
                decoupled_weight_decay,
            },
        )
    }
}

#[derive(Clone, Copy)]
struct Coefs<T> {
    wd: T,
    decay: T,
    w1: T,
    b2: T,
    omb2: T,
    bc2: T,
    eps: T,
    /// `-lr (1 - mu_t) / (1 - P_t)`
    cg: T,
    /// `-lr mu_{t+1} / (1 - P_t mu_{t+1})`
    cm: T,
}

/// `DECAY`: [`NO_DECAY`], [`L2`] or [`DECOUPLED`].
#[inline(always)]
fn step_chunk<T: Float, const DECAY: u8>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    c: Coefs<T>,
) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let k = (c.wd, c.decay, c.w1, c.b2, c.omb2);
        let d = adam_moments::<T, DECAY>(&mut p[i], g[i], &mut m[i], &mut v[i], k);
        let denom = (v[i] / c.bc2).sqrt() + c.eps;
        p[i] += c.cg * d / denom;
        p[i] += c.cm * m[i] / denom;
    }
}

impl Rule for NAdamRule {
    const NAME: &'static str = "NAdam";
    fn buffers(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let ((b1, b2), psi, t) = (self.betas, self.momentum_decay, c.step);
        let mu = |s: u64| b1 * (1.0 - 0.5 * 0.96f64.powf(s as f64 * psi));
        // the product of the schedule so far, rounded step by step in T as PyTorch's is
        let mut prod = T::one();
        for s in 1..=t {
            prod *= T::cast(mu(s));
        }
        let prod = prod.as_f64();
        let (mu_t, mu_next) = (mu(t), mu(t + 1));
        let k = Coefs {
            wd: T::cast(c.weight_decay),
            decay: T::cast(1.0 - c.lr * c.weight_decay),
            w1: T::cast(1.0 - b1),
            b2: T::cast(b2),
            omb2: T::cast(1.0 - b2),
            bc2: T::cast(1.0 - b2.powf(t as f64)),
            eps: T::cast(self.eps),
            cg: T::cast(-c.lr * (1.0 - mu_t) / (1.0 - prod)),
            cm: T::cast((-c.lr * mu_next) / (1.0 - prod * mu_next)),
        };
        let [m, v] = b else { return };
        with_avx2(
            #[inline(always)]
            || match decay_mode(c.weight_decay, self.decoupled_weight_decay) {
                NO_DECAY => step_chunk::<T, NO_DECAY>(p, g, m, v, k),
                L2 => step_chunk::<T, L2>(p, g, m, v, k),
                _ => step_chunk::<T, DECOUPLED>(p, g, m, v, k),
            },
        )
    }
    fn momentum(&self) -> Option<f64> {
        Some(self.betas.0)
    }
    fn set_momentum(&mut self, m: f64) {
        self.betas.0 = m;
    }
}
