//! The recurrent scan: one direction of one RNN, LSTM or GRU layer over a whole sequence, as
//! one op with a fused forward and backward (the step formulas are in
//! [`crate::cpu::recurrent`]).
//!
//! Its one result packs everything the layer returns, `[T + 1, B, H]` (`[T + 2, B, H]` for the
//! LSTM): the output of every step, then the final `h` (then the final `c`). The layer takes
//! views of it; the gradients of those views add up into the gradient of the packed result,
//! which is what the backward below receives, so the three results need one graph node.

pub use crate::cpu::recurrent::Cell as RecurrentCell;
use crate::cpu::recurrent::{self as kernel, Cell, Dims, Saved};
use crate::dtype::{DType, Float};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Element;
use std::sync::Arc;

/// Options of one scan beyond its tensors.
#[derive(Clone, Copy, Debug)]
pub struct ScanOptions<'a> {
    pub cell: RecurrentCell,
    /// Runs from the last step to the first (the second direction of a bidirectional layer).
    pub reverse: bool,
    /// Each sequence's length, `1..=T` (all `T` when none).
    pub lengths: Option<&'a [usize]>,
}

enum AnySaved {
    F32(Saved<f32>),
    F64(Saved<f64>),
}

fn dense(t: &Tensor) -> Result<Tensor> {
    if t.is_contiguous() {
        Ok(t.detach())
    } else {
        t.detach().contiguous()
    }
}

impl Tensor {
    /// One direction of a recurrent layer: `xproj` `[T, B, G H]` (the input projections
    /// `x_t W_ih^T + b_ih` of every step), `w_hh` `[G H, H]`, `b_hh` `[G H]`, `h0` `[B, H]`,
    /// `c0` `[B, H]` (LSTM only, required there). Returns the packed `[T + 1 (+1), B, H]`
    /// described in the module doc. Differentiable in every tensor argument.
    pub fn recurrent_scan(
        xproj: &Tensor,
        w_hh: &Tensor,
        b_hh: Option<&Tensor>,
        h0: &Tensor,
        c0: Option<&Tensor>,
        opt: ScanOptions<'_>,
    ) -> Result<Tensor> {
        let op = "recurrent_scan";
        let cell = opt.cell;
        let g = cell.gates();
        let (d, gh) = check_shapes(op, xproj, w_hh, b_hh, h0, c0, cell)?;
        let lengths = match opt.lengths {
            None => vec![d.steps; d.batch],
            Some(l) => {
                if l.len() != d.batch {
                    return Err(Error::shape(
                        op,
                        format!("{} lengths for a batch of {}", l.len(), d.batch),
                    ));
                }
                if let Some(bad) = l.iter().find(|&&n| n == 0 || n > d.steps) {
                    return Err(Error::value(
                        op,
                        format!(
                            "length {bad} is outside 1..={} (the steps of the input)",
                            d.steps
                        ),
                    ));
                }
                l.to_vec()
            }
        };
        let dtype = xproj.dtype();
        for t in [Some(w_hh), b_hh, Some(h0), c0].into_iter().flatten() {
            if t.dtype() != dtype {
                return Err(Error::dtype_mismatch(op, dtype, t.dtype()));
            }
        }
        let (x, w) = (dense(xproj)?, dense(w_hh)?);
        let b = b_hh.map(dense).transpose()?;
        let (h, c) = (dense(h0)?, c0.map(dense).transpose()?);
        let reverse = opt.reverse;
        // whether a backward can come (as `from_op` decides): without one nothing is saved
        let save = crate::autograd::is_grad_enabled()
            && [Some(xproj), Some(w_hh), b_hh, Some(h0), c0]
                .into_iter()
                .flatten()
                .any(Tensor::requires_grad);
        let (out, saved) = match dtype {
            DType::F32 => {
                let (o, s) = run_forward::<f32>(
                    cell,
                    d,
                    &x,
                    &w,
                    b.as_ref(),
                    &h,
                    c.as_ref(),
                    &lengths,
                    reverse,
                    save,
                )?;
                (o, AnySaved::F32(s))
            }
            DType::F64 => {
                let (o, s) = run_forward::<f64>(
                    cell,
                    d,
                    &x,
                    &w,
                    b.as_ref(),
                    &h,
                    c.as_ref(),
                    &lengths,
                    reverse,
                    save,
                )?;
                (o, AnySaved::F64(s))
            }
            other => return Err(Error::dtype_unsupported(op, other)),
        };
        let slots = d.steps + 1 + usize::from(cell.has_cell_state());
        let mut inputs = vec![xproj, w_hh];
        inputs.extend(b_hh);
        inputs.push(h0);
        inputs.extend(c0);
        let has_b = b_hh.is_some();
        let saved = Arc::new(saved);
        Ok(Tensor::op_result(
            out,
            [slots, d.batch, d.hidden],
            op,
            &inputs,
            move || {
                Box::new(move |_, gout| {
                    let gout = dense(gout)?;
                    let grads = match &*saved {
                        AnySaved::F32(s) => {
                            run_backward::<f32>(cell, d, &gout, &w, s, &lengths, reverse)?
                        }
                        AnySaved::F64(s) => {
                            run_backward::<f64>(cell, d, &gout, &w, s, &lengths, reverse)?
                        }
                    };
                    let [dx, dw, db, dh, dc] = grads;
                    let mut v = vec![
                        Some(Tensor::from_storage(dx, [d.steps, d.batch, gh])),
                        Some(Tensor::from_storage(dw, [gh, d.hidden])),
                    ];
                    if has_b {
                        v.push(Some(Tensor::from_storage(db, [g * d.hidden])));
                    }
                    v.push(Some(Tensor::from_storage(dh, [d.batch, d.hidden])));
                    if cell.has_cell_state() {
                        v.push(Some(Tensor::from_storage(dc, [d.batch, d.hidden])));
                    }
                    Ok(v)
                })
            },
        ))
    }
}

/// The scan's sizes from its tensors, or an error naming the tensor that does not fit.
fn check_shapes(
    op: &'static str,
    xproj: &Tensor,
    w_hh: &Tensor,
    b_hh: Option<&Tensor>,
    h0: &Tensor,
    c0: Option<&Tensor>,
    cell: Cell,
) -> Result<(Dims, usize)> {
    let g = cell.gates();
    let [ghw, nh] = *w_hh.dims() else {
        return Err(Error::shape(
            op,
            format!(
                "weight_hh must be [{g} * hidden, hidden], got {:?}",
                w_hh.dims()
            ),
        ));
    };
    if ghw != g * nh || nh == 0 {
        return Err(Error::shape(
            op,
            format!(
                "weight_hh {:?} is not [{g} * hidden, hidden] for a {} cell",
                w_hh.dims(),
                cell.name()
            ),
        ));
    }
    let gh = g * nh;
    let [steps, batch, xg] = *xproj.dims() else {
        return Err(Error::shape(
            op,
            format!(
                "input projections must be [steps, batch, {gh}], got {:?}",
                xproj.dims()
            ),
        ));
    };
    if xg != gh || steps == 0 {
        return Err(Error::shape(
            op,
            format!(
                "input projections {:?} are not [steps >= 1, batch, {gh}]",
                xproj.dims()
            ),
        ));
    }
    if let Some(b) = b_hh {
        if b.dims() != [gh] {
            return Err(Error::shape(
                op,
                format!("bias_hh {:?} is not [{gh}]", b.dims()),
            ));
        }
    }
    if h0.dims() != [batch, nh] {
        return Err(Error::shape(
            op,
            format!("h0 {:?} is not [batch {batch}, hidden {nh}]", h0.dims()),
        ));
    }
    match (cell.has_cell_state(), c0) {
        (true, Some(c)) if c.dims() == [batch, nh] => {}
        (true, Some(c)) => {
            return Err(Error::shape(
                op,
                format!("c0 {:?} is not [batch {batch}, hidden {nh}]", c.dims()),
            ))
        }
        (true, None) => return Err(Error::shape(op, "an LSTM scan needs c0")),
        (false, Some(_)) => {
            return Err(Error::shape(
                op,
                format!("a {} cell has no cell state c0", cell.name()),
            ))
        }
        (false, None) => {}
    }
    Ok((
        Dims {
            steps,
            batch,
            hidden: nh,
        },
        gh,
    ))
}

#[allow(clippy::too_many_arguments)]
fn run_forward<T: Float + Element>(
    cell: Cell,
    d: Dims,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    h: &Tensor,
    c: Option<&Tensor>,
    lengths: &[usize],
    reverse: bool,
    save: bool,
) -> Result<(crate::storage::Storage, Saved<T>)> {
    let bv = b.map(|t| t.to_vec::<T>()).transpose()?;
    let (hv, cv) = (h.to_vec::<T>()?, c.map(|t| t.to_vec::<T>()).transpose()?);
    let (out, saved) = x.with_data::<T, _>(|xs| {
        w.with_data::<T, _>(|ws| {
            kernel::forward(
                cell,
                d,
                xs,
                ws,
                bv.as_deref(),
                &hv,
                cv.as_deref(),
                lengths,
                reverse,
                save,
            )
        })
    })??;
    Ok((T::into_storage(out), saved))
}

fn run_backward<T: Float + Element>(
    cell: Cell,
    d: Dims,
    gout: &Tensor,
    w: &Tensor,
    saved: &Saved<T>,
    lengths: &[usize],
    reverse: bool,
) -> Result<[crate::storage::Storage; 5]> {
    let gr = gout.with_data::<T, _>(|gs| {
        w.with_data::<T, _>(|ws| kernel::backward(cell, d, gs, ws, saved, lengths, reverse))
    })??;
    Ok([
        T::into_storage(gr.xp),
        T::into_storage(gr.w),
        T::into_storage(gr.b),
        T::into_storage(gr.h0),
        T::into_storage(gr.c0),
    ])
}
