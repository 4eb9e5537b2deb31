//! RMSprop: `g = grad + wd p`; `v = alpha v + (1 - alpha) g^2`; centered: `a = lerp(a, g, 1 - alpha)`,
//! `d = sqrt(v - a^2) + eps`, else `d = sqrt(v) + eps`; with momentum `b = mu b + g / d`,
//! `p = p - lr b`, else `p = p - lr g / d`.

use super::state_accessors;
use super::{
    check_groups, empty_states, for_chunks3, kernels, lerp, step_param, Chunk3, Optimizer,
    ParamGroup, ParamState,
};
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
    let (g, sq, ga, mb) = (&g[..n], &mut sq[..n], &mut ga[..n], &mut mb[..n]);
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

pub struct RMSprop {
    groups: Vec<ParamGroup>,
    states: Vec<Vec<ParamState>>,
    pub alpha: f64,
    pub eps: f64,
    pub momentum: f64,
    pub centered: bool,
}

impl RMSprop {
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
        check_groups("RMSprop", &groups)?;
        let states = empty_states(&groups);
        Ok(RMSprop {
            groups,
            states,
            alpha,
            eps,
            momentum,
            centered,
        })
    }
}

impl Optimizer for RMSprop {
    fn step(&mut self) -> Result<()> {
        let (alpha, eps, mu, centered) = (self.alpha, self.eps, self.momentum, self.centered);
        for (g, sts) in self.groups.iter().zip(&mut self.states) {
            let (lr, wd) = (g.lr, g.weight_decay);
            for (p, st) in g.params.iter().zip(sts.iter_mut()) {
                let (k32, k64) = kernels!(|p, g, b, _step| {
                    let c = RmsCoefs {
                        lr: T::cast(lr),
                        wd: T::cast(wd),
                        alpha: T::cast(alpha),
                        oma: T::cast(1.0 - alpha),
                        eps: T::cast(eps),
                        mu: T::cast(mu),
                    };
                    let (sq, rest) = b.split_at_mut(1);
                    let (ga, mb) = rest.split_at_mut(1);
                    let n = p.len();
                    let (sq, ga, mb) = (&mut sq[0][..n], &mut ga[0][..n], &mut mb[0][..n]);
                    // elementwise, so chunks (and threads) cannot change a single value
                    let update = |(((p, g), sq), (ga, mb)): Chunk3<'_, T>| {
                        with_avx2(
                            #[inline(always)]
                            || match (wd != 0.0, centered, mu > 0.0) {
                                (false, false, false) => {
                                    step_chunk::<T, false, false, false>(p, g, sq, ga, mb, c)
                                }
                                (false, false, true) => {
                                    step_chunk::<T, false, false, true>(p, g, sq, ga, mb, c)
                                }
                                (false, true, false) => {
                                    step_chunk::<T, false, true, false>(p, g, sq, ga, mb, c)
                                }
                                (false, true, true) => {
                                    step_chunk::<T, false, true, true>(p, g, sq, ga, mb, c)
                                }
                                (true, false, false) => {
                                    step_chunk::<T, true, false, false>(p, g, sq, ga, mb, c)
                                }
                                (true, false, true) => {
                                    step_chunk::<T, true, false, true>(p, g, sq, ga, mb, c)
                                }
                                (true, true, false) => {
                                    step_chunk::<T, true, true, false>(p, g, sq, ga, mb, c)
                                }
                                (true, true, true) => {
                                    step_chunk::<T, true, true, true>(p, g, sq, ga, mb, c)
                                }
                            },
                        )
                    };
                    for_chunks3((p, g), [sq, ga, mb], update);
                });
                step_param(p, st, 3, 0.0, k32, k64)?;
            }
        }
        Ok(())
    }
    state_accessors!(["square_avg", "grad_avg", "momentum_buffer"]);
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
