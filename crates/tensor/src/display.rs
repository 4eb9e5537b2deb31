//! Printing tensors as PyTorch does: nested brackets, a common number format, and elision of the
//! middle of long dims when the tensor has more than 1000 elements.

use crate::tensor::Tensor;
use std::fmt;

const THRESHOLD: usize = 1000;
const EDGE: usize = 3;

struct Fmt {
    sci: bool,
    ints: bool,
    width: usize,
}

impl Fmt {
    fn new(values: &[f64], is_int: bool) -> Fmt {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let ints = is_int || finite.iter().all(|v| v.fract() == 0.0);
        let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let min = finite
            .iter()
            .filter(|v| **v != 0.0)
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        let sci = !is_int
            && (max >= 1e8
                || (min.is_finite() && min < 1e-4)
                || (max > 0.0 && max / min > 1e3 && !ints));
        let mut f = Fmt {
            sci,
            ints,
            width: 0,
        };
        f.width = values
            .iter()
            .map(|&v| f.one(v, is_int).len())
            .max()
            .unwrap_or(0);
        f
    }
    fn one(&self, v: f64, is_int: bool) -> String {
        if is_int {
            format!("{}", v as i64)
        } else if v.is_nan() {
            "nan".into()
        } else if v.is_infinite() {
            if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        } else if self.sci {
            format!("{v:.4e}")
        } else if self.ints {
            format!("{v:.0}.")
        } else {
            format!("{v:.4}")
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_dim(
    out: &mut String,
    vals: &[f64],
    dims: &[usize],
    strides: &[usize],
    base: usize,
    depth: usize,
    summarize: bool,
    f: &Fmt,
    is_int: bool,
) {
    if dims.is_empty() {
        out.push_str(&format!("{:>w$}", f.one(vals[base], is_int), w = f.width));
        return;
    }
    out.push('[');
    let n = dims[0];
    let idx: Vec<Option<usize>> = if summarize && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    for (k, i) in idx.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if dims.len() > 1 {
                out.push_str(&"\n".repeat(dims.len() - 1));
                out.push_str(&" ".repeat(depth + 8));
            } else {
                out.push(' ');
            }
        }
        match i {
            Some(i) => write_dim(
                out,
                vals,
                &dims[1..],
                &strides[1..],
                base + i * strides[0],
                depth + 1,
                summarize,
                f,
                is_int,
            ),
            // as PyTorch: " ..." among numbers, "..." in place of rows
            None => out.push_str(if dims.len() == 1 { " ..." } else { "..." }),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, fm: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vals = self.to_vec_f64();
        let is_int = !self.dtype().is_float();
        let summarize = self.numel() > THRESHOLD;
        let dims = self.dims().to_vec();
        let strides = self.shape().contiguous_strides();
        // format width from the elements that will be shown
        let shown: Vec<f64> = if summarize {
            let mut s = Vec::new();
            let l = crate::layout::Layout::contiguous(dims.clone());
            l.for_each_position(|i, _| {
                let mut rem = i;
                let mut keep = true;
                for d in (0..dims.len()).rev() {
                    let c = rem % dims[d];
                    rem /= dims[d];
                    if dims[d] > 2 * EDGE && c >= EDGE && c < dims[d] - EDGE {
                        keep = false;
                    }
                }
                if keep {
                    s.push(vals[i]);
                }
            });
            s
        } else {
            vals.clone()
        };
        let f = Fmt::new(&shown, is_int);
        let mut out = String::from("tensor(");
        if self.numel() == 0 {
            out.push_str("[]");
        } else {
            write_dim(
                &mut out, &vals, &dims, &strides, 0, 0, summarize, &f, is_int,
            );
        }
        out.push_str(&format!(", shape={:?}, dtype={}", dims, self.dtype()));
        if let Some(name) = self.grad_fn_name() {
            out.push_str(&format!(", grad_fn={name}"));
        } else if self.requires_grad() {
            out.push_str(", requires_grad=true");
        }
        out.push(')');
        fm.write_str(&out)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
