//! Adadelta (Zeiler 2012, PyTorch's `Adadelta`): `g = grad + wd p`;
//! `s = rho s + (1 - rho) g^2`; `d = sqrt(a + eps) / sqrt(s + eps) * g`;
//! `a = rho a + (1 - rho) d^2`; `p = p - lr d`.

use super::engine::{Engine, Rule, StepCtx};
use super::{OptFloat, ParamGroup};
use crate::error::{Error, Result};
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// Adadelta's settings (PyTorch's defaults: rho 0.9, eps 1e-6).
pub struct AdadeltaRule {
    pub rho: f64,
    pub eps: f64,
}

pub type Adadelta = Engine<AdadeltaRule>;

impl Engine<AdadeltaRule> {
    /// Adadelta with PyTorch's defaults (its default lr is 1.0).
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(vec![ParamGroup::new(params, lr, weight_decay)], 0.9, 1e-6)
    }
    pub fn with_groups(groups: Vec<ParamGroup>, rho: f64, eps: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&rho) {
            return Err(Error::invalid(
                "Adadelta",
                format!("rho must be in [0, 1], got {rho}"),
            ));
        }
        Engine::from_rule(groups, AdadeltaRule { rho, eps })
    }
}

/// `(lr, wd, rho, 1 - rho, eps)`, weight decay as a constant.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: bool>(
    p: &mut [T],
    g: &[T],
    s: &mut [T],
    a: &mut [T],
    (lr, wd, rho, omr, eps): (T, T, T, T, T),
) {
    let n = p.len();
    let (g, s, a) = (&g[..n], &mut s[..n], &mut a[..n]);
    for i in 0..n {
        let d = if DECAY { g[i] + wd * p[i] } else { g[i] };
        s[i] = s[i] * rho + omr * d * d;
        let std = (s[i] + eps).sqrt();
        let delta = (a[i] + eps).sqrt() / std * d;
        a[i] = a[i] * rho + omr * delta * delta;
        p[i] += -lr * delta;
    }
}

impl Rule for AdadeltaRule {
    const NAME: &'static str = "Adadelta";
    fn buffers(&self) -> &'static [&'static str] {
        &["square_avg", "acc_delta"]
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let k = (
            T::cast(c.lr),
            T::cast(c.weight_decay),
            T::cast(self.rho),
            T::cast(1.0 - self.rho),
            T::cast(self.eps),
        );
        let [s, a] = b else { return };
        with_avx2(
            #[inline(always)]
            || {
                if c.weight_decay != 0.0 {
                    step_chunk::<T, true>(p, g, s, a, k)
                } else {
                    step_chunk::<T, false>(p, g, s, a, k)
                }
            },
        )
    }
}
