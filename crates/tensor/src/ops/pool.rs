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
    // a select, not a branch: on real data the winner is a coin toss
    std::hint::select_unpredictable(b_wins, b, a)
}

/// Max pooling values only, for when no gradient will be asked (inference).
fn max_values<T: Float>(x: &[T], g: &PoolGeom) -> Vec<T> {
    max_forward(x, g).0
}

fn max_forward<T: Float>(x: &[T], g: &PoolGeom) -> (Vec<T>, ArgMax) {
    let per = g.oh * g.ow;
    let mut out = vec![T::zero(); g.planes * per];
    if g.square2 {
        // 2x2 windows at stride 2 without padding (LeNet's pooling): rows of windows at a time,
        // compared without branches (random data makes branches unpredictable)
        let mut corners: Vec<Corner> = vec![0; g.planes * per];
        out.par_chunks_mut(per)
            .zip(corners.par_chunks_mut(per))
            .enumerate()
            .with_min_len(g.planes_per_task())
            .for_each(|(p, (o, a))| {
                let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
                for oy in 0..g.oh {
                    let r0 = &plane[2 * oy * g.w..(2 * oy + 1) * g.w];
                    let r1 = &plane[(2 * oy + 1) * g.w..(2 * oy + 2) * g.w];
                    let span = oy * g.ow..(oy + 1) * g.ow;
                    max2x2_row(r0, r1, &mut o[span.clone()], &mut a[span]);
                }
            });
        return (out, ArgMax::Corners(corners));
    }
    let mut arg = vec![0usize; g.planes * per];
    out.par_chunks_mut(per)
        .zip(arg.par_chunks_mut(per))
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, (o, a))| {
            let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
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
    (out, ArgMax::Flat(arg))
}

/// Where the maximum of a 2x2 window lies: bit 0 set for the right column, bit 1 for the
/// bottom row (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right).
type Corner = u8;

/// How the backward pass finds each window's arg-max.
enum ArgMax {
    /// Flat in-plane index of the maximum, for any window geometry.
    Flat(Vec<usize>),
    /// The corner of each 2x2 window at stride 2 (an eighth of the memory of `Flat`).
    Corners(Vec<Corner>),
}

/// One output row of 2x2 / stride 2 max pooling: windows `ox` of input rows `r0`, `r1`, with
/// the same comparisons as [`pick`] (top pair, bottom pair, then the two winners).
fn max2x2_row<T: Float>(r0: &[T], r1: &[T], o: &mut [T], a: &mut [Corner]) {
    let done = if T::DTYPE == crate::DType::F32 && std::mem::size_of::<T>() == 4 {
        // SAFETY: T is f32 (checked), so the casts are identities; lengths are checked inside.
        unsafe {
            max2x2_row_f32(
                std::slice::from_raw_parts(r0.as_ptr().cast::<f32>(), r0.len()),
                std::slice::from_raw_parts(r1.as_ptr().cast::<f32>(), r1.len()),
                std::slice::from_raw_parts_mut(o.as_mut_ptr().cast::<f32>(), o.len()),
                a,
            )
        }
    } else {
        0
    };
    for ox in done..o.len() {
        let i = 2 * ox;
        let top = pick((r0[i], 0), (r0[i + 1], 1));
        let bottom = pick((r1[i], 2), (r1[i + 1], 3));
        let (v, c) = pick(top, bottom);
        o[ox] = v;
        a[ox] = c as Corner;
    }
}

/// [`max2x2_row`] in AVX2 for rows of at least four windows (eight at a time, then four, the
/// last block overlapping the one before: recomputing a window writes the same values); returns
/// how many windows it did (all, or 0 without AVX2 or for shorter rows).
fn max2x2_row_f32(r0: &[f32], r1: &[f32], o: &mut [f32], a: &mut [Corner]) -> usize {
    let n = o.len();
    #[cfg(target_arch = "x86_64")]
    if n >= 4 && crate::cpu::simd::has_avx2() {
        assert!(
            a.len() == n && r0.len() >= 2 * n && r1.len() >= 2 * n,
            "max2x2_row: rows too short"
        );
        // SAFETY: AVX2 is present; a block at ox reads r0/r1[2*ox .. 2*(ox + width)] and writes
        // o/a[ox .. ox + width] with ox + width <= n, inside the slices (asserted above).
        unsafe {
            let (r0, r1, o, a) = (r0.as_ptr(), r1.as_ptr(), o.as_mut_ptr(), a.as_mut_ptr());
            let width = if n >= 8 { 8 } else { 4 };
            let mut ox = 0;
            loop {
                let at = ox.min(n - width);
                if width == 8 {
                    max2x2_block8(r0, r1, o, a, at);
                } else {
                    max2x2_block4(r0, r1, o, a, at);
                }
                ox += width;
                if ox >= n {
                    break;
                }
            }
        }
        return n;
    }
    let _ = (r0, r1, a);
    0
}

/// Where `b` beats `a` (lanes all ones): !(b <= a) and a is not NaN, so that the first of
/// equal values and the first NaN win, as in [`pick`].
#[cfg(target_arch = "x86_64")]
macro_rules! beats {
    ($b:expr, $a:expr, $cmp:ident, $and:ident) => {{
        let (b, a) = ($b, $a);
        $and($cmp::<_CMP_NLE_UQ>(b, a), $cmp::<_CMP_ORD_Q>(a, a))
    }};
}

/// Eight windows `ox .. ox + 8` of one row.
///
/// # Safety
/// The CPU has AVX2; `r0` and `r1` are valid for reads of the 16 floats from column `2 * ox`,
/// `o` and `a` for writes of 8 values at `ox`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max2x2_block8(r0: *const f32, r1: *const f32, o: *mut f32, a: *mut Corner, ox: usize) {
    unsafe {
        use std::arch::x86_64::*;
        let (t0, t1) = (
            _mm256_loadu_ps(r0.add(2 * ox)),
            _mm256_loadu_ps(r0.add(2 * ox + 8)),
        );
        let (b0, b1) = (
            _mm256_loadu_ps(r1.add(2 * ox)),
            _mm256_loadu_ps(r1.add(2 * ox + 8)),
        );
        // even and odd columns; per 128-bit lane, so the windows come out in the order
        // 0 1 4 5 2 3 6 7 (put right by `order`)
        let tl = _mm256_shuffle_ps::<0b10_00_10_00>(t0, t1);
        let tr = _mm256_shuffle_ps::<0b11_01_11_01>(t0, t1);
        let bl = _mm256_shuffle_ps::<0b10_00_10_00>(b0, b1);
        let br = _mm256_shuffle_ps::<0b11_01_11_01>(b0, b1);
        let top_right = beats!(tr, tl, _mm256_cmp_ps, _mm256_and_ps);
        let top = _mm256_blendv_ps(tl, tr, top_right);
        let bottom_right = beats!(br, bl, _mm256_cmp_ps, _mm256_and_ps);
        let bottom = _mm256_blendv_ps(bl, br, bottom_right);
        let lower = beats!(bottom, top, _mm256_cmp_ps, _mm256_and_ps);
        let max = _mm256_blendv_ps(top, bottom, lower);
        let right = _mm256_blendv_ps(top_right, bottom_right, lower);
        let order = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        _mm256_storeu_ps(o.add(ox), order(max));
        corners(
            a.add(ox),
            8,
            _mm256_movemask_ps(order(right)),
            _mm256_movemask_ps(order(lower)),
        );
    }
}

/// Four windows `ox .. ox + 4` of one row.
///
/// # Safety
/// The CPU has AVX2; `r0` and `r1` are valid for reads of the 8 floats from column `2 * ox`,
/// `o` and `a` for writes of 4 values at `ox`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max2x2_block4(r0: *const f32, r1: *const f32, o: *mut f32, a: *mut Corner, ox: usize) {
    unsafe {
        use std::arch::x86_64::*;
        let (t0, t1) = (
            _mm_loadu_ps(r0.add(2 * ox)),
            _mm_loadu_ps(r0.add(2 * ox + 4)),
        );
        let (b0, b1) = (
            _mm_loadu_ps(r1.add(2 * ox)),
            _mm_loadu_ps(r1.add(2 * ox + 4)),
        );
        let tl = _mm_shuffle_ps::<0b10_00_10_00>(t0, t1);
        let tr = _mm_shuffle_ps::<0b11_01_11_01>(t0, t1);
        let bl = _mm_shuffle_ps::<0b10_00_10_00>(b0, b1);
        let br = _mm_shuffle_ps::<0b11_01_11_01>(b0, b1);
        let top_right = beats!(tr, tl, _mm_cmp_ps, _mm_and_ps);
        let top = _mm_blendv_ps(tl, tr, top_right);
        let bottom_right = beats!(br, bl, _mm_cmp_ps, _mm_and_ps);
        let bottom = _mm_blendv_ps(bl, br, bottom_right);
        let lower = beats!(bottom, top, _mm_cmp_ps, _mm_and_ps);
        _mm_storeu_ps(o.add(ox), _mm_blendv_ps(top, bottom, lower));
        let right = _mm_blendv_ps(top_right, bottom_right, lower);
        corners(a.add(ox), 4, _mm_movemask_ps(right), _mm_movemask_ps(lower));
    }
}

/// Corner codes of `n` windows from the sign masks of "right column" and "bottom row".
///
/// # Safety
/// `a` is valid for writes of `n` corners.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn corners(a: *mut Corner, n: usize, right: i32, lower: i32) {
    unsafe {
        for k in 0..n {
            *a.add(k) = (((right >> k) & 1) | (((lower >> k) & 1) << 1)) as Corner;
        }
    }
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

fn max_backward<T: Float>(gy: &[T], arg: &ArgMax, g: &PoolGeom) -> Vec<T> {
    let per = g.oh * g.ow;
    let mut dx = vec![T::zero(); g.planes * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .with_min_len(g.planes_per_task())
        .for_each(|(p, d)| {
            let gp = &gy[p * per..(p + 1) * per];
            match arg {
                ArgMax::Flat(arg) => {
                    for (&i, &v) in arg[p * per..(p + 1) * per].iter().zip(gp) {
                        d[i] += v;
                    }
                }
                // each window's gradient goes to its corner (windows do not overlap)
                ArgMax::Corners(c) => {
                    let c = &c[p * per..(p + 1) * per];
                    for oy in 0..g.oh {
                        let row = oy * g.ow..(oy + 1) * g.ow;
                        for ((ox, &k), &v) in c[row.clone()].iter().enumerate().zip(&gp[row]) {
                            let (dy, dx) = (usize::from(k >> 1), usize::from(k & 1));
                            d[(2 * oy + dy) * g.w + 2 * ox + dx] = v;
                        }
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(planes: usize, h: usize, w: usize, square2: bool) -> PoolGeom {
        let (oh, ow) = (h / 2, w / 2);
        PoolGeom {
            planes,
            h,
            w,
            oh,
            ow,
            rows: windowed_spans(h, oh, 2, 2, 0),
            cols: windowed_spans(w, ow, 2, 2, 0),
            divisor: None,
            square2,
        }
    }

    /// The 2x2 path (AVX2 rows of eight windows and the scalar rest) against the general window
    /// loop: same maxima, same arg-max (first of ties, first NaN), same gradients, in both
    /// dtypes, for widths around multiples of 16 and odd sizes.
    fn check<T: Float>() {
        let mut rng = crate::Rng::new(7);
        for h in [2, 3, 5, 16] {
            for w in [2, 3, 15, 16, 17, 18, 31, 33, 34, 48] {
                let planes = 3;
                let x: Vec<T> = (0..planes * h * w)
                    .map(|_| {
                        // few distinct values, so that ties are common; some NaN and infinities
                        let r = rng.next_u64();
                        match r % 23 {
                            0 => T::nan(),
                            1 => T::neg_infinity(),
                            2 => T::infinity(),
                            _ => T::cast(((r >> 8) % 5) as f64 - 2.0),
                        }
                    })
                    .collect();
                let (fast, slow) = (geom(planes, h, w, true), geom(planes, h, w, false));
                let ((yf, af), (ys, as_)) = (max_forward(&x, &fast), max_forward(&x, &slow));
                let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&yf), bits(&ys), "values h {h} w {w}");
                assert!(matches!(af, ArgMax::Corners(_)) && matches!(as_, ArgMax::Flat(_)));
                let gy: Vec<T> = (0..yf.len()).map(|i| T::cast(1.0 + i as f64)).collect();
                let (df, ds) = (
                    max_backward(&gy, &af, &fast),
                    max_backward(&gy, &as_, &slow),
                );
                assert_eq!(bits(&df), bits(&ds), "gradients h {h} w {w}");
                assert_eq!(bits(&max_values(&x, &fast)), bits(&ys));
            }
        }
    }

    #[test]
    fn two_by_two_path_matches_general_windows() {
        check::<f32>();
        check::<f64>();
    }
}
