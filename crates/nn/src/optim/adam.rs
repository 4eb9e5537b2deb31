//! Adam and AdamW (with optional AMSGrad):
//! `m = lerp(m, g, 1 - b1)`, `v = b2 v + (1 - b2) g^2`, `p = p - lr/(1 - b1^t) * m / (sqrt(v')/sqrt(1 - b2^t) + eps)`
//! with `v' = max over steps of v` for AMSGrad. Adam adds `wd p` to the gradient; AdamW decays the
//! weights directly, `p = p (1 - lr wd)`, before the update (decoupled weight decay).

use super::engine::{Engine, Rule, StepCtx};
use super::{adam_moments, decay_mode, OptFloat, ParamGroup, DECOUPLED, L2, NO_DECAY};
use crate::error::{Error, Result};
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// Adam's settings; `DECOUPLED_WD` is AdamW's weight decay.
pub struct AdamRule<const DECOUPLED_WD: bool> {
    pub betas: (f64, f64),
    pub eps: f64,
    pub amsgrad: bool,
}

impl<const DECOUPLED_WD: bool> Rule for AdamRule<DECOUPLED_WD> {
    const NAME: &'static str = if DECOUPLED_WD { "AdamW" } else { "Adam" };
    fn buffers(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let ((b1, b2), eps, ams) = (self.betas, self.eps, self.amsgrad);
        let (lr, wd) = (c.lr, c.weight_decay);
        let bc1 = 1.0 - b1.powi(c.step as i32);
        let bc2 = 1.0 - b2.powi(c.step as i32);
        let k = AdamCoefs {
            decay: T::cast(1.0 - lr * wd),
            wd: T::cast(wd),
            w1: T::cast(1.0 - b1),
            b2: T::cast(b2),
            omb2: T::cast(1.0 - b2),
            eps: T::cast(eps),
            step_size: T::cast(lr / bc1),
            bc2_sqrt: T::cast(bc2.sqrt()),
        };
        let mut none: [T; 0] = [];
        let (m, v, vmax): (&mut [T], &mut [T], &mut [T]) = match b {
            [m, v, vmax] => (m, v, vmax),
            [m, v] => (m, v, &mut none[..]),
            _ => return,
        };
        // elementwise, AVX2 when the CPU has it (IEEE sqrt and division: the same results)
        with_avx2(
            #[inline(always)]
            || match (decay_mode(wd, DECOUPLED_WD), ams) {
                (NO_DECAY, false) => step_chunk::<T, NO_DECAY, false>(p, g, m, v, vmax, k),
                (NO_DECAY, true) => step_chunk::<T, NO_DECAY, true>(p, g, m, v, vmax, k),
                (L2, false) => step_chunk::<T, L2, false>(p, g, m, v, vmax, k),
                (L2, true) => step_chunk::<T, L2, true>(p, g, m, v, vmax, k),
                (_, false) => step_chunk::<T, DECOUPLED, false>(p, g, m, v, vmax, k),
                (_, true) => step_chunk::<T, DECOUPLED, true>(p, g, m, v, vmax, k),
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

/// The constants of one Adam step (see the module doc).
#[derive(Clone, Copy)]
struct AdamCoefs<T> {
    /// `1 - lr wd`, AdamW's decay of the weights
    decay: T,
    wd: T,
    /// `1 - b1`
    w1: T,
    b2: T,
    /// `1 - b2`
    omb2: T,
    eps: T,
    /// `lr / (1 - b1^t)`
    step_size: T,
    /// `sqrt(1 - b2^t)`
    bc2_sqrt: T,
}

/// One chunk's update, its options as constants so that the loop has no branches and
/// vectorises.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: u8, const AMS: bool>(
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    vmax: &mut [T],
    c: AdamCoefs<T>,
) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    let vmax = if AMS { &mut vmax[..n] } else { vmax };
    for i in 0..n {
        let k = (c.wd, c.decay, c.w1, c.b2, c.omb2);
        adam_moments::<T, DECAY>(&mut p[i], g[i], &mut m[i], &mut v[i], k);
        let vv = if AMS {
            vmax[i] = vmax[i].max(v[i]);
            vmax[i]
        } else {
            v[i]
        };
        let denom = vv.sqrt() / c.bc2_sqrt + c.eps;
        p[i] += -c.step_size * m[i] / denom;
    }
}

macro_rules! adam_like {
    ($(#[$doc:meta])* $name:ident, $decoupled:expr, $default_wd:expr) => {
        $(#[$doc])*
        pub type $name = Engine<AdamRule<$decoupled>>;
        impl Engine<AdamRule<$decoupled>> {
            /// One group with betas (0.9, 0.999) and eps 1e-8, PyTorch's defaults.
            pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
                Self::with_groups(vec![ParamGroup::new(params, lr, weight_decay)], (0.9, 0.999), 1e-8, false)
            }
            /// The default weight decay of this optimizer in PyTorch.
            pub const DEFAULT_WEIGHT_DECAY: f64 = $default_wd;
            pub fn with_groups(groups: Vec<ParamGroup>, betas: (f64, f64), eps: f64, amsgrad: bool) -> Result<Self> {
                check_betas(stringify!($name), betas)?;
                Engine::from_rule(groups, AdamRule { betas, eps, amsgrad })
            }
        }
    };
}

/// Betas in [0, 1), as PyTorch requires.
pub(crate) fn check_betas(op: &'static str, betas: (f64, f64)) -> Result<()> {
    for b in [betas.0, betas.1] {
        if !(0.0..1.0).contains(&b) {
            return Err(Error::invalid(
                op,
                format!("betas must be in [0, 1), got {betas:?}"),
            ));
        }
    }
    Ok(())
}

adam_like!(
    /// Adam: L2 weight decay added to the gradient.
    Adam, false, 0.0);
adam_like!(
    /// AdamW: decoupled weight decay (PyTorch's default weight decay 0.01).
    AdamW, true, 0.01);

#[cfg(test)]
mod tests {
    use super::super::check_exact;
    use super::*;

    /// Every weight-decay mode and AMSGrad, against the module doc's update one element at a
    /// time in f32, the constants rounded from f64 as the optimizer does.
    #[test]
    fn updates_match_the_formula_exactly() {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        for (lr, wd, decoupled, ams) in [
            (1e-3, 0.0, false, false),
            (1e-3, 0.1, false, false),
            (1e-3, 0.1, true, false),
            (1e-3, 0.0, false, true),
            (1e-3, 0.1, true, true),
        ] {
            check_exact(
                &format!("Adam lr {lr} wd {wd} decoupled {decoupled} amsgrad {ams}"),
                |p| {
                    let g = vec![ParamGroup::new(vec![p], lr, wd)];
                    if decoupled {
                        Box::new(AdamW::with_groups(g, (b1, b2), eps, ams).unwrap())
                    } else {
                        Box::new(Adam::with_groups(g, (b1, b2), eps, ams).unwrap())
                    }
                },
                |n| {
                    let (mut m, mut v, mut vmax) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
                    move |p: &mut [f32], g: &[f32], step: i32| {
                        let step_size = (lr / (1.0 - b1.powi(step))) as f32;
                        let bc2_sqrt = (1.0 - b2.powi(step)).sqrt() as f32;
                        let (w1, b2f, omb2) = ((1.0 - b1) as f32, b2 as f32, (1.0 - b2) as f32);
                        for i in 0..p.len() {
                            let mut d = g[i];
                            if wd != 0.0 {
                                if decoupled {
                                    p[i] *= (1.0 - lr * wd) as f32;
                                } else {
                                    d += wd as f32 * p[i];
                                }
                            }
                            m[i] += w1 * (d - m[i]);
                            v[i] = v[i] * b2f + omb2 * d * d;
                            vmax[i] = vmax[i].max(v[i]);
                            let vv = if ams { vmax[i] } else { v[i] };
                            p[i] += -step_size * m[i] / (vv.sqrt() / bc2_sqrt + eps as f32);
                        }
                    }
                },
            );
        }
    }
}
