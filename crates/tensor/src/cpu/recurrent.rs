//! The time loop of a recurrent layer, forward and backward, for one direction of one layer.
//!
//! The input projection of every step (`x_t W_ih^T + b_ih`, one matrix product over the whole
//! sequence) is computed by the caller; here each step does the one product that must wait for
//! the previous state (`h W_hh^T + b_hh`, `[B, H] x [H, G H]`) and then one pass over the batch
//! that applies the gate nonlinearities and updates the state, saving what the backward needs.
//! The backward walks the steps in reverse with one product per step (`dh += da W_hh`); the
//! weight gradient `dW_hh = sum_t da_t^T h_(t-1)` is a single product over all steps at the end.
//!
//! Sequences of different lengths: at a time `t` past a sequence's length the row is left
//! alone (its state carries through unchanged and its output is 0), which is what PyTorch's
//! packed sequences give in both directions: forward, the final state is the state at the
//! sequence's own last step; in reverse, the scan of that row starts at its last step.

use super::gemm::{gemm_bias_into, gemm_into, parallelism_for, MatPtr};
use crate::dtype::Float;

/// The cell run at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`
    RnnTanh,
    /// `h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)`
    RnnRelu,
    /// Gates i, f, g, o (PyTorch's order): `c' = f c + i g`, `h' = o tanh(c')`.
    Lstm,
    /// Gates r, z, n (PyTorch's order): `n = tanh(x_n + r (h W_hn^T + b_hn))`,
    /// `h' = (1 - z) n + z h`.
    Gru,
}

impl Cell {
    /// Gate blocks of `H` rows in `W_ih` and `W_hh`.
    pub fn gates(self) -> usize {
        match self {
            Cell::RnnTanh | Cell::RnnRelu => 1,
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }
    /// Whether the cell carries a second state (the LSTM's `c`).
    pub fn has_cell_state(self) -> bool {
        self == Cell::Lstm
    }
    pub fn name(self) -> &'static str {
        match self {
            Cell::RnnTanh => "rnn_tanh",
            Cell::RnnRelu => "rnn_relu",
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        }
    }
}

/// The sizes of one scan: `steps` time steps of a batch of `batch` rows, hidden size `hidden`.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
}

/// What the forward keeps for the backward, all `[T, B, .]` indexed by time.
pub struct Saved<T> {
    /// The state `h` before each step.
    pub h_prev: Vec<T>,
    /// The gate activations after their nonlinearity (`[T, B, G H]`): i, f, g, o; r, z, n; or
    /// the new state for a plain RNN.
    pub acts: Vec<T>,
    /// LSTM: the cell state before each step; GRU: `h W_hn^T + b_hn`; empty for an RNN.
    pub extra: Vec<T>,
    /// LSTM: `tanh(c')` of each step; empty otherwise.
    pub tanh_c: Vec<T>,
}

/// The order in which the steps run.
fn step_order(steps: usize, reverse: bool) -> impl Iterator<Item = usize> {
    (0..steps).map(move |s| if reverse { steps - 1 - s } else { s })
}

/// Runs the scan. `xp`: `[T, B, G H]` input projections; `w`: `W_hh`, `[G H, H]`; `b`: `b_hh`;
/// `h0`, `c0`: `[B, H]` (c0 only for the LSTM); `lengths`: each row's length (all `T` when
/// none). Returns the packed result `[T + 1 (+1), B, H]`: the outputs of every step, then the
/// final `h` (then the final `c`), and what the backward needs.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    cell: Cell,
    d: Dims,
    xp: &[T],
    w: &[T],
    b: Option<&[T]>,
    h0: &[T],
    c0: Option<&[T]>,
    lengths: &[usize],
    reverse: bool,
) -> (Vec<T>, Saved<T>) {
    let Dims {
        steps,
        batch,
        hidden: nh,
    } = d;
    let g = cell.gates();
    let gh = g * nh;
    let bh = batch * nh;
    let slots = steps + 1 + usize::from(cell.has_cell_state());
    let mut out = vec![T::zero(); slots * bh];
    let mut h = h0.to_vec();
    let mut c = match c0 {
        Some(c0) => c0.to_vec(),
        None => vec![T::zero(); if cell.has_cell_state() { bh } else { 0 }],
    };
    let mut saved = Saved {
        h_prev: vec![T::zero(); steps * bh],
        acts: vec![T::zero(); steps * batch * gh],
        extra: vec![
            T::zero();
            if cell == Cell::RnnTanh || cell == Cell::RnnRelu {
                0
            } else {
                steps * bh
            }
        ],
        tanh_c: vec![T::zero(); if cell.has_cell_state() { steps * bh } else { 0 }],
    };
    let mut hh = vec![T::zero(); batch * gh];
    let par = parallelism_for(batch, gh, nh);
    for t in step_order(steps, reverse) {
        saved.h_prev[t * bh..(t + 1) * bh].copy_from_slice(&h);
        if cell.has_cell_state() {
            saved.extra[t * bh..(t + 1) * bh].copy_from_slice(&c);
        }
        // hh = h W_hh^T + b_hh; W_hh^T's (k, j) is w[j H + k]
        // SAFETY: h is [B, H], w [G H, H], hh [B, G H], all dense and distinct; b has G H values.
        unsafe {
            gemm_bias_into(
                batch,
                gh,
                nh,
                hh.as_mut_ptr(),
                (b, false),
                MatPtr {
                    ptr: h.as_ptr(),
                    rs: nh as isize,
                    cs: 1,
                },
                MatPtr {
                    ptr: w.as_ptr(),
                    rs: 1,
                    cs: nh as isize,
                },
                par,
            );
        }
        crate::cpu::simd::with_avx2(
            #[inline(always)]
            || {
                for r in 0..batch {
                    if t >= lengths[r] {
                        continue;
                    }
                    let row = t * batch + r;
                    let x = &xp[row * gh..(row + 1) * gh];
                    let a = &hh[r * gh..(r + 1) * gh];
                    let acts = &mut saved.acts[row * gh..(row + 1) * gh];
                    let hr = &mut h[r * nh..(r + 1) * nh];
                    let o = &mut out[row * nh..(row + 1) * nh];
                    match cell {
                        Cell::RnnTanh | Cell::RnnRelu => {
                            for j in 0..nh {
                                let s = x[j] + a[j];
                                let v = if cell == Cell::RnnTanh {
                                    s.tanh_fn()
                                } else if s > T::zero() {
                                    s
                                } else {
                                    T::zero()
                                };
                                acts[j] = v;
                                hr[j] = v;
                                o[j] = v;
                            }
                        }
                        Cell::Lstm => {
                            let cr = &mut c[r * nh..(r + 1) * nh];
                            let tc = &mut saved.tanh_c[row * nh..(row + 1) * nh];
                            let (ai, rest) = acts.split_at_mut(nh);
                            let (af, rest) = rest.split_at_mut(nh);
                            let (ag, ao) = rest.split_at_mut(nh);
                            for j in 0..nh {
                                let i = (x[j] + a[j]).sigmoid_fn();
                                let f = (x[nh + j] + a[nh + j]).sigmoid_fn();
                                let gg = (x[2 * nh + j] + a[2 * nh + j]).tanh_fn();
                                let og = (x[3 * nh + j] + a[3 * nh + j]).sigmoid_fn();
                                let cn = f * cr[j] + i * gg;
                                let t_c = cn.tanh_fn();
                                (ai[j], af[j], ag[j], ao[j]) = (i, f, gg, og);
                                cr[j] = cn;
                                tc[j] = t_c;
                                hr[j] = og * t_c;
                                o[j] = og * t_c;
                            }
                        }
                        Cell::Gru => {
                            let hn = &mut saved.extra[row * nh..(row + 1) * nh];
                            let (ar, rest) = acts.split_at_mut(nh);
                            let (az, an) = rest.split_at_mut(nh);
                            for j in 0..nh {
                                let rg = (x[j] + a[j]).sigmoid_fn();
                                let z = (x[nh + j] + a[nh + j]).sigmoid_fn();
                                let n = (x[2 * nh + j] + rg * a[2 * nh + j]).tanh_fn();
                                let v = (T::one() - z) * n + z * hr[j];
                                (ar[j], az[j], an[j]) = (rg, z, n);
                                hn[j] = a[2 * nh + j];
                                hr[j] = v;
                                o[j] = v;
                            }
                        }
                    }
                }
            },
        );
    }
    out[steps * bh..(steps + 1) * bh].copy_from_slice(&h);
    if cell.has_cell_state() {
        out[(steps + 1) * bh..].copy_from_slice(&c);
    }
    (out, saved)
}

/// The gradients of one scan's inputs.
pub struct Grads<T> {
    /// Of the input projections, `[T, B, G H]`.
    pub xp: Vec<T>,
    /// Of `W_hh`, `[G H, H]`.
    pub w: Vec<T>,
    /// Of `b_hh`, `[G H]`.
    pub b: Vec<T>,
    /// Of `h0` and (LSTM) `c0`, `[B, H]`.
    pub h0: Vec<T>,
    pub c0: Vec<T>,
}

/// The backward of [`forward`]: `gout` is the gradient of its packed result.
///
/// Per step, with `dh` the gradient of the step's new state (from later steps and the output):
/// - RNN: `da = dh tanh'` (`1 - h'^2`) or `dh [h' > 0]`;
/// - LSTM: `dc' += dh o (1 - tanh(c')^2)`; `do = dh tanh(c')`, `di = dc' g`, `dg = dc' i`,
///   `df = dc' c`, each times its nonlinearity's derivative; `dc = dc' f`;
/// - GRU: `dn = dh (1 - z)`, `dz = dh (h - n)`, `dh_direct = dh z`; with `dn_a = dn (1 - n^2)`
///   the input side gets `dn_a` and the recurrent side `dn_a r`; `dr = dn_a (h W_hn^T + b_hn)`.
///
/// then `dh_prev = dh_direct + da_hh W_hh`, and at the end `dW_hh = sum_t da_hh_t^T h_(t-1)`,
/// `db_hh = sum_t da_hh_t`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    cell: Cell,
    d: Dims,
    gout: &[T],
    w: &[T],
    saved: &Saved<T>,
    lengths: &[usize],
    reverse: bool,
) -> Grads<T> {
    let Dims {
        steps,
        batch,
        hidden: nh,
    } = d;
    let g = cell.gates();
    let gh = g * nh;
    let bh = batch * nh;
    let mut dh = gout[steps * bh..(steps + 1) * bh].to_vec();
    let mut dc = if cell.has_cell_state() {
        gout[(steps + 1) * bh..(steps + 2) * bh].to_vec()
    } else {
        Vec::new()
    };
    let mut dxp = vec![T::zero(); steps * batch * gh];
    // the recurrent side's gate gradients differ from the input side's only for the GRU's n
    let mut dhh = if cell == Cell::Gru {
        vec![T::zero(); steps * batch * gh]
    } else {
        Vec::new()
    };
    let par = parallelism_for(batch, nh, gh);
    let order: Vec<usize> = step_order(steps, reverse).collect();
    for &t in order.iter().rev() {
        crate::cpu::simd::with_avx2(
            #[inline(always)]
            || {
                for r in 0..batch {
                    if t >= lengths[r] {
                        continue;
                    }
                    let row = t * batch + r;
                    let go = &gout[row * nh..(row + 1) * nh];
                    let acts = &saved.acts[row * gh..(row + 1) * gh];
                    let dhr = &mut dh[r * nh..(r + 1) * nh];
                    let da = &mut dxp[row * gh..(row + 1) * gh];
                    match cell {
                        Cell::RnnTanh | Cell::RnnRelu => {
                            for j in 0..nh {
                                let dt = dhr[j] + go[j];
                                let v = acts[j];
                                da[j] = if cell == Cell::RnnTanh {
                                    dt * (T::one() - v * v)
                                } else if v > T::zero() {
                                    dt
                                } else {
                                    T::zero()
                                };
                                dhr[j] = T::zero();
                            }
                        }
                        Cell::Lstm => {
                            let dcr = &mut dc[r * nh..(r + 1) * nh];
                            let c_prev = &saved.extra[row * nh..(row + 1) * nh];
                            let tc = &saved.tanh_c[row * nh..(row + 1) * nh];
                            let (di, rest) = da.split_at_mut(nh);
                            let (df, rest) = rest.split_at_mut(nh);
                            let (dg, dout) = rest.split_at_mut(nh);
                            for j in 0..nh {
                                let (i, f) = (acts[j], acts[nh + j]);
                                let (gg, og) = (acts[2 * nh + j], acts[3 * nh + j]);
                                let dt = dhr[j] + go[j];
                                let dct = dcr[j] + dt * og * (T::one() - tc[j] * tc[j]);
                                let one = T::one();
                                dout[j] = dt * tc[j] * og * (one - og);
                                di[j] = dct * gg * i * (one - i);
                                dg[j] = dct * i * (one - gg * gg);
                                df[j] = dct * c_prev[j] * f * (one - f);
                                dcr[j] = dct * f;
                                dhr[j] = T::zero();
                            }
                        }
                        Cell::Gru => {
                            let hn = &saved.extra[row * nh..(row + 1) * nh];
                            let hp = &saved.h_prev[row * nh..(row + 1) * nh];
                            let dha = &mut dhh[row * gh..(row + 1) * gh];
                            for j in 0..nh {
                                let (rg, z, n) = (acts[j], acts[nh + j], acts[2 * nh + j]);
                                let one = T::one();
                                let dt = dhr[j] + go[j];
                                let dn_a = dt * (one - z) * (one - n * n);
                                let dz_a = dt * (hp[j] - n) * z * (one - z);
                                let dr_a = dn_a * hn[j] * rg * (one - rg);
                                da[j] = dr_a;
                                da[nh + j] = dz_a;
                                da[2 * nh + j] = dn_a;
                                dha[j] = dr_a;
                                dha[nh + j] = dz_a;
                                dha[2 * nh + j] = dn_a * rg;
                                dhr[j] = dt * z;
                            }
                        }
                    }
                }
            },
        );
        // dh += da_hh W_hh (rows past their length have da = 0 and keep their dh)
        let dstep = if cell == Cell::Gru { &dhh } else { &dxp };
        // SAFETY: dstep's slice is [B, G H], w [G H, H], dh [B, H], dense and distinct.
        unsafe {
            gemm_into(
                batch,
                nh,
                gh,
                dh.as_mut_ptr(),
                nh as isize,
                true,
                MatPtr {
                    ptr: dstep[t * batch * gh..].as_ptr(),
                    rs: gh as isize,
                    cs: 1,
                },
                MatPtr {
                    ptr: w.as_ptr(),
                    rs: nh as isize,
                    cs: 1,
                },
                par,
            );
        }
    }
    let dall = if cell == Cell::Gru { &dhh } else { &dxp };
    let rows = steps * batch;
    let mut dw = vec![T::zero(); gh * nh];
    // SAFETY: dall is [T B, G H] (read transposed), h_prev [T B, H], dw [G H, H].
    unsafe {
        gemm_into(
            gh,
            nh,
            rows,
            dw.as_mut_ptr(),
            nh as isize,
            false,
            MatPtr {
                ptr: dall.as_ptr(),
                rs: 1,
                cs: gh as isize,
            },
            MatPtr {
                ptr: saved.h_prev.as_ptr(),
                rs: nh as isize,
                cs: 1,
            },
            parallelism_for(gh, nh, rows),
        );
    }
    let mut db = vec![T::zero(); gh];
    for row in dall.chunks_exact(gh) {
        for (s, &v) in db.iter_mut().zip(row) {
            *s += v;
        }
    }
    Grads {
        xp: dxp,
        w: dw,
        b: db,
        h0: dh,
        c0: dc,
    }
}
