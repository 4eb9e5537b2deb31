//! Elementwise functions of one tensor, and arithmetic with a scalar.
//!
//! For `y = f(x)` applied elementwise, the vector-Jacobian product is `dx = g * f'(x)`; each
//! doc comment gives `f'`.

use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::ops::{binary_kernel, unary_kernel};
use crate::tensor::Tensor;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_TANH_C: f64 = 0.044_715;
const INV_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl Tensor {
    /// `g * h(x)` elementwise, where `g` and `x` have the same shape: the common shape of every
    /// unary backward here. Not recorded (backward runs without grad).
    pub(crate) fn grad_map(
        &self,
        g: &Tensor,
        op: &'static str,
        h: impl Fn(f64) -> f64 + Sync + Send + Copy,
    ) -> Result<Tensor> {
        let st = binary_kernel!(self, self.layout(), g, g.layout(), op, |x, gv| gv
            * T::cast(h(x.as_f64())));
        Ok(Tensor::op_result(st, self.shape(), op, &[], || {
            unreachable_backward()
        }))
    }

    fn unary_result(
        &self,
        st: crate::storage::Storage,
        name: &'static str,
        make: impl FnOnce() -> crate::autograd::BackwardFn,
    ) -> Tensor {
        Tensor::op_result(st, self.shape(), name, &[self], make)
    }

    /// `-x`; `dx = -g`.
    pub fn neg(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "neg", |x| -x);
        Ok(self.unary_result(st, "neg", || Box::new(|_, g| Ok(vec![Some(g.neg()?)]))))
    }

    /// `|x|`; `dx = g * sign(x)` (0 at 0, as PyTorch).
    pub fn abs(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "abs", |x| x.abs());
        let x = self.clone();
        Ok(self.unary_result(st, "abs", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(g, "abs_backward", |x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })?)])
            })
        }))
    }

    /// `e^x`; `dx = g * e^x = g * y`.
    pub fn exp(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "exp", |x| x.exp_fn());
        Ok(self.unary_result(st, "exp", || Box::new(|y, g| Ok(vec![Some(g.mul(y)?)]))))
    }

    /// Natural logarithm; `dx = g / x`.
    pub fn log(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "log", |x| x.ln());
        let x = self.clone();
        Ok(self.unary_result(st, "log", move || {
            Box::new(move |_, g| Ok(vec![Some(g.div(&x)?)]))
        }))
    }

    /// `sqrt(x)`; `dx = g / (2 y)`.
    pub fn sqrt(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "sqrt", |x| x.sqrt());
        Ok(self.unary_result(st, "sqrt", || {
            Box::new(|y, g| Ok(vec![Some(g.div(&y.mul_scalar(2.0)?)?)]))
        }))
    }

    /// `1 / sqrt(x)`; `dx = -g * y^3 / 2`.
    pub fn rsqrt(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "rsqrt", |x| x.sqrt().recip());
        Ok(self.unary_result(st, "rsqrt", || {
            Box::new(|y, g| {
                Ok(vec![Some(
                    y.grad_map(g, "rsqrt_backward", |y| -0.5 * y * y * y)?,
                )])
            })
        }))
    }

    /// `1 / x`; `dx = -g * y^2`.
    pub fn recip(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "recip", |x| x.recip());
        Ok(self.unary_result(st, "recip", || {
            Box::new(|y, g| Ok(vec![Some(y.grad_map(g, "recip_backward", |y| -y * y)?)]))
        }))
    }

    /// `x^p` for a scalar exponent; `dx = g * p * x^(p-1)`.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "powf", |x| x.powf(T::cast(p)));
        let x = self.clone();
        Ok(self.unary_result(st, "powf", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(g, "powf_backward", move |x| {
                    if p == 0.0 {
                        0.0
                    } else {
                        p * x.powf(p - 1.0)
                    }
                })?)])
            })
        }))
    }

    /// `x^2`; `dx = 2 g x`.
    pub fn square(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "square", |x| x * x);
        let x = self.clone();
        Ok(self.unary_result(st, "square", move || {
            Box::new(move |_, g| Ok(vec![Some(x.grad_map(g, "square_backward", |x| 2.0 * x)?)]))
        }))
    }

    /// `max(x, 0)`; `dx = g * [x > 0]`.
    pub fn relu(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "relu", |x| if x > T::zero() { x } else { T::zero() });
        Ok(self.unary_result(st, "relu", || {
            Box::new(|y, g| {
                let st = binary_kernel!(y, y.layout(), g, g.layout(), "relu_backward", |y, g| {
                    if y > T::zero() {
                        g
                    } else {
                        T::zero()
                    }
                });
                Ok(vec![Some(Tensor::op_result(
                    st,
                    y.shape(),
                    "relu_backward",
                    &[],
                    unreachable_backward,
                ))])
            })
        }))
    }

    /// `x` for `x > 0`, else `slope * x`; `dx = g * (x > 0 ? 1 : slope)`.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "leaky_relu", |x| if x > T::zero() {
            x
        } else {
            x * T::cast(slope)
        });
        let x = self.clone();
        Ok(self.unary_result(st, "leaky_relu", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(
                    g,
                    "leaky_relu_backward",
                    move |x| {
                        if x > 0.0 {
                            1.0
                        } else {
                            slope
                        }
                    },
                )?)])
            })
        }))
    }

    /// `s = 1 / (1 + e^-x)`, computed without overflow for large `|x|`; `dx = g * s (1 - s)`.
    pub fn sigmoid(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "sigmoid", |x| stable_sigmoid(x));
        Ok(self.unary_result(st, "sigmoid", || {
            Box::new(|y, g| {
                Ok(vec![Some(
                    y.grad_map(g, "sigmoid_backward", |s| s * (1.0 - s))?,
                )])
            })
        }))
    }

    /// `tanh(x)`; `dx = g (1 - y^2)`.
    pub fn tanh(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "tanh", |x| x.tanh());
        Ok(self.unary_result(st, "tanh", || {
            Box::new(|y, g| Ok(vec![Some(y.grad_map(g, "tanh_backward", |t| 1.0 - t * t)?)]))
        }))
    }

    /// Exact GELU, `x * Phi(x)` with `Phi(x) = (1 + erf(x / sqrt 2)) / 2`;
    /// `dx = g (Phi(x) + x phi(x))` with `phi(x) = e^(-x^2/2) / sqrt(2 pi)`.
    ///
    /// When a gradient will be needed, the derivative `Phi(x) + x phi(x)` is computed in the
    /// forward pass, sharing `Phi` (the costly erf), and kept for the backward, which is then
    /// one multiplication: forward and backward together cost about 1.5 forwards instead of 3,
    /// for one more buffer of `x`'s size held until the backward.
    pub fn gelu(&self) -> Result<Tensor> {
        if !(crate::autograd::is_grad_enabled() && self.requires_grad()) {
            let st = unary_kernel!(self, "gelu", |x| gelu_of(x));
            return Ok(self.unary_result(st, "gelu", || unreachable_backward()));
        }
        let x = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        let (st, slope) = {
            use crate::storage::Storage;
            let xs = x.storage();
            let o = x.layout().offset();
            let n = x.numel();
            match &*xs {
                Storage::F32(v) => {
                    let (y, d) = crate::cpu::map_unary_pair(&v[o..o + n], gelu_and_slope::<f32>);
                    (Storage::new_f32(y), Storage::new_f32(d))
                }
                Storage::F64(v) => {
                    let (y, d) = crate::cpu::map_unary_pair(&v[o..o + n], gelu_and_slope::<f64>);
                    (Storage::new_f64(y), Storage::new_f64(d))
                }
                _ => return Err(Error::dtype_unsupported("gelu", self.dtype())),
            }
        };
        let slope = Tensor::from_storage(slope, self.shape());
        Ok(self.unary_result(st, "gelu", move || {
            Box::new(move |_, g| {
                let st = binary_kernel!(
                    slope,
                    slope.layout(),
                    g,
                    g.layout(),
                    "gelu_backward",
                    |d, gv| gv * d
                );
                Ok(vec![Some(Tensor::op_result(
                    st,
                    slope.shape(),
                    "gelu_backward",
                    &[],
                    || unreachable_backward(),
                ))])
            })
        }))
    }

    /// GELU, tanh approximation: `y = x/2 (1 + tanh(u))`, `u = sqrt(2/pi) (x + 0.044715 x^3)`;
    /// `dx = g (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))`, `t = tanh(u)`.
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "gelu_tanh", |x| {
            let u = T::cast(SQRT_2_OVER_PI) * (x + T::cast(GELU_TANH_C) * x * x * x);
            T::cast(0.5) * x * (T::one() + u.tanh())
        });
        let x = self.clone();
        Ok(self.unary_result(st, "gelu_tanh", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(g, "gelu_tanh_backward", |x| {
                    let u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
                    let t = u.tanh();
                    0.5 * (1.0 + t)
                        + 0.5
                            * x
                            * (1.0 - t * t)
                            * SQRT_2_OVER_PI
                            * (1.0 + 3.0 * GELU_TANH_C * x * x)
                })?)])
            })
        }))
    }

    /// SiLU (swish), `x s(x)`; `dx = g (s + x s (1 - s))`.
    pub fn silu(&self) -> Result<Tensor> {
        let st = unary_kernel!(self, "silu", |x| x * stable_sigmoid(x));
        let x = self.clone();
        Ok(self.unary_result(st, "silu", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(g, "silu_backward", |x| {
                    let s = stable_sigmoid(x);
                    s + x * s * (1.0 - s)
                })?)])
            })
        }))
    }

    /// `log(1 + e^(beta x)) / beta`, linear (`x`) where `beta x > threshold`, as PyTorch
    /// (defaults beta 1, threshold 20); `dx = g s(beta x)` (1 past the threshold).
    pub fn softplus(&self, beta: f64, threshold: f64) -> Result<Tensor> {
        if beta == 0.0 || !beta.is_finite() {
            return Err(Error::value(
                "softplus",
                format!("beta must be finite and non-zero, got {beta}"),
            ));
        }
        let st = unary_kernel!(self, "softplus", |x| {
            let bx = x * T::cast(beta);
            if bx > T::cast(threshold) {
                x
            } else {
                // log1p(e^bx) computed stably: max(bx, 0) + log1p(e^-|bx|)
                (bx.max(T::zero()) + (-bx.abs()).exp().ln_1p()) / T::cast(beta)
            }
        });
        let x = self.clone();
        Ok(self.unary_result(st, "softplus", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(
                    g,
                    "softplus_backward",
                    move |x| {
                        if x * beta > threshold {
                            1.0
                        } else {
                            stable_sigmoid(x * beta)
                        }
                    },
                )?)])
            })
        }))
    }

    /// `min(max(x, lo), hi)` (either bound optional); `dx = g * [lo <= x <= hi]`.
    pub fn clamp(&self, lo: Option<f64>, hi: Option<f64>) -> Result<Tensor> {
        if let (Some(l), Some(h)) = (lo, hi) {
            if l > h {
                return Err(Error::value(
                    "clamp",
                    format!("min {l} is greater than max {h}"),
                ));
            }
        }
        let (l, h) = (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY));
        let st = unary_kernel!(self, "clamp", |x| {
            if x < T::cast(l) {
                T::cast(l)
            } else if x > T::cast(h) {
                T::cast(h)
            } else {
                x
            }
        });
        let x = self.clone();
        Ok(self.unary_result(st, "clamp", move || {
            Box::new(move |_, g| {
                Ok(vec![Some(x.grad_map(g, "clamp_backward", move |x| {
                    if x >= l && x <= h {
                        1.0
                    } else {
                        0.0
                    }
                })?)])
            })
        }))
    }

    /// `x + c`; `dx = g`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "add_scalar", |x| x + T::cast(c));
        Ok(self.unary_result(st, "add_scalar", || {
            Box::new(|_, g| Ok(vec![Some(g.clone())]))
        }))
    }

    /// `x - c`; `dx = g`.
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.add_scalar(-c)
    }

    /// `c - x`; `dx = -g`.
    pub fn rsub_scalar(&self, c: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "rsub_scalar", |x| T::cast(c) - x);
        Ok(self.unary_result(st, "rsub_scalar", || {
            Box::new(|_, g| Ok(vec![Some(g.neg()?)]))
        }))
    }

    /// `c x`; `dx = c g`.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "mul_scalar", |x| x * T::cast(c));
        Ok(self.unary_result(st, "mul_scalar", move || {
            Box::new(move |_, g| Ok(vec![Some(g.mul_scalar(c)?)]))
        }))
    }

    /// `x / c`; `dx = g / c`.
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        let st = unary_kernel!(self, "div_scalar", |x| x / T::cast(c));
        Ok(self.unary_result(st, "div_scalar", move || {
            Box::new(move |_, g| Ok(vec![Some(g.div_scalar(c)?)]))
        }))
    }
}

/// `1 / (1 + e^-x)` without overflow: for negative x use `e^x / (1 + e^x)`.
#[inline]
pub(crate) fn stable_sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp_fn())
    } else {
        let e = x.exp_fn();
        e / (T::one() + e)
    }
}

/// Backward of a tensor made inside a backward rule, which never records a node.
pub(crate) fn unreachable_backward() -> crate::autograd::BackwardFn {
    Box::new(|_, _| {
        Err(Error::autograd(
            "backward",
            "internal: a tensor made without grad recorded a node",
        ))
    })
}

/// `Phi(x) = (1 + erf(x / sqrt 2)) / 2`, the standard normal CDF, in `T`'s precision.
#[inline(always)]
fn normal_cdf<T: Float>(x: T) -> T {
    T::cast(0.5) * (T::one() + (x * T::cast(INV_SQRT_2)).erf_fn())
}

/// GELU, `x Phi(x)`.
#[inline(always)]
fn gelu_of<T: Float>(x: T) -> T {
    x * normal_cdf(x)
}

/// GELU and its derivative `Phi(x) + x phi(x)`, sharing `Phi(x)`.
#[inline(always)]
fn gelu_and_slope<T: Float>(x: T) -> (T, T) {
    let cdf = normal_cdf(x);
    let pdf = T::cast(INV_SQRT_2PI) * (T::cast(-0.5) * x * x).exp_fn();
    (x * cdf, cdf + x * pdf)
}
