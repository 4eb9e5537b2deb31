//! AdaGrad: `g = grad + wd p`; `clr = lr / (1 + (t - 1) lr_decay)`; `s = s + g^2`;
//! `p = p - clr g / (sqrt(s) + eps)`.

use super::engine::{Engine, Rule, StepCtx};
use super::{OptFloat, ParamGroup};
use crate::error::Result;
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;

/// One chunk's update (module doc) with `(clr, wd, eps)`, weight decay as a constant so that
/// the loop has no branches and vectorises.
#[inline(always)]
fn step_chunk<T: Float, const DECAY: bool>(
    p: &mut [T],
    g: &[T],
    s: &mut [T],
    (clr, wd, eps): (T, T, T),
) {
    let n = p.len();
    let (g, s) = (&g[..n], &mut s[..n]);
    for i in 0..n {
        let d = if DECAY { g[i] + wd * p[i] } else { g[i] };
        s[i] += d * d;
        p[i] += -clr * d / (s[i].sqrt() + eps);
    }
}

/// AdaGrad's settings.
pub struct AdagradRule {
    pub lr_decay: f64,
    pub initial_accumulator_value: f64,
    pub eps: f64,
}

pub type Adagrad = Engine<AdagradRule>;

impl Engine<AdagradRule> {
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
        Engine::from_rule(
            groups,
            AdagradRule {
                lr_decay,
                initial_accumulator_value,
                eps,
            },
        )
    }
}

impl Rule for AdagradRule {
    const NAME: &'static str = "Adagrad";
    fn buffers(&self) -> &'static [&'static str] {
        &["sum"]
    }
    fn initial(&self, _i: usize) -> f64 {
        self.initial_accumulator_value
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        let clr = T::cast(c.lr / (1.0 + (c.step - 1) as f64 * self.lr_decay));
        let k = (clr, T::cast(c.weight_decay), T::cast(self.eps));
        let s = &mut *b[0];
        with_avx2(
            #[inline(always)]
            || {
                if c.weight_decay != 0.0 {
                    step_chunk::<T, true>(p, g, s, k)
                } else {
                    step_chunk::<T, false>(p, g, s, k)
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::check_exact;
    use super::*;

    /// Weight decay and learning-rate decay, against the module doc's update one element at a
    /// time in f32.
    #[test]
    fn updates_match_the_formula_exactly() {
        let eps = 1e-10f64;
        for (lr, wd, decay, init) in [(1e-2, 0.0, 0.0, 0.0), (1e-2, 0.1, 0.01, 0.1)] {
            check_exact(
                &format!("AdaGrad lr {lr} wd {wd} lr_decay {decay} initial {init}"),
                |p| {
                    let g = vec![ParamGroup::new(vec![p], lr, wd)];
                    Box::new(Adagrad::with_groups(g, decay, init, eps).unwrap())
                },
                |n| {
                    let mut s = vec![init as f32; n];
                    move |p: &mut [f32], g: &[f32], step: i32| {
                        let clr = (lr / (1.0 + (step - 1) as f64 * decay)) as f32;
                        for i in 0..p.len() {
                            let d = if wd != 0.0 {
                                g[i] + wd as f32 * p[i]
                            } else {
                                g[i]
                            };
                            s[i] += d * d;
                            p[i] += -clr * d / (s[i].sqrt() + eps as f32);
                        }
                    }
                },
            );
        }
    }
}
