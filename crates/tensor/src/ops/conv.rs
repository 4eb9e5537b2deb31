//! Convolutions (cross-correlation, as in PyTorch) with stride, padding, dilation and groups,
//! computed per image as im2col + GEMM.
//!
//! For one image and group, with `X_col` the unfolded input [C_g*kh*kw, L] and `W` [O_g, C_g*kh*kw]:
//! `Y = W X_col + b`. Then `dW = sum_images G X_col^T`, `dX = col2im(W^T G)`, `db = sum G` over
//! images and positions.

use crate::cpu::conv::{col2im_add_strided, direct_suits, im2col_strided, Window2d};
#[cfg(target_arch = "x86_64")]
use crate::cpu::conv::{conv_direct_dw_f32, conv_direct_f32};
use crate::cpu::gemm::{gemm_into, parallelism_for, MatPtr};
use crate::cpu::{scratch, SendPtr};
use crate::dtype::{DType, Float};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{DenseSlice, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Stride, padding, dilation (each as (height, width)) and groups of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// The same for 1-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dOptions {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// Images processed by one task: their unfolded columns sit side by side, so each group is one
/// matrix product with `IMAGES_PER_TASK * oh * ow` columns instead of one small product per
/// image (LeNet's convolutions have 6 and 16 output channels: per image, the products are too
/// small to keep the GEMM kernel busy). Four of LeNet's images unfold to 240-310 KB, which stay
/// in the 512 KB L2 cache while the products read them (eight did not: 3-10% slower). Partial
/// weight and bias gradients are summed per task and then in task order; the task size is
/// fixed, so the result does not depend on the thread count.
const IMAGES_PER_TASK: usize = 4;

#[derive(Clone, Copy)]
struct ConvGeom {
    n: usize,
    o: usize,
    groups: usize,
    win: Window2d,
}

impl ConvGeom {
    fn cg(&self) -> usize {
        self.win.channels / self.groups
    }
    fn og(&self) -> usize {
        self.o / self.groups
    }
    fn kk(&self) -> usize {
        self.win.kh * self.win.kw
    }
    fn l(&self) -> usize {
        self.win.oh * self.win.ow
    }
    fn in_size(&self) -> usize {
        self.win.channels * self.win.h * self.win.w
    }
}

/// Unfolds images `start .. start + nc` into `cols` as one `[C*kh*kw, nc*L]` matrix.
///
/// # Safety
/// `cols` must be valid for writes of `C*kh*kw * nc*L` elements (it need not be initialised:
/// every one is written) and not accessed by anyone else meanwhile.
unsafe fn unfold_chunk<T: Float>(x: &[T], g: &ConvGeom, start: usize, nc: usize, cols: *mut T) {
    unsafe {
        let (l, in_size) = (g.l(), g.in_size());
        let ld = nc * l;
        for i in 0..nc {
            let img = &x[(start + i) * in_size..(start + i + 1) * in_size];
            im2col_strided(img, &g.win, cols.add(i * l), ld);
        }
    }
}

/// `Y = W X_col` for every group of one chunk, written as `[O, nc*L]` into `y`.
///
/// # Safety
/// `cols` must be the chunk's unfolded columns and `y` must hold `O * nc * L` elements.
unsafe fn chunk_product<T: Float>(
    w: &[T],
    cols: &[T],
    y: &mut [T],
    g: &ConvGeom,
    nc: usize,
    par: Parallelism,
) {
    unsafe {
        let (og, cgk) = (g.og(), g.cg() * g.kk());
        let ld = nc * g.l();
        for grp in 0..g.groups {
            gemm_into(
                og,
                ld,
                cgk,
                y[grp * og * ld..].as_mut_ptr(),
                ld as isize,
                false,
                MatPtr {
                    ptr: w[grp * og * cgk..].as_ptr(),
                    rs: cgk as isize,
                    cs: 1,
                },
                MatPtr {
                    ptr: cols[grp * cgk * ld..].as_ptr(),
                    rs: ld as isize,
                    cs: 1,
                },
                par,
            );
        }
    }
}

/// The forward result. The unfolded input is not kept for the backward pass, which unfolds
/// each chunk again: writing all of it to memory (9 MB per LeNet step at batch 64) and reading
/// it back cost more than unfolding twice into a buffer that stays in cache (LeNet-5 epoch
/// 15% faster).
fn conv_forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: ConvGeom) -> Vec<T> {
    let l = g.l();
    let ck = g.win.channels * g.kk();
    // The output is written completely by the tasks below, so it is allocated without the zero
    // fill (a measurable share of LeNet's step, page faults included).
    let out_len = g.n * g.o * l;
    let mut out: Vec<T> = Vec::with_capacity(out_len);
    let out_p = SendPtr(out.as_mut_ptr());
    let tasks = g.n.div_ceil(IMAGES_PER_TASK);
    // With one task the product itself may use the threads.
    let par = if tasks == 1 {
        parallelism_for(g.o, g.n * l, g.cg() * g.kk())
    } else {
        Parallelism::None
    };
    let direct = g.groups == 1 && T::DTYPE == DType::F32 && direct_suits(&g.win);
    let run = |t: usize| {
        let start = t * IMAGES_PER_TASK;
        let nc = IMAGES_PER_TASK.min(g.n - start);
        #[cfg(target_arch = "x86_64")]
        if direct {
            let in_size = g.in_size();
            for i in start..start + nc {
                // SAFETY: T is f32 (checked above), so the casts are identities; image i's
                // output block [O, L] belongs to this task alone.
                unsafe {
                    let as_f32 =
                        |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
                    conv_direct_f32(
                        as_f32(&x[i * in_size..(i + 1) * in_size]),
                        &g.win,
                        as_f32(w),
                        b.map(as_f32),
                        g.o,
                        out_p.get().add(i * g.o * l).cast::<f32>(),
                    );
                }
            }
            return;
        }
        let ld = nc * l;
        let mut cols = scratch::take(ck * ld);
        // SAFETY: task t owns images start..start+nc and their block of the output, disjoint
        // from every other task's; all writes stay inside the capacity.
        unsafe {
            unfold_chunk(x, &g, start, nc, cols.as_mut_ptr());
            let mut y = scratch::take(g.o * ld);
            // `chunk_product` writes every element of `y`.
            chunk_product(w, &cols, &mut y, &g, nc, par);
            // [O, nc*L] -> [nc, O, L], adding the bias on the way
            for i in 0..nc {
                for o in 0..g.o {
                    let src = &y[o * ld + i * l..o * ld + (i + 1) * l];
                    let d = out_p.get().add(((start + i) * g.o + o) * l);
                    match b {
                        Some(b) => {
                            for (j, &s) in src.iter().enumerate() {
                                d.add(j).write(s + b[o]);
                            }
                        }
                        None => std::ptr::copy_nonoverlapping(src.as_ptr(), d, l),
                    }
                }
            }
        }
    };
    if tasks > 1 {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
    // SAFETY: the tasks above initialised every element.
    unsafe { out.set_len(out_len) };
    out
}

/// Gradients of a convolution; each is computed only when asked for.
struct ConvGrads<T> {
    dx: Option<Vec<T>>,
    dw: Option<Vec<T>>,
    db: Option<Vec<T>>,
}

/// Partial weight and bias gradients of one task.
type Partial<T> = (Vec<T>, Vec<T>);

fn conv_backward<T: Float>(
    x: &[T],
    w: &[T],
    gy: &[T],
    g: ConvGeom,
    need: (bool, bool, bool),
) -> ConvGrads<T> {
    let (need_dx, need_dw, need_db) = need;
    let (l, ck, og, cgk) = (g.l(), g.win.channels * g.kk(), g.og(), g.cg() * g.kk());
    let (wsize, in_size) = (g.o * cgk, g.in_size());
    let tasks = g.n.div_ceil(IMAGES_PER_TASK);
    let par = if tasks == 1 {
        parallelism_for(ck, g.n * l, g.o)
    } else {
        Parallelism::None
    };
    // the weight gradient of a convolution with few inputs per output without unfolding
    let direct = cfg!(target_arch = "x86_64")
        && g.groups == 1
        && T::DTYPE == DType::F32
        && direct_suits(&g.win);
    let mut dx = if need_dx {
        vec![T::zero(); g.n * in_size]
    } else {
        Vec::new()
    };
    let run = |(t, dxc): (usize, Option<&mut [T]>)| -> Partial<T> {
        let start = t * IMAGES_PER_TASK;
        let nc = IMAGES_PER_TASK.min(g.n - start);
        let ld = nc * l;
        // the chunk's output gradient as one [O, nc*L] matrix
        let mut gch = scratch::take(g.o * ld);
        let mut cols = scratch::take(if (need_dw && !direct) || need_dx {
            ck * ld
        } else {
            0
        });
        for i in 0..nc {
            for o in 0..g.o {
                let src = &gy[((start + i) * g.o + o) * l..((start + i) * g.o + o + 1) * l];
                gch[o * ld + i * l..o * ld + (i + 1) * l].copy_from_slice(src);
            }
        }
        let db = if need_db {
            (0..g.o)
                .map(|o| crate::cpu::sum_slice(&gch[o * ld..(o + 1) * ld]))
                .collect()
        } else {
            Vec::new()
        };
        let mut dw = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if need_dw && direct {
            dw = vec![T::zero(); wsize];
            // SAFETY: T is f32 (checked with `direct`), so the casts are identities; the
            // slices cover this chunk's images and output gradients.
            unsafe {
                let as_f32 =
                    |v: &[T]| std::slice::from_raw_parts(v.as_ptr().cast::<f32>(), v.len());
                let imgs: Vec<&[f32]> = (start..start + nc)
                    .map(|i| as_f32(&x[i * in_size..(i + 1) * in_size]))
                    .collect();
                let gys: Vec<&[f32]> = (start..start + nc)
                    .map(|i| as_f32(&gy[i * g.o * l..(i + 1) * g.o * l]))
                    .collect();
                let dwf = std::slice::from_raw_parts_mut(dw.as_mut_ptr().cast::<f32>(), wsize);
                conv_direct_dw_f32(&imgs, &gys, &g.win, g.o, dwf);
            }
        }
        if need_dw && !direct {
            dw = vec![T::zero(); wsize];
            // SAFETY: `cols` holds ck * ld elements.
            unsafe { unfold_chunk(x, &g, start, nc, cols.as_mut_ptr()) };
            for grp in 0..g.groups {
                // dW_g = G_g X_col_g^T
                // SAFETY: all pointers cover the extents described.
                unsafe {
                    gemm_into(
                        og,
                        cgk,
                        ld,
                        dw[grp * og * cgk..].as_mut_ptr(),
                        cgk as isize,
                        false,
                        MatPtr {
                            ptr: gch[grp * og * ld..].as_ptr(),
                            rs: ld as isize,
                            cs: 1,
                        },
                        MatPtr {
                            ptr: cols[grp * cgk * ld..].as_ptr(),
                            rs: 1,
                            cs: ld as isize,
                        },
                        // one thread always: with f32 this is `sgemm_dots`, whatever the
                        // thread count, so the sums round the same for any `--threads`
                        Parallelism::None,
                    );
                }
            }
        }
        if let Some(d) = dxc {
            // dX_col_g = W_g^T G_g, then folded back image by image
            for grp in 0..g.groups {
                // SAFETY: as above.
                unsafe {
                    gemm_into(
                        cgk,
                        ld,
                        og,
                        cols[grp * cgk * ld..].as_mut_ptr(),
                        ld as isize,
                        false,
                        MatPtr {
                            ptr: w[grp * og * cgk..].as_ptr(),
                            rs: 1,
                            cs: cgk as isize,
                        },
                        MatPtr {
                            ptr: gch[grp * og * ld..].as_ptr(),
                            rs: ld as isize,
                            cs: 1,
                        },
                        par,
                    );
                }
            }
            for i in 0..nc {
                col2im_add_strided(
                    &cols[i * l..],
                    &g.win,
                    &mut d[i * in_size..(i + 1) * in_size],
                    ld,
                );
            }
        }
        (dw, db)
    };
    let chunks: Vec<Option<&mut [T]>> = if need_dx {
        dx.chunks_mut(IMAGES_PER_TASK * in_size).map(Some).collect()
    } else {
        (0..tasks).map(|_| None).collect()
    };
    let partials: Vec<Partial<T>> = if tasks > 1 {
        chunks.into_par_iter().enumerate().map(run).collect()
    } else {
        chunks.into_iter().enumerate().map(run).collect()
    };
    let sum = |pick: fn(&Partial<T>) -> &Vec<T>, len: usize| {
        let mut acc = vec![T::zero(); len];
        for p in &partials {
            acc.iter_mut().zip(pick(p)).for_each(|(a, &v)| *a += v);
        }
        acc
    };
    ConvGrads {
        dx: need_dx.then_some(dx),
        dw: need_dw.then(|| sum(|p| &p.0, wsize)),
        db: need_db.then(|| sum(|p| &p.1, g.o)),
    }
}

fn out_size(
    op: &'static str,
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
) -> Result<usize> {
    let span = d * (k - 1) + 1;
    if input + 2 * p < span {
        return Err(Error::shape(
            op,
            format!(
                "kernel {k} (dilation {d}, span {span}) is larger than the padded input {} ({input} + 2*{p})",
                input + 2 * p
            ),
        ));
    }
    Ok((input + 2 * p - span) / s + 1)
}

impl Tensor {
    /// 2-D convolution of `[N, C, H, W]` by `weight` `[O, C/groups, kh, kw]` plus optional
    /// `bias` `[O]`, as `torch.nn.functional.conv2d`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opt: Conv2dOptions,
    ) -> Result<Tensor> {
        let op = "conv2d";
        if self.rank() != 4 || weight.rank() != 4 {
            return Err(Error::shape(
                op,
                format!("expects input [N, C, H, W] and weight [O, C/groups, kh, kw], got {:?} and {:?}", self.dims(), weight.dims()),
            ));
        }
        let (n, c, h, w) = (
            self.dims()[0],
            self.dims()[1],
            self.dims()[2],
            self.dims()[3],
        );
        let (o, cg, kh, kw) = (
            weight.dims()[0],
            weight.dims()[1],
            weight.dims()[2],
            weight.dims()[3],
        );
        let gr = opt.groups;
        if gr == 0 || c % gr != 0 || o % gr != 0 || cg * gr != c {
            return Err(Error::shape(
                op,
                format!("input {:?} and weight {:?} do not fit groups={gr}: need C = groups * weight.dims[1] and O divisible by groups", self.dims(), weight.dims()),
            ));
        }
        if opt.stride.0 == 0
            || opt.stride.1 == 0
            || opt.dilation.0 == 0
            || opt.dilation.1 == 0
            || kh == 0
            || kw == 0
        {
            return Err(Error::value(op, format!("stride, dilation and kernel size must be positive, got {opt:?}, kernel {kh}x{kw}")));
        }
        if let Some(b) = bias {
            if b.dims() != [o] {
                return Err(Error::shape(
                    op,
                    format!("bias must be [{o}], got {:?}", b.dims()),
                ));
            }
            if b.dtype() != self.dtype() {
                return Err(Error::dtype_mismatch(op, self.dtype(), b.dtype()));
            }
        }
        if weight.dtype() != self.dtype() {
            return Err(Error::dtype_mismatch(op, self.dtype(), weight.dtype()));
        }
        let oh = out_size(op, h, kh, opt.stride.0, opt.padding.0, opt.dilation.0)?;
        let ow = out_size(op, w, kw, opt.stride.1, opt.padding.1, opt.dilation.1)?;
        let geom = ConvGeom {
            n,
            o,
            groups: gr,
            win: Window2d {
                channels: c,
                h,
                w,
                kh,
                kw,
                sh: opt.stride.0,
                sw: opt.stride.1,
                ph: opt.padding.0,
                pw: opt.padding.1,
                dh: opt.dilation.0,
                dw: opt.dilation.1,
                oh,
                ow,
            },
        };
        let (xv, wv) = (self.dense(), weight.dense());
        let bv = bias.map(|b| b.dense());
        let st = match (xv.get(), wv.get(), bv.as_ref().map(|b| b.get())) {
            (DenseSlice::F32(x), DenseSlice::F32(w), b) => {
                let b = match b {
                    Some(DenseSlice::F32(b)) => Some(b),
                    _ => None,
                };
                Storage::new_f32(conv_forward(x, w, b, geom))
            }
            (DenseSlice::F64(x), DenseSlice::F64(w), b) => {
                let b = match b {
                    Some(DenseSlice::F64(b)) => Some(b),
                    _ => None,
                };
                Storage::new_f64(conv_forward(x, w, b, geom))
            }
            _ => return Err(Error::dtype_unsupported(op, self.dtype())),
        };
        drop((xv, wv, bv));
        let (xt, wt) = (self.clone(), weight.clone());
        let mut inputs = vec![self, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        let has_bias = bias.is_some();
        let need_db = bias.is_some_and(|b| b.requires_grad());
        Ok(Tensor::op_result(
            st,
            vec![n, o, oh, ow],
            op,
            &inputs,
            move || {
                Box::new(move |_, g| {
                    let need = (xt.requires_grad(), wt.requires_grad(), need_db);
                    let (xv, wv, gv) = (xt.dense(), wt.dense(), g.dense());
                    let (dx, dw, db) = match (xv.get(), wv.get(), gv.get()) {
                        (DenseSlice::F32(x), DenseSlice::F32(w), DenseSlice::F32(gv)) => {
                            let r = conv_backward(x, w, gv, geom, need);
                            (
                                r.dx.map(Storage::new_f32),
                                r.dw.map(Storage::new_f32),
                                r.db.map(Storage::new_f32),
                            )
                        }
                        (DenseSlice::F64(x), DenseSlice::F64(w), DenseSlice::F64(gv)) => {
                            let r = conv_backward(x, w, gv, geom, need);
                            (
                                r.dx.map(Storage::new_f64),
                                r.dw.map(Storage::new_f64),
                                r.db.map(Storage::new_f64),
                            )
                        }
                        _ => return Err(Error::dtype_unsupported("conv2d_backward", g.dtype())),
                    };
                    let mut grads = vec![
                        dx.map(|s| Tensor::from_storage(s, xt.shape())),
                        dw.map(|s| Tensor::from_storage(s, wt.shape())),
                    ];
                    if has_bias {
                        grads.push(db.map(|s| Tensor::from_storage(s, [o])));
                    }
                    Ok(grads)
                })
            },
        ))
    }

    /// 1-D convolution of `[N, C, L]` by `weight` `[O, C/groups, k]` plus optional `bias`,
    /// computed as a 2-D convolution of height 1 (its gradient follows through the views).
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opt: Conv1dOptions,
    ) -> Result<Tensor> {
        if self.rank() != 3 || weight.rank() != 3 {
            return Err(Error::shape(
                "conv1d",
                format!(
                    "expects input [N, C, L] and weight [O, C/groups, k], got {:?} and {:?}",
                    self.dims(),
                    weight.dims()
                ),
            ));
        }
        let o2 = Conv2dOptions {
            stride: (1, opt.stride),
            padding: (0, opt.padding),
            dilation: (1, opt.dilation),
            groups: opt.groups,
        };
        self.unsqueeze(2)?
            .conv2d(&weight.unsqueeze(2)?, bias, o2)?
            .squeeze(2)
    }
}

#[cfg(test)]
mod tests {
    use super::Conv2dOptions;
    use crate::{DType, Result, Rng, Tensor};

    /// Direct loops over every output element: `y = b + sum w x`, and for an upstream gradient
    /// `gy` the adjoints `dx`, `dw`, `db`, accumulated term by term.
    #[allow(clippy::type_complexity)]
    fn direct(
        (x, xs): (&[f64], [usize; 4]),
        (w, ws): (&[f64], [usize; 4]),
        b: &[f64],
        gy: &[f64],
        opt: Conv2dOptions,
        (oh, ow): (usize, usize),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let [n, c, h, wd] = xs;
        let [o, cg, kh, kw] = ws;
        let og = o / opt.groups;
        let mut y = vec![0.0; n * o * oh * ow];
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; o]);
        for ni in 0..n {
            for oi in 0..o {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let yi = ((ni * o + oi) * oh + oy) * ow + ox;
                        let mut acc = b[oi];
                        for ci in 0..cg {
                            let cx = (oi / og) * cg + ci;
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * opt.stride.0 + ky * opt.dilation.0) as isize
                                        - opt.padding.0 as isize;
                                    let ix = (ox * opt.stride.1 + kx * opt.dilation.1) as isize
                                        - opt.padding.1 as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((ni * c + cx) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((oi * cg + ci) * kh + ky) * kw + kx;
                                    acc += w[wi] * x[xi];
                                    dx[xi] += w[wi] * gy[yi];
                                    dw[wi] += x[xi] * gy[yi];
                                }
                            }
                        }
                        y[yi] = acc;
                        db[oi] += gy[yi];
                    }
                }
            }
        }
        (y, dx, dw, db)
    }

    /// Batches of 19 images (four full tasks of four and a partial one) in f64 and f32, for
    /// padded, strided, dilated and grouped geometries, the f32 direct kernels (forward and
    /// weight gradient), the unit-stride unfolding and the general one, against the direct loops.
    #[test]
    fn batched_convolution_matches_direct_loops() -> Result<()> {
        let cases: [([usize; 4], [usize; 4], Conv2dOptions); 8] = [
            // direct f32 path with seven outputs (a tile of six and one of one)
            (
                [19, 2, 9, 10],
                [7, 2, 3, 3],
                Conv2dOptions {
                    padding: (1, 1),
                    ..Default::default()
                },
            ),
            (
                [19, 1, 12, 11],
                [6, 1, 5, 5],
                Conv2dOptions {
                    padding: (2, 2),
                    ..Default::default()
                },
            ),
            // direct weight gradient: six taps per kernel row (five and one), exactly one
            // block of eight columns; and two blocks of eight with one output channel
            ([19, 1, 8, 13], [3, 1, 5, 6], Conv2dOptions::default()),
            ([19, 1, 6, 20], [1, 1, 1, 5], Conv2dOptions::default()),
            ([19, 3, 9, 14], [4, 3, 5, 5], Conv2dOptions::default()),
            (
                [19, 2, 9, 8],
                [3, 2, 3, 2],
                Conv2dOptions {
                    stride: (2, 1),
                    padding: (1, 2),
                    dilation: (2, 1),
                    ..Default::default()
                },
            ),
            (
                [19, 4, 7, 9],
                [6, 2, 3, 3],
                Conv2dOptions {
                    stride: (1, 2),
                    padding: (1, 0),
                    groups: 2,
                    ..Default::default()
                },
            ),
            (
                [19, 2, 6, 5],
                [2, 1, 2, 3],
                Conv2dOptions {
                    padding: (0, 1),
                    dilation: (1, 2),
                    groups: 2,
                    ..Default::default()
                },
            ),
        ];
        for (case, (xs, ws, opt)) in cases.into_iter().enumerate() {
            let mut rng = Rng::new(500 + case as u64);
            let x = Tensor::randn(xs, DType::F64, &mut rng)?;
            let w = Tensor::randn(ws, DType::F64, &mut rng)?;
            let b = Tensor::randn([ws[0]], DType::F64, &mut rng)?;
            let y0 = x.conv2d(&w, Some(&b), opt)?;
            let (oh, ow) = (y0.dims()[2], y0.dims()[3]);
            let gy = Tensor::randn(y0.dims(), DType::F64, &mut rng)?;
            let (vx, vw, vb, vg) = (
                x.to_vec::<f64>()?,
                w.to_vec::<f64>()?,
                b.to_vec::<f64>()?,
                gy.to_vec::<f64>()?,
            );
            let want = direct((&vx, xs), (&vw, ws), &vb, &vg, opt, (oh, ow));
            for dtype in [DType::F64, DType::F32] {
                let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
                // fresh leaves from the values, so that each dtype's graph is its own
                let leaf = |v: &[f64], dims: &[usize]| -> Result<Tensor> {
                    Tensor::from_vec(v.to_vec(), dims)?
                        .to_dtype(dtype)?
                        .requires_grad_(true)
                };
                let (xt, wt, bt) = (leaf(&vx, &xs)?, leaf(&vw, &ws)?, leaf(&vb, &[ws[0]])?);
                let y = xt.conv2d(&wt, Some(&bt), opt)?;
                y.mul(&gy.to_dtype(dtype)?)?.sum_all()?.backward()?;
                let got =
                    |t: &Tensor| -> Result<Vec<f64>> { t.to_dtype(DType::F64)?.to_vec::<f64>() };
                let grad = |t: &Tensor| -> Result<Vec<f64>> {
                    got(&t.grad().ok_or_else(|| {
                        crate::error::Error::value("conv2d test", "no gradient on a leaf")
                    })?)
                };
                let pairs = [
                    ("y", got(&y)?, &want.0),
                    ("dx", grad(&xt)?, &want.1),
                    ("dw", grad(&wt)?, &want.2),
                    ("db", grad(&bt)?, &want.3),
                ];
                for (name, a, e) in pairs {
                    assert_eq!(a.len(), e.len(), "case {case} {dtype:?} {name}");
                    for (i, (a, e)) in a.iter().zip(e.iter()).enumerate() {
                        assert!(
                            (a - e).abs() <= tol * (1.0 + e.abs()),
                            "case {case} {dtype:?} {name}[{i}]: {a} vs {e}"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
