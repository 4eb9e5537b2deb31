//! RMSprop: `g = grad + wd p`; `v = alpha v + (1 - alpha) g^2`; centered: `a = lerp(a, g, 1 - alpha)`,
//! `d = sqrt(v - a^2) + eps`, else `d = sqrt(v) + eps`; with momentum `b = mu b + g / d`,
//! `p = p - lr b`, else `p = p - lr g / d`.

use super::state_accessors;
use super::{
    check_groups, empty_states, kernels, lerp, step_param, Optimizer, ParamGroup, ParamState,
};
use crate::error::Result;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

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
                    let (lr, wd, a, eps, mu) = (
                        T::cast(lr),
                        T::cast(wd),
                        T::cast(alpha),
                        T::cast(eps),
                        T::cast(mu),
                    );
                    let oma = T::cast(1.0 - alpha);
                    let (sq, rest) = b.split_at_mut(1);
                    let (ga, mb) = rest.split_at_mut(1);
                    for i in 0..p.len() {
                        let mut d = g[i];
                        if wd != T::cast(0.0) {
                            d += wd * p[i];
                        }
                        sq[0][i] = sq[0][i] * a + oma * d * d;
                        let avg = if centered {
                            ga[0][i] = lerp(ga[0][i], d, oma);
                            (sq[0][i] - ga[0][i] * ga[0][i]).sqrt() + eps
                        } else {
                            sq[0][i].sqrt() + eps
                        };
                        if mu > T::cast(0.0) {
                            mb[0][i] = mb[0][i] * mu + d / avg;
                            p[i] += -lr * mb[0][i];
                        } else {
                            p[i] += -lr * d / avg;
                        }
                    }
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
