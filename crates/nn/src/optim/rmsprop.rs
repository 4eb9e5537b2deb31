//! RMSprop: `g = grad + wd p`; `v = alpha v + (1 - alpha) g^2`; centered: `a = lerp(a, g, 1 - alpha)`,
//! `d = sqrt(v - a^2) + eps`, else `d = sqrt(v) + eps`; with momentum `b = mu b + g / d`,
//! `p = p - lr b`, else `p = p - lr g / d`.

use super::engine::{Engine, Rule, StepCtx};
use super::{lerp, OptFloat, ParamGroup};
use crate::error::Result;
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// The constants of one RMSprop step; `oma` is `1 - alpha`.
#[derive(Clone, Copy)]
struct RmsCoefs<T> {
    lr: T,
    wd: T,
    alpha: T,
    oma: T,
    eps: T,
    mu: T,
}

/// One chunk's update (module doc), its options as constants so that the loop has no branches
/// and vectorises.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: bool, const CENTERED: bool, const MOMENTUM: bool>(
    p: &mut [T],
    g: &[T],
    sq: &mut [T],
    ga: &mut [T],
    mb: &mut [T],
    c: RmsCoefs<T>,
) {
    let n = p.len();
    let (g, sq) = (&g[..n], &mut sq[..n]);
    let ga = if CENTERED { &mut ga[..n] } else { ga };
    let mb = if MOMENTUM { &mut mb[..n] } else { mb };
    for i in 0..n {
        let d = if DECAY { g[i] + c.wd * p[i] } else { g[i] };
        sq[i] = sq[i] * c.alpha + c.oma * d * d;
        let avg = if CENTERED {
            ga[i] = lerp(ga[i], d, c.oma);
            (sq[i] - ga[i] * ga[i]).sqrt() + c.eps
        } else {
            sq[i].sqrt() + c.eps
        };
        if MOMENTUM {
            mb[i] = mb[i] * c.mu + d / avg;
            p[i] += -c.lr * mb[i];
        } else {
            p[i] += -c.lr * d / avg;
        }
    }
}

/// RMSprop's settings.
pub struct RmspropRule {
    pub alpha: f64,
    pub eps: f64,
    pub momentum: f64,
    pub centered: bool,
}

pub type RMSprop = Engine<RmspropRule>;

impl Engine<RmspropRule> {
    /// RMSprop with PyTorch's defaults alpha 0.99, eps 1e-8.
    pub fn new(params: Vec<Tensor>, lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            0.99,
            1e-8,
            momentum,
            false,
        )
    }
    pub fn with_groups(
        groups: Vec<ParamGroup>,
        alpha: f64,
        eps: f64,
        momentum: f64,
        centered: bool,
    ) -> Result<Self> {
        Engine::from_rule(
            groups,
            RmspropRule {
                alpha,
                eps,
                momentum,
                centered,
            },
        )
    }
}

impl Rule for RmspropRule {
    const NAME: &'static str = "RMSprop";
    fn buffers(&self) -> &'static [&'static str] {
        match (self.centered, self.momentum > 0.0) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "grad_avg"],
            (false, true) => &["square_avg", "momentum_buffer"],
            (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
        }
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let (centered, mu) = (self.centered, self.momentum);
        let k = RmsCoefs {
            lr: T::cast(c.lr),
            wd: T::cast(c.weight_decay),
            alpha: T::cast(self.alpha),
            oma: T::cast(1.0 - self.alpha),
            eps: T::cast(self.eps),
            mu: T::cast(mu),
        };
        let (sq, rest) = b.split_at_mut(1);
        let sq = &mut *sq[0];
        let (mut e1, mut e2): ([T; 0], [T; 0]) = ([], []);
        let (ga, mb): (&mut [T], &mut [T]) = match (centered, rest) {
            (true, [ga, mb]) => (ga, mb),
            (true, [ga]) => (ga, &mut e2[..]),
            (false, [mb]) => (&mut e1[..], mb),
            _ => (&mut e1[..], &mut e2[..]),
        };
        with_avx2(
            #[inline(always)]
            || match (c.weight_decay != 0.0, centered, mu > 0.0) {
                (false, false, false) => step_chunk::<T, false, false, false>(p, g, sq, ga, mb, k),
                (false, false, true) => step_chunk::<T, false, false, true>(p, g, sq, ga, mb, k),
                (false, true, false) => step_chunk::<T, false, true, false>(p, g, sq, ga, mb, k),
                (false, true, true) => step_chunk::<T, false, true, true>(p, g, sq, ga, mb, k),
                (true, false, false) => step_chunk::<T, true, false, false>(p, g, sq, ga, mb, k),
                (true, false, true) => step_chunk::<T, true, false, true>(p, g, sq, ga, mb, k),
                (true, true, false) => step_chunk::<T, true, true, false>(p, g, sq, ga, mb, k),
                (true, true, true) => step_chunk::<T, true, true, true>(p, g, sq, ga, mb, k),
            },
        )
    }
    fn momentum(&self) -> Option<f64> {
        (self.momentum != 0.0).then_some(self.momentum)
    }
    fn set_momentum(&mut self, m: f64) {
        self.momentum = m;
    }
}

#[cfg(test)]
mod tests {
    use super::super::check_exact;
    use super::*;

    /// Weight decay, centring and momentum, against the module doc's update one element at a
    /// time in f32.
    #[test]
    fn updates_match_the_formula_exactly() {
        let (alpha, eps) = (0.99f64, 1e-8f64);
        for (lr, wd, mu, centered) in [
            (1e-2, 0.0, 0.0, false),
            (1e-2, 0.1, 0.0, false),
            (1e-2, 0.0, 0.9, false),
            (1e-2, 0.0, 0.0, true),
            (1e-2, 0.1, 0.9, true),
        ] {
            check_exact(
                &format!("RMSprop lr {lr} wd {wd} momentum {mu} centered {centered}"),
                |p| {
                    let g = vec![ParamGroup::new(vec![p], lr, wd)];
                    Box::new(RMSprop::with_groups(g, alpha, eps, mu, centered).unwrap())
                },
                |n| {
                    let (mut sq, mut ga, mut mb) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
                    move |p: &mut [f32], g: &[f32], _step: i32| {
                        let (a, oma) = (alpha as f32, (1.0 - alpha) as f32);
                        let (lr, wd, mu, eps) = (lr as f32, wd as f32, mu as f32, eps as f32);
                        for i in 0..p.len() {
                            let d = if wd != 0.0 { g[i] + wd * p[i] } else { g[i] };
                            sq[i] = sq[i] * a + oma * d * d;
                            let avg = if centered {
                                // lerp with weight 1 - alpha < 0.5
                                ga[i] += oma * (d - ga[i]);
                                (sq[i] - ga[i] * ga[i]).sqrt() + eps
                            } else {
                                sq[i].sqrt() + eps
                            };
                            if mu > 0.0 {
                                mb[i] = mb[i] * mu + d / avg;
                                p[i] += -lr * mb[i];
                            } else {
                                p[i] += -lr * d / avg;
                            }
                        }
                    }
                },
            );
        }
    }
}
