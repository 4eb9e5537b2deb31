//! Stochastic gradient descent with momentum, dampening, Nesterov and weight decay:
//! `g = grad + wd p`; `b = g` on the first step, then `b = mu b + (1 - dampening) g`;
//! `g = g + mu b` (Nesterov) or `g = b`; `p = p - lr g`.

use super::{
    check_groups, empty_states, kernels, state_accessors, step_param, Optimizer, ParamGroup,
    ParamState,
};
use crate::error::{Error, Result};
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

pub struct Sgd {
    groups: Vec<ParamGroup>,
    states: Vec<Vec<ParamState>>,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl Sgd {
    /// SGD over one group of parameters.
    pub fn new(params: Vec<Tensor>, lr: f64, momentum: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            momentum,
            0.0,
            false,
        )
    }

    pub fn with_groups(
        groups: Vec<ParamGroup>,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    ) -> Result<Self> {
        check_groups("SGD", &groups)?;
        if momentum.is_nan() || momentum < 0.0 {
            return Err(Error::invalid(
                "SGD",
                format!("invalid momentum {momentum}"),
            ));
        }
        if nesterov && (momentum <= 0.0 || dampening != 0.0) {
            return Err(Error::invalid(
                "SGD",
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        let states = empty_states(&groups);
        Ok(Sgd {
            groups,
            states,
            momentum,
            dampening,
            nesterov,
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let (mu, damp, nesterov) = (self.momentum, self.dampening, self.nesterov);
        let nbufs = usize::from(mu != 0.0);
        for (g, sts) in self.groups.iter().zip(&mut self.states) {
            let (lr, wd) = (g.lr, g.weight_decay);
            for (p, st) in g.params.iter().zip(sts.iter_mut()) {
                let (k32, k64) = kernels!(|p, g, b, step| {
                    let (lr, wd, mu, damp) =
                        (T::cast(lr), T::cast(wd), T::cast(mu), T::cast(1.0 - damp));
                    // branches hoisted out of the loops so each loop vectorises
                    let d = |i: usize, p: &[T]| {
                        if wd != T::cast(0.0) {
                            g[i] + wd * p[i]
                        } else {
                            g[i]
                        }
                    };
                    if b.is_empty() {
                        if wd == T::cast(0.0) {
                            p.iter_mut().zip(g).for_each(|(p, &g)| *p += -lr * g);
                        } else {
                            p.iter_mut()
                                .zip(g)
                                .for_each(|(p, &g)| *p += -lr * (g + wd * *p));
                        }
                        return;
                    }
                    let buf = &mut b[0];
                    let zero_wd = wd == T::cast(0.0);
                    // b = g (first step) or mu b + (1 - dampening) g, with g = grad + wd p
                    match (step == 1, zero_wd) {
                        (true, true) => buf.copy_from_slice(g),
                        (true, false) => buf
                            .iter_mut()
                            .zip(g)
                            .zip(p.iter())
                            .for_each(|((b, &g), &p)| *b = g + wd * p),
                        (false, true) => buf
                            .iter_mut()
                            .zip(g)
                            .for_each(|(b, &g)| *b = *b * mu + damp * g),
                        (false, false) => buf
                            .iter_mut()
                            .zip(g)
                            .zip(p.iter())
                            .for_each(|((b, &g), &p)| *b = *b * mu + damp * (g + wd * p)),
                    }
                    if nesterov {
                        for i in 0..p.len() {
                            let di = d(i, p);
                            p[i] += -lr * (di + mu * buf[i]);
                        }
                    } else {
                        p.iter_mut()
                            .zip(buf.iter())
                            .for_each(|(p, &b)| *p += -lr * b);
                    }
                });
                step_param(p, st, nbufs, 0.0, k32, k64)?;
            }
        }
        Ok(())
    }
    state_accessors!(["momentum_buffer"]);
    fn momentum(&self) -> Option<f64> {
        (self.momentum != 0.0).then_some(self.momentum)
    }
    fn set_momentum(&mut self, m: f64) {
        self.momentum = m;
    }
}
