//! RAdam (Liu et al. 2019, PyTorch's `RAdam`): Adam with the variance of the adaptive rate
//! rectified. `g = grad + wd p` (or `p = p (1 - lr wd)` when decoupled); `m = lerp(m, g, 1 - b1)`;
//! `v = b2 v + (1 - b2) g^2`; with `rho_inf = 2 / (1 - b2) - 1` and
//! `rho_t = rho_inf - 2 t b2^t / (1 - b2^t)`: when `rho_t > 5`,
//! `r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))` and
//! `p = p - m / (1 - b1^t) * lr * (1 / (sqrt(v) + eps)) * sqrt(1 - b2^t) * r`; otherwise
//! `p = p - m / (1 - b1^t) * lr` (plain momentum while the variance estimate is unreliable).

use super::adam::check_betas;
use super::engine::{Engine, Rule, StepCtx};
use super::{adam_moments, decay_mode, OptFloat, ParamGroup, DECOUPLED, L2, NO_DECAY};
use crate::error::Result;
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// RAdam's settings (PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, L2 weight decay).
pub struct RAdamRule {
    pub betas: (f64, f64),
    pub eps: f64,
    pub decoupled_weight_decay: bool,
}

pub type RAdam = Engine<RAdamRule>;

impl Engine<RAdamRule> {
    /// RAdam with PyTorch's defaults (its default lr is 1e-3).
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            (0.9, 0.999),
            1e-8,
            false,
        )
    }
    pub fn with_groups(
        groups: Vec<ParamGroup>,
        betas: (f64, f64),
        eps: f64,
        decoupled_weight_decay: bool,
    ) -> Result<Self> {
        check_betas("RAdam", betas)?;
        Engine::from_rule(
            groups,
            RAdamRule {
                betas,
                eps,
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
    eps: T,
    bc1: T,
    lr: T,
    bc2_sqrt: T,
    rect: T,
}

/// `DECAY`: [`NO_DECAY`], [`L2`] or [`DECOUPLED`]; `RECT`: whether the rectified update applies.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: u8, const RECT: bool>(
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
        adam_moments::<T, DECAY>(&mut p[i], g[i], &mut m[i], &mut v[i], k);
        let step = m[i] / c.bc1 * c.lr;
        if RECT {
            // PyTorch computes `sqrt(bc2) / (sqrt(v) + eps)` as a reciprocal times a scalar
            let adaptive = T::one() / (v[i].sqrt() + c.eps) * c.bc2_sqrt;
            p[i] += -(step * adaptive * c.rect);
        } else {
            p[i] += -step;
        }
    }
}

impl Rule for RAdamRule {
    const NAME: &'static str = "RAdam";
    fn buffers(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let ((b1, b2), t) = (self.betas, c.step as f64);
        let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            .sqrt();
        let k = Coefs {
            wd: T::cast(c.weight_decay),
            decay: T::cast(1.0 - c.lr * c.weight_decay),
            w1: T::cast(1.0 - b1),
            b2: T::cast(b2),
            omb2: T::cast(1.0 - b2),
            eps: T::cast(self.eps),
            bc1: T::cast(bc1),
            lr: T::cast(c.lr),
            bc2_sqrt: T::cast(bc2.sqrt()),
            rect: T::cast(rect),
        };
        let [m, v] = b else { return };
        with_avx2(
            #[inline(always)]
            || match (
                decay_mode(c.weight_decay, self.decoupled_weight_decay),
                rho_t > 5.0,
            ) {
                (NO_DECAY, true) => step_chunk::<T, NO_DECAY, true>(p, g, m, v, k),
                (NO_DECAY, false) => step_chunk::<T, NO_DECAY, false>(p, g, m, v, k),
                (L2, true) => step_chunk::<T, L2, true>(p, g, m, v, k),
                (L2, false) => step_chunk::<T, L2, false>(p, g, m, v, k),
                (_, true) => step_chunk::<T, DECOUPLED, true>(p, g, m, v, k),
                (_, false) => step_chunk::<T, DECOUPLED, false>(p, g, m, v, k),
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
