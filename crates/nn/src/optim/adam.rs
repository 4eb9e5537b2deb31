//! Adam and AdamW (with optional AMSGrad):
//! `m = lerp(m, g, 1 - b1)`, `v = b2 v + (1 - b2) g^2`, `p = p - lr/(1 - b1^t) * m / (sqrt(v')/sqrt(1 - b2^t) + eps)`
//! with `v' = max over steps of v` for AMSGrad. Adam adds `wd p` to the gradient; AdamW decays the
//! weights directly, `p = p (1 - lr wd)`, before the update (decoupled weight decay).

use super::state_accessors;
use super::{
    check_groups, empty_states, kernels, lerp, step_param, Optimizer, ParamGroup, ParamState,
    PAR_CHUNK,
};
use crate::error::{Error, Result};
use ferrograd_tensor::cpu::simd::with_avx2;
use ferrograd_tensor::dtype::Float;
use ferrograd_tensor::Tensor;
use rayon::prelude::*;

/// A chunk of a parameter, its gradient, and its three state buffers.
type AdamChunk<'a, T> = (
    ((&'a mut [T], &'a [T]), &'a mut [T]),
    (&'a mut [T], &'a mut [T]),
);

struct AdamCore {
    groups: Vec<ParamGroup>,
    states: Vec<Vec<ParamState>>,
    betas: (f64, f64),
    eps: f64,
    amsgrad: bool,
    decoupled: bool,
}

impl AdamCore {
    fn new(
        op: &'static str,
        groups: Vec<ParamGroup>,
        betas: (f64, f64),
        eps: f64,
        amsgrad: bool,
        decoupled: bool,
    ) -> Result<Self> {
        check_groups(op, &groups)?;
        for b in [betas.0, betas.1] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::invalid(
                    op,
                    format!("betas must be in [0, 1), got {betas:?}"),
                ));
            }
        }
        let states = empty_states(&groups);
        Ok(AdamCore {
            groups,
            states,
            betas,
            eps,
            amsgrad,
            decoupled,
        })
    }

    fn step(&mut self) -> Result<()> {
        let ((b1, b2), eps, ams, decoupled) = (self.betas, self.eps, self.amsgrad, self.decoupled);
        for (g, sts) in self.groups.iter().zip(&mut self.states) {
            let (lr, wd) = (g.lr, g.weight_decay);
            for (p, st) in g.params.iter().zip(sts.iter_mut()) {
                let (k32, k64) = kernels!(|p, g, b, step| {
                    let bc1 = 1.0 - b1.powi(step as i32);
                    let bc2 = 1.0 - b2.powi(step as i32);
                    let step_size = T::cast(lr / bc1);
                    let bc2_sqrt = T::cast(bc2.sqrt());
                    let (w1, b2t, omb2, eps) = (
                        T::cast(1.0 - b1),
                        T::cast(b2),
                        T::cast(1.0 - b2),
                        T::cast(eps),
                    );
                    let decay = T::cast(1.0 - lr * wd);
                    let wdt = T::cast(wd);
                    let (m, rest) = b.split_at_mut(1);
                    let (v, vmax) = rest.split_at_mut(1);
                    let (m, v, vmax) = (&mut m[0][..], &mut v[0][..], &mut vmax[0][..]);
                    // elementwise, so chunks (and threads) cannot change a single value; AVX2
                    // when the CPU has it (IEEE sqrt and division: the same results)
                    let update = |(((p, g), m), (v, vmax)): AdamChunk<'_, T>| {
                        with_avx2(
                            #[inline(always)]
                            || {
                                for i in 0..p.len() {
                                    let mut d = g[i];
                                    if wd != 0.0 {
                                        if decoupled {
                                            p[i] *= decay;
                                        } else {
                                            d += wdt * p[i];
                                        }
                                    }
                                    m[i] = lerp(m[i], d, w1);
                                    v[i] = v[i] * b2t + omb2 * d * d;
                                    let vv = if ams {
                                        vmax[i] = vmax[i].max(v[i]);
                                        vmax[i]
                                    } else {
                                        v[i]
                                    };
                                    let denom = vv.sqrt() / bc2_sqrt + eps;
                                    p[i] += -step_size * m[i] / denom;
                                }
                            },
                        )
                    };
                    let n = p.len();
                    let (g, v, vmax) = (&g[..n], &mut v[..n], &mut vmax[..n]);
                    if n >= 2 * PAR_CHUNK {
                        p.par_chunks_mut(PAR_CHUNK)
                            .zip(g.par_chunks(PAR_CHUNK))
                            .zip(m.par_chunks_mut(PAR_CHUNK))
                            .zip(
                                v.par_chunks_mut(PAR_CHUNK)
                                    .zip(vmax.par_chunks_mut(PAR_CHUNK)),
                            )
                            .for_each(update);
                    } else {
                        update((((p, g), &mut m[..n]), (v, vmax)));
                    }
                });
                step_param(p, st, 3, 0.0, k32, k64)?;
            }
        }
        Ok(())
    }
}

macro_rules! adam_like {
    ($(#[$doc:meta])* $name:ident, $decoupled:expr, $default_wd:expr) => {
        $(#[$doc])*
        pub struct $name(AdamCore);
        impl $name {
            /// One group with betas (0.9, 0.999) and eps 1e-8, PyTorch's defaults.
            pub fn new(params: Vec<Tensor>, lr: f64, weight_decay: f64) -> Result<Self> {
                Self::with_groups(vec![ParamGroup::new(params, lr, weight_decay)], (0.9, 0.999), 1e-8, false)
            }
            /// The default weight decay of this optimizer in PyTorch.
            pub const DEFAULT_WEIGHT_DECAY: f64 = $default_wd;
            pub fn with_groups(groups: Vec<ParamGroup>, betas: (f64, f64), eps: f64, amsgrad: bool) -> Result<Self> {
                Ok($name(AdamCore::new(stringify!($name), groups, betas, eps, amsgrad, $decoupled)?))
            }
        }
        impl Optimizer for $name {
            fn step(&mut self) -> Result<()> {
                self.0.step()
            }
            state_accessors!(0, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
            fn momentum(&self) -> Option<f64> {
                Some(self.0.betas.0)
            }
            fn set_momentum(&mut self, m: f64) {
                self.0.betas.0 = m;
            }
        }
    };
}

adam_like!(
    /// Adam: L2 weight decay added to the gradient.
    Adam, false, 0.0);
adam_like!(
    /// AdamW: decoupled weight decay (PyTorch's default weight decay 0.01).
    AdamW, true, 0.01);
