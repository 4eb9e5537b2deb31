//! Matrix products: 1-D (dot), 2-D, and batched with broadcast batch dims, as `torch.matmul`.
//! Operands are passed to GEMM with their strides, so transposed views are never copied.
//!
//! For `C = A B`: `dA = G B^T`, `dB = A^T G`, each summed over the batch dims its operand was
//! broadcast along.

use crate::cpu::gemm::{
    gemm_bias_into, gemm_into, parallelism_for, writes_without_reading, MatPtr,
};
use crate::dtype::Float;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::shape::broadcast_shapes;
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Raw pointers that may cross threads: each task writes a disjoint output block.
#[derive(Clone, Copy)]
struct SendPtr<T>(*const T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Offsets of each batch matrix of a layout whose last two dims are the matrix.
fn batch_offsets(l: &Layout, batch: &[usize]) -> Vec<usize> {
    let nb: usize = batch.iter().product();
    let mut out = Vec::with_capacity(nb);
    let strides = &l.strides()[..batch.len()];
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..nb {
        out.push(l.offset() + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>());
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn matmul_kernel<T: Float>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let r = la.strides().len();
    let (ars, acs) = (la.strides()[r - 2] as isize, la.strides()[r - 1] as isize);
    let (brs, bcs) = (lb.strides()[r - 2] as isize, lb.strides()[r - 1] as isize);
    let oa = batch_offsets(la, batch);
    let ob = batch_offsets(lb, batch);
    let nb = oa.len();
    let len = nb * m * n;
    if len == 0 {
        return Vec::new();
    }
    let mut out: Vec<T> = Vec::with_capacity(len);
    // A kernel that stores (rather than adds to) every element needs no zero fill first; the
    // fallback `gemm` crate reads its destination, so it gets zeros.
    if !writes_without_reading::<T>(m, n, k) {
        out.resize(len, T::zero());
    }
    let (pa, pb) = (SendPtr(a.as_ptr()), SendPtr(b.as_ptr()));
    let one = |i: usize, dst: &mut [std::mem::MaybeUninit<T>], par| {
        let (pa, pb) = (pa, pb);
        // SAFETY: offsets and strides come from layouts validated against these storages; the
        // destination is either zeroed or written (never read) by the kernel.
        unsafe {
            gemm_into(
                m,
                n,
                k,
                dst.as_mut_ptr() as *mut T,
                n as isize,
                false,
                MatPtr {
                    ptr: pa.0.add(oa[i]),
                    rs: ars,
                    cs: acs,
                },
                MatPtr {
                    ptr: pb.0.add(ob[i]),
                    rs: brs,
                    cs: bcs,
                },
                par,
            )
        }
    };
    let per = parallelism_for(m, n, k);
    // Many small products (attention heads: 192 of 128x32 by 32x128) go one per thread; splitting
    // each across threads costs more in synchronisation than it saves. Only products big enough
    // to keep every thread busy on their own are split.
    let each_big = m * n * k >= 256 * 256 * 256;
    // SAFETY (of the raw view below): `out` has capacity `len`; its first `out.len()` elements
    // (all or none) are initialised zeros, the rest spare capacity, all written by the GEMMs.
    let dst: &mut [std::mem::MaybeUninit<T>] = unsafe {
        std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut std::mem::MaybeUninit<T>, len)
    };
    if nb > 1 && !each_big && nb * m * n * k >= 1 << 15 {
        dst.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| one(i, dst, gemm::Parallelism::None));
    } else {
        dst.chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, dst)| one(i, dst, per));
    }
    // SAFETY: every one of the `len` elements was written by a GEMM (or zeroed above).
    unsafe { out.set_len(len) };
    out
}

impl Tensor {
    /// Matrix product with `torch.matmul`'s rules: 1-D operands are promoted to a row (left) or
    /// column (right) vector and the added dim removed afterwards; batch dims broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let fail = || {
            Err(Error::shape(
                "matmul",
                format!("cannot multiply {:?} by {:?}", self.dims(), other.dims()),
            ))
        };
        match (self.rank(), other.rank()) {
            (0, _) | (_, 0) => fail(),
            (1, 1) => {
                if self.dims()[0] != other.dims()[0] {
                    return fail();
                }
                self.unsqueeze(0)?
                    .matmul_nd(&other.unsqueeze(1)?)?
                    .reshape(())
            }
            (1, _) => {
                if self.dims()[0] != other.dims()[other.rank() - 2] {
                    return fail();
                }
                self.unsqueeze(0)?.matmul_nd(other)?.squeeze(-2)
            }
            (_, 1) => {
                if self.dims()[self.rank() - 1] != other.dims()[0] {
                    return fail();
                }
                self.matmul_nd(&other.unsqueeze(1)?)?.squeeze(-1)
            }
            _ => self.matmul_nd(other),
        }
    }

    /// Batched product of operands of rank >= 2.
    fn matmul_nd(&self, other: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), other.rank());
        let (m, k) = (self.dims()[ra - 2], self.dims()[ra - 1]);
        let (k2, n) = (other.dims()[rb - 2], other.dims()[rb - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!("cannot multiply {:?} by {:?}", self.dims(), other.dims()),
            ));
        }
        if self.dtype() != other.dtype() {
            return Err(Error::dtype_mismatch("matmul", self.dtype(), other.dtype()));
        }
        let batch = broadcast_shapes("matmul", &self.dims()[..ra - 2], &other.dims()[..rb - 2])
            .map_err(|_| {
                Error::shape(
                    "matmul",
                    format!(
                        "cannot multiply {:?} by {:?}: batch dims do not broadcast",
                        self.dims(),
                        other.dims()
                    ),
                )
            })?;
        let mut sa = batch.clone();
        sa.extend([m, k]);
        let mut sb = batch.clone();
        sb.extend([k, n]);
        let la = self.layout().broadcast_to("matmul", &sa)?;
        let lb = other.layout().broadcast_to("matmul", &sb)?;
        // with an empty inner dimension the output can be far larger than the operands
        let mut so = batch.clone();
        so.extend([m, n]);
        crate::creation::checked_size("matmul", &Shape::new(so), self.dtype())?;
        let st = {
            let (a, b) = (self.storage(), other.storage());
            match (&*a, &*b) {
                (Storage::F32(va), Storage::F32(vb)) => {
                    Storage::new_f32(matmul_kernel(va, &la, vb, &lb, &batch, m, k, n))
                }
                (Storage::F64(va), Storage::F64(vb)) => {
                    Storage::new_f64(matmul_kernel(va, &la, vb, &lb, &batch, m, k, n))
                }
                (x, _) => return Err(Error::dtype_unsupported("matmul", x.dtype())),
            }
        };
        let mut out_shape = batch;
        out_shape.extend([m, n]);
        let (a, b) = (self.clone(), other.clone());
        Ok(Tensor::op_result(
            st,
            out_shape,
            "matmul",
            &[self, other],
            move || {
                Box::new(move |_, g| {
                    let da = a
                        .requires_grad()
                        .then(|| g.matmul_nd(&b.transpose(-1, -2)?)?.sum_to_shape(a.shape()))
                        .transpose()?;
                    let db = b
                        .requires_grad()
                        .then(|| a.transpose(-1, -2)?.matmul_nd(g)?.sum_to_shape(b.shape()))
                        .transpose()?;
                    Ok(vec![da, db])
                })
            },
        ))
    }
}

/// The operands of `x W^T` as strided matrices: `x` (`[n, k]`) and `W^T`, whose element (i, j)
/// is `W[j][i]`.
fn linear_operands<T>(x: &[T], lx: &Layout, w: &[T], lw: &Layout) -> (MatPtr<T>, MatPtr<T>) {
    let (xs, ws) = (lx.strides(), lw.strides());
    let x = MatPtr {
        ptr: x[lx.offset()..].as_ptr(),
        rs: xs[0] as isize,
        cs: xs[1] as isize,
    };
    let wt = MatPtr {
        ptr: w[lw.offset()..].as_ptr(),
        rs: ws[1] as isize,
        cs: ws[0] as isize,
    };
    (x, wt)
}

#[allow(clippy::too_many_arguments)]
fn linear_kernel<T: Float>(
    x: &[T],
    lx: &Layout,
    w: &[T],
    lw: &Layout,
    (b, relu): (Option<&[T]>, bool),
    (n, k, o): (usize, usize, usize),
) -> Vec<T> {
    let len = n * o;
    if len == 0 {
        return Vec::new();
    }
    let (x, wt) = linear_operands(x, lx, w, lw);
    let par = parallelism_for(n, o, k);
    let mut out: Vec<T> = Vec::with_capacity(len);
    // SAFETY: pointers and strides come from layouts validated against these storages;
    // `gemm_bias_into` writes all `len` elements without reading them first.
    unsafe {
        gemm_bias_into(n, o, k, out.as_mut_ptr(), (b, relu), x, wt, par);
        out.set_len(len);
    }
    out
}

/// Whether `x.linear(w, b)` records a graph node (so its weight may be about to change).
fn records_graph(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> bool {
    crate::autograd::is_grad_enabled()
        && (x.requires_grad() || w.requires_grad() || b.is_some_and(|b| b.requires_grad()))
}

/// `x W^T + b` (with `relu` fused) through our f32 kernel with `W^T` packed once and kept
/// between calls (see [`super::packed_weights`]); `None` where that kernel does not take this
/// product (shape, CPU, the openblas build) or the cache is off. `wv` is `w`'s storage, whose
/// read lock the caller holds across this call.
fn linear_packed(
    xv: &[f32],
    lx: &Layout,
    w: &Tensor,
    wv: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::cpu::sgemm;
        let (n, k, o) = (lx.dims()[0], lx.dims()[1], w.dims()[0]);
        let (x, wt) = linear_operands(xv, lx, wv, w.layout());
        let suits = sgemm::suits(n, o, k) || sgemm::suits_prepacked(n, k, x);
        if cfg!(feature = "openblas") || !suits || super::packed_weights::budget() == 0 {
            return None;
        }
        let threads = match parallelism_for(n, o, k) {
            gemm::Parallelism::Rayon(t) => t,
            _ => 1,
        };
        // SAFETY: the kernel suits this CPU (`suits`); pointers and strides come from layouts
        // validated against these storages; the output is written whole before it is read.
        unsafe {
            let packed =
                super::packed_weights::packed_for(w, || sgemm::PackedB::new(k, o, wt, threads));
            let mut out: Vec<f32> = Vec::with_capacity(n * o);
            let b = bias.map_or(std::ptr::null(), |b| b.as_ptr());
            let c = (out.as_mut_ptr(), o as isize, 1);
            sgemm::sgemm_packed(n, x, &packed, c, false, b, relu, threads);
            out.set_len(n * o);
            Some(out)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (xv, lx, w, wv, bias, relu);
        None
    }
}

impl Tensor {
    /// The fully connected layer's map, `y = x W^T + b`, for `x` of shape `[.., in]`, `W`
    /// `[out, in]` and `b` `[out]` (PyTorch's `F.linear`), with the bias added inside the GEMM.
    ///
    /// With `G = dL/dy` flattened to `[N, out]`: `dx = G W`, `dW = G^T x` (already in W's dense
    /// layout, so no transposed gradient is ever copied) and `db = sum_rows G`.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        self.linear_then(w, b, false)
    }

    /// `relu(x W^T + b)`, the same values as `x.linear(w, b)?.relu()`. When no gradient will be
    /// asked (inference, or nothing requires one) the ReLU is applied as the GEMM stores its
    /// sums, saving a pass over the output; otherwise it is exactly the two recorded ops.
    pub fn linear_relu(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if records_graph(self, w, b) {
            return self.linear(w, b)?.relu();
        }
        self.linear_then(w, b, true)
    }

    /// [`Tensor::linear`], with `relu` fused (only when no graph is recorded: the recorded
    /// backward is the linear layer's alone).
    fn linear_then(&self, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        let fail = |msg: String| Err(Error::shape("linear", msg));
        if w.rank() != 2 || self.rank() == 0 {
            return fail(format!(
                "expects input [.., in] and weight [out, in], got {:?} and {:?}",
                self.dims(),
                w.dims()
            ));
        }
        let (o, k) = (w.dims()[0], w.dims()[1]);
        if self.dims()[self.rank() - 1] != k {
            return fail(format!(
                "cannot multiply {:?} by the transpose of weight {:?}",
                self.dims(),
                w.dims()
            ));
        }
        if let Some(b) = b {
            if b.dims() != [o] {
                return fail(format!("bias must be [{o}], got {:?}", b.dims()));
            }
            if b.dtype() != self.dtype() {
                return Err(Error::dtype_mismatch("linear", self.dtype(), b.dtype()));
            }
        }
        if w.dtype() != self.dtype() {
            return Err(Error::dtype_mismatch("linear", self.dtype(), w.dtype()));
        }
        // rows: the product of the leading dims (not numel / k, which is 0 / 0 when k is 0)
        let n: usize = self.dims()[..self.rank() - 1].iter().product();
        crate::creation::checked_size("linear", &Shape::new([n, o]), self.dtype())?;
        let x2 = crate::autograd::no_grad(|| self.reshape([n, k]))?;
        let bias = b.map(|b| b.contiguous_storage());
        let shape = (n, k, o);
        let st = {
            let (xs, ws) = (x2.storage(), w.storage());
            match (&*xs, &*ws, &bias) {
                (Storage::F32(xv), Storage::F32(wv), bv) => {
                    let bv = match bv {
                        Some(crate::tensor::Dense::F32(v)) => Some(&v[..]),
                        _ => None,
                    };
                    // weights that may be about to change are not packed to be kept
                    let kept = match records_graph(self, w, b) {
                        true => None,
                        false => linear_packed(xv, x2.layout(), w, wv, bv, relu),
                    };
                    let y = kept.unwrap_or_else(|| {
                        linear_kernel(xv, x2.layout(), wv, w.layout(), (bv, relu), shape)
                    });
                    Storage::new_f32(y)
                }
                (Storage::F64(xv), Storage::F64(wv), bv) => {
                    let bv = match bv {
                        Some(crate::tensor::Dense::F64(v)) => Some(&v[..]),
                        _ => None,
                    };
                    let y = linear_kernel(xv, x2.layout(), wv, w.layout(), (bv, relu), shape);
                    Storage::new_f64(y)
                }
                (x, _, _) => return Err(Error::dtype_unsupported("linear", x.dtype())),
            }
        };
        let mut out_shape = self.dims().to_vec();
        *out_shape.last_mut().unwrap_or(&mut 0) = o;
        let mut inputs = vec![self, w];
        if let Some(b) = b {
            inputs.push(b);
        }
        let (xt, wt, has_bias) = (self.clone(), w.clone(), b.is_some());
        Ok(Tensor::op_result(
            st,
            out_shape,
            "linear",
            &inputs,
            move || {
                Box::new(move |_, g| {
                    let g2 = g.reshape([n, o])?;
                    let dx = xt
                        .requires_grad()
                        .then(|| g2.matmul(&wt)?.reshape(xt.shape().clone()))
                        .transpose()?;
                    let dw = wt
                        .requires_grad()
                        .then(|| g2.t()?.matmul(&x2))
                        .transpose()?;
                    let mut grads = vec![dx, dw];
                    if has_bias {
                        grads.push(Some(g2.sum(&[0], false)?));
                    }
                    Ok(grads)
                })
            },
        ))
    }
}
