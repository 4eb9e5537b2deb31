//! Adamax (Kingma and Ba 2015, section 7; PyTorch's `Adamax`): Adam with the infinity norm.
//! `g = grad + wd p`; `m = lerp(m, g, 1 - b1)`; `u = max(b2 u, |g| + eps)`;
//! `p = p - lr / (1 - b1^t) * m / u`.

use super::adam::check_betas;
use super::engine::{Engine, Rule, StepCtx};
use super::{lerp, OptFloat, ParamGroup};
use crate::error::Result;
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// Adamax's settings (PyTorch's defaults: betas (0.9, 0.999), eps 1e-8).
pub struct AdamaxRule {
    pub betas: (f64, f64),
    pub eps: f64,
}

pub type Adamax = Engine<AdamaxRule>;

impl Engine<AdamaxRule> {
    /// Adamax with PyTorch's defaults (its default lr is 2e-3).
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            (0.9, 0.999),
            1e-8,
        )
    }
    pub fn with_groups(groups: Vec<ParamGroup>, betas: (f64, f64), eps: f64) -> Result<Self> {
        check_betas("Adamax", betas)?;
        Engine::from_rule(groups, AdamaxRule { betas, eps })
    }
}

/// `(wd, 1 - b1, b2, eps, -lr / (1 - b1^t))`, weight decay as a constant.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: bool>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    u: &mut [T],
    (wd, w1, b2, eps, neg_clr): (T, T, T, T, T),
) {
    let n = p.len();
    let (g, m, u) = (&g[..n], &mut m[..n], &mut u[..n]);
    for i in 0..n {
        let d = if DECAY { g[i] + wd * p[i] } else { g[i] };
        m[i] = lerp(m[i], d, w1);
        u[i] = (u[i] * b2).max(d.abs() + eps);
        p[i] += neg_clr * m[i] / u[i];
    }
}

impl Rule for AdamaxRule {
    const NAME: &'static str = "Adamax";
    fn buffers(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_inf"]
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let (b1, b2) = self.betas;
        let clr = c.lr / (1.0 - b1.powf(c.step as f64));
        let k = (
            T::cast(c.weight_decay),
            T::cast(1.0 - b1),
            T::cast(b2),
            T::cast(self.eps),
            T::cast(-clr),
        );
        let [m, u] = b else { return };
        with_avx2(
            #[inline(always)]
            || {
                if c.weight_decay != 0.0 {
                    step_chunk::<T, true>(p, g, m, u, k)
                } else {
                    step_chunk::<T, false>(p, g, m, u, k)
                }
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
