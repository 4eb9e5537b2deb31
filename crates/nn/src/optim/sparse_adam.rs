//! SparseAdam, PyTorch's Adam for row-sparse gradients (embeddings looked up with
//! `sparse = true`), on the rows a batch touched only:
//! `dm = (1 - b1)(g - m)`, `m = m + dm`, `dv = (1 - b2)(g^2 - v)`, `v = v + dv`,
//! `p = p - lr sqrt(1 - b2^t)/(1 - b1^t) * m / (sqrt(v) + eps)`.
//! Unlike Adam, eps is added to `sqrt(v)` before the bias correction is applied, as PyTorch's
//! `sparse_adam` does. The step count `t` advances once per optimizer step that gives the table
//! a gradient, whichever rows it touched. Weight decay (not in PyTorch's SparseAdam) is L2 on the
//! touched rows: `g = g + wd p`.
//!
//! A parameter with a dense gradient (a layer beside the embeddings) is updated by Adam's rule,
//! eps after the bias correction: PyTorch's SparseAdam refuses dense gradients, so its users
//! give the layers to an `Adam` of the same settings, and this is what they get.

use super::adam::AdamRule;
use super::engine::{Engine, Rule, StepCtx};
use super::{OptFloat, ParamGroup};
use crate::error::Result;
use ferrograd_tensor::Tensor;

/// SparseAdam's settings.
pub struct SparseAdamRule {
    pub betas: (f64, f64),
    pub eps: f64,
}

pub type SparseAdam = Engine<SparseAdamRule>;

impl Engine<SparseAdamRule> {
    /// One group with betas (0.9, 0.999) and eps 1e-8, PyTorch's defaults.
    pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
        Self::with_groups(
            vec![ParamGroup::new(params, lr, weight_decay)],
            (0.9, 0.999),
            1e-8,
        )
    }
    pub fn with_groups(groups: Vec<ParamGroup>, betas: (f64, f64), eps: f64) -> Result<Self> {
        super::adam::check_betas("SparseAdam", betas)?;
        Engine::from_rule(groups, SparseAdamRule { betas, eps })
    }
}

impl Rule for SparseAdamRule {
    const NAME: &'static str = "SparseAdam";
    fn buffers(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    fn update<T: OptFloat>(&self, c: &StepCtx, p: &mut [T], g: &[T], b: &mut [&mut [T]]) {
        if !c.sparse {
            let adam = AdamRule::<false> {
                betas: self.betas,
                eps: self.eps,
                amsgrad: false,
            };
            return adam.update(c, p, g, b);
        }
        let [m, v] = b else { return };
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(c.step as i32);
        let bc2 = 1.0 - b2.powi(c.step as i32);
        let neg_step = T::cast(-(c.lr * bc2.sqrt() / bc1));
        let (w1, w2, eps, wd) = (
            T::cast(1.0 - b1),
            T::cast(1.0 - b2),
            T::cast(self.eps),
            T::cast(c.weight_decay),
        );
        let decay = c.weight_decay != 0.0;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let d = if decay { g[i] + wd * p[i] } else { g[i] };
            let dm = (d - m[i]) * w1;
            let numer = dm + m[i];
            m[i] += dm;
            let dv = (d * d - v[i]) * w2;
            let vv = dv + v[i];
            v[i] += dv;
            p[i] += neg_step * (numer / (vv.sqrt() + eps));
        }
    }
    fn momentum(&self) -> Option<f64> {
        Some(self.betas.0)
    }
    fn set_momentum(&mut self, m: f64) {
        self.betas.0 = m;
    }
}
