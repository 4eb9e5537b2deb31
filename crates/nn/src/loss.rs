//! Loss functions, as PyTorch defines them, written with tensor ops (their gradients are the
//! compositions' gradients, e.g. for cross-entropy on logits `dL/dlogits = (softmax - onehot)/N`).

use crate::error::{Error, Result};
use ferrograd_tensor::{DType, Tensor};

/// How per-element losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Reduction {
    /// The mean (weighted mean for weighted class losses).
    #[default]
    Mean,
    Sum,
    /// Per-element (per-sample) losses.
    None,
}

fn reduce(op: &'static str, l: Tensor, r: Reduction) -> Result<Tensor> {
    let _ = op;
    Ok(match r {
        Reduction::Mean => l.mean_all()?,
        Reduction::Sum => l.sum_all()?,
        Reduction::None => l,
    })
}

fn same_shape(op: &'static str, input: &Tensor, target: &Tensor) -> Result<()> {
    if input.dims() != target.dims() {
        return Err(Error::invalid(
            op,
            format!(
                "input shape {:?} and target shape {:?} differ",
                input.dims(),
                target.dims()
            ),
        ));
    }
    Ok(())
}

/// Mean squared error, `(x - y)^2`.
pub fn mse_loss(input: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("mse_loss", input, target)?;
    reduce("mse_loss", input.sub(target)?.square()?, r)
}

/// Mean absolute error, `|x - y|`.
pub fn l1_loss(input: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("l1_loss", input, target)?;
    reduce("l1_loss", input.sub(target)?.abs()?, r)
}

/// Binary cross-entropy on probabilities: `-(y log p + (1 - y) log(1 - p))`, each log clamped
/// at -100 as PyTorch does (so p = 0 or 1 gives a finite loss). Optional per-element `weight`.
pub fn binary_cross_entropy(
    p: &Tensor,
    y: &Tensor,
    weight: Option<&Tensor>,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("binary_cross_entropy", p, y)?;
    let lp = p.log()?.clamp(Some(-100.0), None)?;
    let l1p = p.rsub_scalar(1.0)?.log()?.clamp(Some(-100.0), None)?;
    let mut l = y.mul(&lp)?.add(&y.rsub_scalar(1.0)?.mul(&l1p)?)?.neg()?;
    if let Some(w) = weight {
        l = l.mul(w)?;
    }
    reduce("binary_cross_entropy", l, r)
}

/// Binary cross-entropy on logits, stable for any |x|:
/// `(1 - y) x + (1 + (pw - 1) y) softplus(-x)` (PyTorch's form; `pw` the optional positive-class
/// weight). Its gradient is `sigmoid(x) - y` when pw = 1.
pub fn binary_cross_entropy_with_logits(
    x: &Tensor,
    y: &Tensor,
    pos_weight: Option<&Tensor>,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("binary_cross_entropy_with_logits", x, y)?;
    // no linear cut-off: softplus is computed as max(z, 0) + log1p(e^-|z|), exact for any z
    let sp = x.neg()?.softplus(1.0, f64::INFINITY)?;
    let lw = match pos_weight {
        Some(pw) => y.mul(&pw.sub_scalar(1.0)?)?.add_scalar(1.0)?,
        None => Tensor::ones_like(y),
    };
    let l = y.rsub_scalar(1.0)?.mul(x)?.add(&lw.mul(&sp)?)?;
    reduce("binary_cross_entropy_with_logits", l, r)
}

/// Options of [`cross_entropy`] and [`nll_loss`].
#[derive(Clone, Debug)]
pub struct ClassLossOptions {
    /// Per-class weights `[C]`.
    pub weight: Option<Tensor>,
    /// Target value to skip (class-index targets only); PyTorch's default is -100.
    pub ignore_index: i64,
    /// Mixes the target with the uniform distribution: `(1 - eps) target + eps / C`.
    pub label_smoothing: f64,
    pub reduction: Reduction,
}

impl Default for ClassLossOptions {
    fn default() -> Self {
        ClassLossOptions {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

fn check_logits(op: &'static str, x: &Tensor) -> Result<usize> {
    if x.rank() != 2 {
        return Err(Error::invalid(
            op,
            format!("expects input [N, C], got {:?}", x.dims()),
        ));
    }
    Ok(x.dims()[1])
}

/// Negative log-likelihood of log-probabilities `[N, C]` for i64 class targets `[N]`:
/// `-w[t_i] logp[i, t_i]`, mean over the weights of non-ignored targets.
pub fn nll_loss(logp: &Tensor, target: &Tensor, opt: &ClassLossOptions) -> Result<Tensor> {
    class_loss("nll_loss", logp, target, opt, false)
}

/// Cross-entropy of logits `[N, C]` against i64 class indices `[N]` or class probabilities
/// `[N, C]`, with class weights, ignore_index and label smoothing as `F.cross_entropy`.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, opt: &ClassLossOptions) -> Result<Tensor> {
    check_logits("cross_entropy", logits)?;
    let logp = logits.log_softmax(1)?;
    class_loss("cross_entropy", &logp, target, opt, true)
}

fn class_loss(
    op: &'static str,
    logp: &Tensor,
    target: &Tensor,
    opt: &ClassLossOptions,
    smoothing: bool,
) -> Result<Tensor> {
    let c = check_logits(op, logp)?;
    let n = logp.dims()[0];
    let eps = if smoothing { opt.label_smoothing } else { 0.0 };
    if !(0.0..=1.0).contains(&eps) {
        return Err(Error::invalid(
            op,
            format!("label_smoothing must be in [0, 1], got {eps}"),
        ));
    }
    if let Some(w) = &opt.weight {
        if w.dims() != [c] {
            return Err(Error::invalid(
                op,
                format!("weight must be [{c}], got {:?}", w.dims()),
            ));
        }
    }
    let dt = logp.dtype();
    let weight = match &opt.weight {
        Some(w) => w.to_dtype(dt)?,
        None => Tensor::ones([c], dt)?,
    };
    if target.dtype() != DType::I64 {
        // class probabilities
        if target.dims() != logp.dims() {
            return Err(Error::invalid(
                op,
                format!(
                    "probability targets must have the input's shape {:?}, got {:?}",
                    logp.dims(),
                    target.dims()
                ),
            ));
        }
        let t = if eps > 0.0 {
            target.mul_scalar(1.0 - eps)?.add_scalar(eps / c as f64)?
        } else {
            target.clone()
        };
        let l = t.mul(logp)?.mul(&weight)?.sum(&[1], false)?.neg()?;
        return match opt.reduction {
            Reduction::Mean => Ok(l.sum_all()?.div_scalar(n as f64)?),
            r => reduce(op, l, r),
        };
    }
    if target.dims() != [n] {
        return Err(Error::invalid(
            op,
            format!("class-index targets must be [{n}], got {:?}", target.dims()),
        ));
    }
    let tv: Vec<i64> = target.to_vec()?;
    let mut keep = Vec::with_capacity(n);
    let mut safe = Vec::with_capacity(n);
    for (i, &t) in tv.iter().enumerate() {
        if t == opt.ignore_index {
            keep.push(0.0);
            safe.push(0);
        } else if t < 0 || t as usize >= c {
            return Err(Error::invalid(
                op,
                format!("target {t} at position {i} is out of range for {c} classes"),
            ));
        } else {
            keep.push(1.0);
            safe.push(t);
        }
    }
    let keep = Tensor::from_vec(keep, [n])?.to_dtype(dt)?;
    let safe = Tensor::from_vec(safe, [n])?;
    let w_i = weight.index_select(0, &safe)?.mul(&keep)?; // [N]
    let picked = logp.gather(1, &safe.reshape([n, 1])?)?.reshape([n])?;
    let nll = picked.mul(&w_i)?.neg()?;
    let per = if eps > 0.0 {
        let smooth = logp.mul(&weight)?.sum(&[1], false)?.neg()?.mul(&keep)?;
        nll.mul_scalar(1.0 - eps)?
            .add(&smooth.mul_scalar(eps / c as f64)?)?
    } else {
        nll
    };
    match opt.reduction {
        Reduction::Mean => Ok(per.sum_all()?.div(&w_i.sum_all()?)?),
        r => reduce(op, per, r),
    }
}
