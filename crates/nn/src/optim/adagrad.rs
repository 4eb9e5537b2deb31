//! AdaGrad: `g = grad + wd p`; `clr = lr / (1 + (t - 1) lr_decay)`; `s = s + g^2`;
//! `p = p - clr g / (sqrt(s) + eps)`.

use super::{
    check_groups, empty_states, kernels, state_accessors, step_param, Optimizer, ParamGroup,
    ParamState,
};
use crate::error::Result;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

pub struct Adagrad {
    groups: Vec<ParamGroup>,
    states: Vec<Vec<ParamState>>,
    pub lr_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
}

impl Adagrad {
    /// AdaGrad with PyTorch's defaults for the rest (lr_decay 0, accumulator 0, eps 1e-10).
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            0.0,
            0.0,
            1e-10,
        )
    }
    pub fn with_groups(
        groups: Vec<ParamGroup>,
        lr_decay: f64,
        initial_accumulator_value: f64,
        eps: f64,
    ) -> Result<Self> {
        check_groups("Adagrad", &groups)?;
        let states = empty_states(&groups);
        Ok(Adagrad {
            groups,
            states,
            lr_decay,
            initial_accumulator_value,
            eps,
        })
    }
}

impl Optimizer for Adagrad {
    fn step(&mut self) -> Result<()> {
        let (decay, eps, init) = (self.lr_decay, self.eps, self.initial_accumulator_value);
        for (g, sts) in self.groups.iter().zip(&mut self.states) {
            let (lr, wd) = (g.lr, g.weight_decay);
            for (p, st) in g.params.iter().zip(sts.iter_mut()) {
                let (k32, k64) = kernels!(|p, g, b, step| {
                    let clr = T::cast(lr / (1.0 + (step - 1) as f64 * decay));
                    let (wd, eps) = (T::cast(wd), T::cast(eps));
                    let s = &mut b[0];
                    for i in 0..p.len() {
                        let mut d = g[i];
                        if wd != T::cast(0.0) {
                            d += wd * p[i];
                        }
                        s[i] += d * d;
                        p[i] += -clr * d / (s[i].sqrt() + eps);
                    }
                });
                step_param(p, st, 1, init, k32, k64)?;
            }
        }
        Ok(())
    }
    state_accessors!(["sum"]);
}
