//! 2-D pooling over `[N, C, H, W]` (or `[C, H, W]`) tensors.
//!
//! Max pooling: `y = x[argmax of window]`, so `dx[argmax] += g` and 0 elsewhere.
//! Average pooling: `y = sum(window) / k`, so every element of the window gets `g / k`
//! (k = kh*kw, padding counted, as PyTorch's default `count_include_pad=True`).
//! Adaptive average pooling: window i spans `[floor(i H / oh), ceil((i+1) H / oh))`.

use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{DenseSlice, Tensor};
use rayon::prelude::*;

/// Kernel, stride and padding of a 2-D pooling, each (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl Pool2dOptions {
    /// Square kernel with stride equal to the kernel and no padding (PyTorch's default stride).
    pub fn new(k: usize) -> Self {
        Pool2dOptions {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
        }
    }
}

/// Spans of one output row/column: for each output index, the input range [start, end).
type Spans = Vec<(usize, usize)>;

#[derive(Clone)]
struct PoolGeom {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// For each output row / column, the window's input range clipped to the image, and the
    /// divisor used by average pooling.
    rows: Spans,
    cols: Spans,
    divisor: Option<f64>,
    /// Every window is 2x2 at stride 2 inside the image (a fast path for max pooling).
    square2: bool,
}

fn windowed_spans(input: usize, out: usize, k: usize, s: usize, p: usize) -> Spans {
    (0..out)
        .map(|i| {
            let start = (i * s) as isize - p as isize;
            let end = start + k as isize;
            (start.max(0) as usize, (end.max(0) as usize).min(input))
        })
        .collect()
}

fn adaptive_spans(input: usize, out: usize) -> Spans {
    (0..out)
        .map(|i| ((i * input) / out, ((i + 1) * input).div_ceil(out)))
        .collect()
}

fn plane_dims(op: &'static str, t: &Tensor) -> Result<(Vec<usize>, usize, usize, usize)> {
    match t.rank() {
        3 | 4 => {
            let r = t.rank();
            let (h, w) = (t.dims()[r - 2], t.dims()[r - 1]);
            let planes = t.dims()[..r - 2].iter().product();
            Ok((t.dims()[..r - 2].to_vec(), planes, h, w))
        }
        _ => Err(Error::shape(
            op,
            format!("expects [N, C, H, W] or [C, H, W], got {:?}", t.dims()),
        )),
    }
}

fn check_opts(op: &'static str, t: &Tensor, o: &Pool2dOptions) -> Result<(usize, usize)> {
    let (kh, kw) = o.kernel;
    if kh == 0 || kw == 0 || o.stride.0 == 0 || o.stride.1 == 0 {
        return Err(Error::value(
            op,
            format!("kernel and stride must be positive, got {o:?}"),
        ));
    }
    if o.padding.0 * 2 > kh || o.padding.1 * 2 > kw {
        return Err(Error::value(
            op,
            format!(
                "padding {:?} must be at most half the kernel {:?}",
                o.padding, o.kernel
            ),
        ));
    }
    let r = t.rank();
    let (h, w) = (t.dims()[r - 2], t.dims()[r - 1]);
    if h + 2 * o.padding.0 < kh || w + 2 * o.padding.1 < kw {
        return Err(Error::shape(
            op,
            format!(
                "kernel {:?} is larger than the padded input {:?}",
                o.kernel,
                (h + 2 * o.padding.0, w + 2 * o.padding.1)
            ),
        ));
    }
    Ok((
        (h + 2 * o.padding.0 - kh) / o.stride.0 + 1,
        (w + 2 * o.padding.1 - kw) / o.stride.1 + 1,
    ))
}

/// Max over each window; returns values and the flat in-plane position of each maximum.
impl PoolGeom {
    /// Planes per parallel task: enough input elements per task that spawning pays off.
    fn planes_per_task(&self) -> usize {
        (16_384 / (self.h * self.w).max(1)).max(1)
    }
}

/// The larger of two (value, index) candidates, the first on ties; a NaN wins over numbers and
/// the first NaN is kept (PyTorch propagates NaN through max pooling). Written as selects.
#[inline(always)]
fn pick<T: Float>(a: (T, usize), b: (T, usize)) -> (T, usize) {
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let b_wins = !(b.0 <= a.0) && !a.0.is_nan();
    if b_wins {
        b
    } else {
        a
    }
}

/// Max pooling values only, for when no gradient will be asked (inference): no arg-max array.
fn max_values<T: Float>(x: &[T], g: &PoolGeom) -> Vec<T> {
    if !g.square2 {
        return max_forward(x, g).0;
    }
    let per = g.oh * g.ow;
    let mut out = vec![T::zero(); g.planes * per];
    out.par_chunks_mut(per)
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, o)| {
            let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
            for (oy, o) in o.chunks_mut(g.ow).enumerate() {
                let r0 = &plane[2 * oy * g.w..(2 * oy + 1) * g.w];
                let r1 = &plane[(2 * oy + 1) * g.w..(2 * oy + 2) * g.w];
                for (ox, o) in o.iter_mut().enumerate() {
                    let i = 2 * ox;
                    let top = pick((r0[i], 0), (r0[i + 1], 1)).0;
                    let bottom = pick((r1[i], 0), (r1[i + 1], 1)).0;
                    *o = pick((top, 0), (bottom, 1)).0;
                }
            }
        });
    out
}

fn max_forward<T: Float>(x: &[T], g: &PoolGeom) -> (Vec<T>, Vec<usize>) {
    let per = g.oh * g.ow;
    let mut out = vec![T::zero(); g.planes * per];
    let mut arg = vec![0usize; g.planes * per];
    out.par_chunks_mut(per)
        .zip(arg.par_chunks_mut(per))
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, (o, a))| {
            let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
            if g.square2 {
                // 2x2 windows at stride 2 without padding (LeNet's pooling): four loads each,
                // compared without branches (random data makes the branches unpredictable)
                for oy in 0..g.oh {
                    let (i0, i1) = (2 * oy * g.w, (2 * oy + 1) * g.w);
                    let (r0, r1) = (&plane[i0..i0 + g.w], &plane[i1..i1 + g.w]);
                    let (o, a) = (
                        &mut o[oy * g.ow..(oy + 1) * g.ow],
                        &mut a[oy * g.ow..(oy + 1) * g.ow],
                    );
                    for ox in 0..g.ow {
                        let i = 2 * ox;
                        let top = pick((r0[i], i0 + i), (r0[i + 1], i0 + i + 1));
                        let bottom = pick((r1[i], i1 + i), (r1[i + 1], i1 + i + 1));
                        (o[ox], a[ox]) = pick(top, bottom);
                    }
                }
                return;
            }
            for (oy, &(y0, y1)) in g.rows.iter().enumerate() {
                for (ox, &(x0, x1)) in g.cols.iter().enumerate() {
                    let mut best = T::neg_infinity();
                    let mut bi = y0 * g.w + x0;
                    'win: for y in y0..y1 {
                        for xx in x0..x1 {
                            let v = plane[y * g.w + xx];
                            if v > best || v.is_nan() {
                                best = v;
                                bi = y * g.w + xx;
                                if v.is_nan() {
                                    break 'win;
                                }
                            }
                        }
                    }
                    o[oy * g.ow + ox] = best;
                    a[oy * g.ow + ox] = bi;
                }
            }
        });
    (out, arg)
}

fn avg_forward<T: Float>(x: &[T], g: &PoolGeom) -> Vec<T> {
    let per = g.oh * g.ow;
    let mut out = vec![T::zero(); g.planes * per];
    out.par_chunks_mut(per)
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, o)| {
            let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
            for (oy, &(y0, y1)) in g.rows.iter().enumerate() {
                for (ox, &(x0, x1)) in g.cols.iter().enumerate() {
                    let mut s = T::zero();
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            s += plane[y * g.w + xx];
                        }
                    }
                    let div = g.divisor.unwrap_or(((y1 - y0) * (x1 - x0)) as f64);
                    o[oy * g.ow + ox] = s / T::cast(div);
                }
            }
        });
    out
}

fn avg_backward<T: Float>(gy: &[T], g: &PoolGeom) -> Vec<T> {
    let per = g.oh * g.ow;
    let mut dx = vec![T::zero(); g.planes * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, d)| {
            let gp = &gy[p * per..(p + 1) * per];
            for (oy, &(y0, y1)) in g.rows.iter().enumerate() {
                for (ox, &(x0, x1)) in g.cols.iter().enumerate() {
                    let div = g.divisor.unwrap_or(((y1 - y0) * (x1 - x0)) as f64);
                    let v = gp[oy * g.ow + ox] / T::cast(div);
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            d[y * g.w + xx] += v;
                        }
                    }
                }
            }
        });
    dx
}

fn max_backward<T: Float>(gy: &[T], arg: &[usize], g: &PoolGeom) -> Vec<T> {
    let per = g.oh * g.ow;
    let mut dx = vec![T::zero(); g.planes * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, d)| {
            for i in 0..per {
                d[arg[p * per + i]] += gy[p * per + i];
            }
        });
    dx
}

impl Tensor {
    fn pool_geom(
        &self,
        op: &'static str,
        oh: usize,
        ow: usize,
        rows: Spans,
        cols: Spans,
        divisor: Option<f64>,
    ) -> Result<(PoolGeom, Vec<usize>)> {
        let (lead, planes, h, w) = plane_dims(op, self)?;
        let mut out_shape = lead;
        out_shape.extend([oh, ow]);
        let square2 = rows
            .iter()
            .enumerate()
            .all(|(i, &r)| r == (2 * i, 2 * i + 2))
            && cols
                .iter()
                .enumerate()
                .all(|(i, &c)| c == (2 * i, 2 * i + 2));
        Ok((
            PoolGeom {
                planes,
                h,
                w,
                oh,
                ow,
                rows,
                cols,
                divisor,
                square2,
            },
            out_shape,
        ))
    }

    /// Max pooling; the gradient goes to the arg-max of each window.
    pub fn max_pool2d(&self, opt: Pool2dOptions) -> Result<Tensor> {
        let op = "max_pool2d";
        plane_dims(op, self)?;
        let (oh, ow) = check_opts(op, self, &opt)?;
        let r = self.rank();
        let (h, w) = (self.dims()[r - 2], self.dims()[r - 1]);
        let rows = windowed_spans(h, oh, opt.kernel.0, opt.stride.0, opt.padding.0);
        let cols = windowed_spans(w, ow, opt.kernel.1, opt.stride.1, opt.padding.1);
        let (geom, out_shape) = self.pool_geom(op, oh, ow, rows, cols, None)?;
        if !(crate::autograd::is_grad_enabled() && self.requires_grad()) {
            let st = match self.dense().get() {
                DenseSlice::F32(x) => Storage::new_f32(max_values(x, &geom)),
                DenseSlice::F64(x) => Storage::new_f64(max_values(x, &geom)),
                DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, self.dtype())),
            };
            return Ok(Tensor::from_storage(st, out_shape));
        }
        let (st, arg) = match self.dense().get() {
            DenseSlice::F32(x) => {
                let (o, a) = max_forward(x, &geom);
                (Storage::new_f32(o), a)
            }
            DenseSlice::F64(x) => {
                let (o, a) = max_forward(x, &geom);
                (Storage::new_f64(o), a)
            }
            DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, self.dtype())),
        };
        let in_shape = self.shape().clone();
        Ok(Tensor::op_result(st, out_shape, op, &[self], move || {
            Box::new(move |_, g| {
                let st = match g.dense().get() {
                    DenseSlice::F32(gv) => Storage::new_f32(max_backward(gv, &arg, &geom)),
                    DenseSlice::F64(gv) => Storage::new_f64(max_backward(gv, &arg, &geom)),
                    DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, g.dtype())),
                };
                Ok(vec![Some(Tensor::from_storage(st, in_shape.clone()))])
            })
        }))
    }

    fn avg_pool_with(
        &self,
        op: &'static str,
        geom: PoolGeom,
        out_shape: Vec<usize>,
    ) -> Result<Tensor> {
        let st = match self.dense().get() {
            DenseSlice::F32(x) => Storage::new_f32(avg_forward(x, &geom)),
            DenseSlice::F64(x) => Storage::new_f64(avg_forward(x, &geom)),
            DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, self.dtype())),
        };
        let in_shape = self.shape().clone();
        Ok(Tensor::op_result(st, out_shape, op, &[self], move || {
            Box::new(move |_, g| {
                let st = match g.dense().get() {
                    DenseSlice::F32(gv) => Storage::new_f32(avg_backward(gv, &geom)),
                    DenseSlice::F64(gv) => Storage::new_f64(avg_backward(gv, &geom)),
                    DenseSlice::I64(_) => return Err(Error::dtype_unsupported(op, g.dtype())),
                };
                Ok(vec![Some(Tensor::from_storage(st, in_shape.clone()))])
            })
        }))
    }

    /// Average pooling (padding counted in the divisor, as PyTorch's default).
    pub fn avg_pool2d(&self, opt: Pool2dOptions) -> Result<Tensor> {
        let op = "avg_pool2d";
        plane_dims(op, self)?;
        let (oh, ow) = check_opts(op, self, &opt)?;
        let r = self.rank();
        let (h, w) = (self.dims()[r - 2], self.dims()[r - 1]);
        let rows = windowed_spans(h, oh, opt.kernel.0, opt.stride.0, opt.padding.0);
        let cols = windowed_spans(w, ow, opt.kernel.1, opt.stride.1, opt.padding.1);
        let div = (opt.kernel.0 * opt.kernel.1) as f64;
        let (geom, out_shape) = self.pool_geom(op, oh, ow, rows, cols, Some(div))?;
        self.avg_pool_with(op, geom, out_shape)
    }

    /// Adaptive average pooling to an output of `(oh, ow)`.
    pub fn adaptive_avg_pool2d(&self, out: (usize, usize)) -> Result<Tensor> {
        let op = "adaptive_avg_pool2d";
        plane_dims(op, self)?;
        if out.0 == 0 || out.1 == 0 {
            return Err(Error::value(
                op,
                format!("output size must be positive, got {out:?}"),
            ));
        }
        let r = self.rank();
        let (h, w) = (self.dims()[r - 2], self.dims()[r - 1]);
        if h == 0 || w == 0 {
            return Err(Error::shape(
                op,
                format!("input {:?} has an empty plane", self.dims()),
            ));
        }
        let rows = adaptive_spans(h, out.0);
        let cols = adaptive_spans(w, out.1);
        let (geom, out_shape) = self.pool_geom(op, out.0, out.1, rows, cols, None)?;
        self.avg_pool_with(op, geom, out_shape)
    }
}
