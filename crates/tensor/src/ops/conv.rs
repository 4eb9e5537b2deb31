//! Convolutions (cross-correlation, as in PyTorch) with stride, padding, dilation and groups,
//! computed per image as im2col + GEMM.
//!
//! For one image and group, with `X_col` the unfolded input [C_g*kh*kw, L] and `W` [O_g, C_g*kh*kw]:
//! `Y = W X_col + b`. Then `dW = sum_images G X_col^T`, `dX = col2im(W^T G)`, `db = sum G` over
//! images and positions.

use crate::cpu::conv::{col2im_add, im2col, Window2d};
use crate::cpu::gemm::{gemm_into, MatPtr};
use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::{Dense, Tensor};
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

/// Images processed by one task; partial weight gradients are summed per chunk and then in
/// chunk order, so the result does not depend on the thread count.
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

fn conv_forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: ConvGeom) -> Vec<T> {
    let (l, ck, og, cgk) = (g.l(), g.win.channels * g.kk(), g.og(), g.cg() * g.kk());
    let mut out = vec![T::zero(); g.n * g.o * l];
    // one unfolding buffer per task, reused across its images
    let per_image = |cols: &mut Vec<T>, (img, dst): (usize, &mut [T])| {
        im2col(&x[img * g.in_size()..(img + 1) * g.in_size()], &g.win, cols);
        for grp in 0..g.groups {
            // SAFETY: the slices cover exactly the extents described.
            unsafe {
                gemm_into(
                    og,
                    l,
                    cgk,
                    dst[grp * og * l..].as_mut_ptr(),
                    l as isize,
                    false,
                    MatPtr {
                        ptr: w[grp * og * cgk..].as_ptr(),
                        rs: cgk as isize,
                        cs: 1,
                    },
                    MatPtr {
                        ptr: cols[grp * cgk * l..].as_ptr(),
                        rs: l as isize,
                        cs: 1,
                    },
                    Parallelism::None,
                );
            }
        }
        if let Some(b) = b {
            for (o, row) in dst.chunks_mut(l).enumerate() {
                row.iter_mut().for_each(|v| *v += b[o]);
            }
        }
    };
    if g.n > 1 {
        out.par_chunks_mut(g.o * l)
            .enumerate()
            .for_each_init(|| vec![T::zero(); ck * l], per_image);
    } else {
        let mut cols = vec![T::zero(); ck * l];
        out.chunks_mut(g.o * l)
            .enumerate()
            .for_each(|item| per_image(&mut cols, item));
    }
    out
}

/// Returns (dx, dw) for the given output gradient; either may be skipped.
fn conv_backward<T: Float>(
    x: &[T],
    w: &[T],
    gy: &[T],
    g: ConvGeom,
    need_dx: bool,
    need_dw: bool,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let (l, ck, og, cgk) = (g.l(), g.win.channels * g.kk(), g.og(), g.cg() * g.kk());
    let wsize = g.o * cgk;
    let mut dx = if need_dx {
        vec![T::zero(); g.n * g.in_size()]
    } else {
        Vec::new()
    };
    let tasks: Vec<usize> = (0..g.n).step_by(IMAGES_PER_TASK).collect();
    let in_size = g.in_size();
    let dx_chunks: Vec<&mut [T]> = if need_dx {
        dx.chunks_mut(IMAGES_PER_TASK * in_size).collect()
    } else {
        Vec::new()
    };
    let run = |(t, dxc): (usize, Option<&mut [T]>)| -> Vec<T> {
        let start = tasks[t];
        let end = (start + IMAGES_PER_TASK).min(g.n);
        let mut dw = if need_dw {
            vec![T::zero(); wsize]
        } else {
            Vec::new()
        };
        let mut cols = vec![T::zero(); ck * l];
        let mut dcols = vec![T::zero(); ck * l];
        let mut dxc = dxc;
        for img in start..end {
            let gimg = &gy[img * g.o * l..(img + 1) * g.o * l];
            if need_dw {
                im2col(&x[img * in_size..(img + 1) * in_size], &g.win, &mut cols);
            }
            for grp in 0..g.groups {
                let gg = &gimg[grp * og * l..];
                // SAFETY: all pointers cover the extents described.
                unsafe {
                    if need_dw {
                        gemm_into(
                            og,
                            cgk,
                            l,
                            dw[grp * og * cgk..].as_mut_ptr(),
                            cgk as isize,
                            true,
                            MatPtr {
                                ptr: gg.as_ptr(),
                                rs: l as isize,
                                cs: 1,
                            },
                            MatPtr {
                                ptr: cols[grp * cgk * l..].as_ptr(),
                                rs: 1,
                                cs: l as isize,
                            },
                            Parallelism::None,
                        );
                    }
                    if need_dx {
                        gemm_into(
                            cgk,
                            l,
                            og,
                            dcols[grp * cgk * l..].as_mut_ptr(),
                            l as isize,
                            false,
                            MatPtr {
                                ptr: w[grp * og * cgk..].as_ptr(),
                                rs: 1,
                                cs: cgk as isize,
                            },
                            MatPtr {
                                ptr: gg.as_ptr(),
                                rs: l as isize,
                                cs: 1,
                            },
                            Parallelism::None,
                        );
                    }
                }
            }
            if let Some(d) = dxc.as_deref_mut() {
                let local = img - start;
                col2im_add(
                    &dcols,
                    &g.win,
                    &mut d[local * in_size..(local + 1) * in_size],
                );
            }
        }
        dw
    };
    let partials: Vec<Vec<T>> = if need_dx {
        dx_chunks
            .into_par_iter()
            .enumerate()
            .map(|(t, c)| run((t, Some(c))))
            .collect()
    } else {
        (0..tasks.len())
            .into_par_iter()
            .map(|t| run((t, None)))
            .collect()
    };
    let dw = need_dw.then(|| {
        let mut acc = vec![T::zero(); wsize];
        for p in &partials {
            for (a, &v) in acc.iter_mut().zip(p) {
                *a += v;
            }
        }
        acc
    });
    (need_dx.then_some(dx), dw)
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
        let xs = self.contiguous_storage();
        let ws = weight.contiguous_storage();
        let bs = bias.map(|b| b.contiguous_storage());
        let st = match (&xs, &ws, &bs) {
            (Dense::F32(x), Dense::F32(wv), b) => Storage::new_f32(conv_forward(
                x,
                wv,
                match b {
                    Some(Dense::F32(b)) => Some(&b[..]),
                    _ => None,
                },
                geom,
            )),
            (Dense::F64(x), Dense::F64(wv), b) => Storage::new_f64(conv_forward(
                x,
                wv,
                match b {
                    Some(Dense::F64(b)) => Some(&b[..]),
                    _ => None,
                },
                geom,
            )),
            _ => return Err(Error::dtype_unsupported(op, self.dtype())),
        };
        let (xt, wt) = (self.clone(), weight.clone());
        let mut inputs = vec![self, weight];
        if let Some(b) = bias {
            inputs.push(b);
        }
        let has_bias = bias.is_some();
        Ok(Tensor::op_result(
            st,
            vec![n, o, oh, ow],
            op,
            &inputs,
            move || {
                Box::new(move |_, g| {
                    let gd = g.contiguous_storage();
                    let (need_dx, need_dw) = (xt.requires_grad(), wt.requires_grad());
                    let (dx, dw) = match (xt.contiguous_storage(), wt.contiguous_storage(), &gd) {
                        (Dense::F32(x), Dense::F32(w), Dense::F32(gv)) => {
                            let (a, b) = conv_backward(&x, &w, gv, geom, need_dx, need_dw);
                            (a.map(Storage::new_f32), b.map(Storage::new_f32))
                        }
                        (Dense::F64(x), Dense::F64(w), Dense::F64(gv)) => {
                            let (a, b) = conv_backward(&x, &w, gv, geom, need_dx, need_dw);
                            (a.map(Storage::new_f64), b.map(Storage::new_f64))
                        }
                        _ => return Err(Error::dtype_unsupported("conv2d_backward", g.dtype())),
                    };
                    let mut grads = vec![
                        dx.map(|s| Tensor::from_storage(s, xt.shape())),
                        dw.map(|s| Tensor::from_storage(s, wt.shape())),
                    ];
                    if has_bias {
                        grads.push(Some(g.sum(&[0, 2, 3], false)?));
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
