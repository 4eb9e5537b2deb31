//! The time loop of a recurrent layer, forward and backward, for one direction of one layer.
//!
//! The input projection of every step (`x_t W_ih^T + b_ih`, one matrix product over the whole
//! sequence) is computed by the caller; here each step does the one product that must wait for
//! the previous state (`h W_hh^T + b_hh`, `[B, H] x [H, G H]`) and then, row by row, the gate
//! nonlinearities and the state update (an LSTM's in one short pass per gate and one for the
//! state), saving what the backward needs.
//! The backward walks the steps in reverse with one product per step (`dh += da W_hh`); the
//! weight gradient `dW_hh = sum_t da_t^T h_(t-1)` is a single product over all steps at the end.
//!
//! Sequences of different lengths: at a time `t` past a sequence's length the row is left
//! alone (its state carries through unchanged and its output is 0), which is what PyTorch's
//! packed sequences give in both directions: forward, the final state is the state at the
//! sequence's own last step; in reverse, the scan of that row starts at its last step.

use super::gemm::{gemm_bias_into, gemm_into, parallelism_for, MatPtr};
use crate::dtype::Float;
use gemm::Parallelism;

/// A product by the same right-hand matrix at every step (`W_hh^T` forward, `W_hh` backward):
/// `dst (m x n) = (accumulate ? dst : bias) + a (m x k) B`. For f32 on our kernel, B is packed
/// once per scan instead of once per step: repacking `W_hh` (256 KiB for an LSTM of 128) at
/// each of a hundred steps cost more than the products themselves.
struct FixedRhs<T> {
    b: MatPtr<T>,
    k: usize,
    n: usize,
    par: Parallelism,
    #[cfg(target_arch = "x86_64")]
    packed: Option<super::sgemm::PackedB>,
}

// SAFETY: B is only read, by every block's products, while the scan that made it runs.
unsafe impl<T: Sync> Sync for FixedRhs<T> {}
unsafe impl<T: Sync> Send for FixedRhs<T> {}

impl<T: Float> FixedRhs<T> {
    /// # Safety
    /// `b` is valid for the strided `k x n` extent it describes for the life of the value.
    unsafe fn new(b: MatPtr<T>, k: usize, n: usize) -> Self {
        // one thread per product: the parallelism is across blocks of rows (see `ROWS`)
        let par = Parallelism::None;
        #[cfg(target_arch = "x86_64")]
        {
            let f32_kernel = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
                && super::sgemm::available()
                && !cfg!(feature = "openblas")
                && k >= 8;
            let packed = f32_kernel.then(|| {
                let bf = MatPtr {
                    ptr: b.ptr as *const f32,
                    rs: b.rs,
                    cs: b.cs,
                };
                // SAFETY: as this function's contract; T is f32
                unsafe { super::sgemm::PackedB::new(k, n, bf, threads_of(par)) }
            });
            FixedRhs {
                b,
                k,
                n,
                par,
                packed,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FixedRhs { b, k, n, par }
    }

    /// # Safety
    /// `a` is a dense `m x k` matrix, `dst` a dense `m x n` one not aliasing it, `bias` holds
    /// `n` values.
    unsafe fn run(&self, m: usize, a: *const T, dst: *mut T, accumulate: bool, bias: Option<&[T]>) {
        let am = MatPtr {
            ptr: a,
            rs: self.k as isize,
            cs: 1,
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = &self.packed {
            let af = MatPtr {
                ptr: a as *const f32,
                rs: am.rs,
                cs: 1,
            };
            let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr() as *const f32);
            let c = (dst as *mut f32, self.n as isize, 1);
            // SAFETY: T is f32 (packed is only made for it) and the caller's contract
            unsafe {
                super::sgemm::sgemm_packed(
                    m,
                    af,
                    p,
                    c,
                    accumulate,
                    bias,
                    false,
                    threads_of(self.par),
                )
            };
            return;
        }
        // SAFETY: the caller's contract and `new`'s
        unsafe {
            if accumulate {
                gemm_into(
                    m,
                    self.n,
                    self.k,
                    dst,
                    self.n as isize,
                    true,
                    am,
                    self.b,
                    self.par,
                );
            } else {
                gemm_bias_into(m, self.n, self.k, dst, (bias, false), am, self.b, self.par);
            }
        }
    }
}

fn threads_of(par: Parallelism) -> usize {
    match par {
        Parallelism::Rayon(t) => t.max(1),
        _ => 1,
    }
}

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

/// Rows of the batch per task. The rows of a recurrent layer are independent, so each block
/// of rows runs all its steps on one thread with no synchronisation between steps: splitting
/// each step's small product across threads instead made two threads slower than one (the
/// wake-up of the second thread took longer than its half of a `[32, 128] x [128, 512]`
/// product). Fixed by the batch size alone, so the numbers do not depend on the thread count.
const ROWS: usize = 16;

/// A raw pointer that may cross to another thread; the tasks write disjoint rows.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

impl<T> Ptr<T> {
    /// `len` elements from element `at`.
    ///
    /// # Safety
    /// In bounds of the buffer, and no other live slice overlaps it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, at: usize, len: usize) -> &mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// The row blocks of a batch.
fn blocks(batch: usize) -> Vec<(usize, usize)> {
    (0..batch)
        .step_by(ROWS)
        .map(|r0| (r0, (r0 + ROWS).min(batch)))
        .collect()
}

/// Runs `f` on every block, on the thread pool when there are several.
fn for_blocks(batch: usize, f: impl Fn((usize, usize)) + Send + Sync) {
    use rayon::prelude::*;
    let b = blocks(batch);
    if b.len() > 1 && rayon::current_num_threads() > 1 {
        b.into_par_iter().for_each(f);
    } else {
        b.into_iter().for_each(f);
    }
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
    save: bool,
) -> (Vec<T>, Saved<T>) {
    let Dims {
        steps,
        batch,
        hidden: nh,
    } = d;
    let gh = cell.gates() * nh;
    let bh = batch * nh;
    let lstm = cell.has_cell_state();
    let slots = steps + 1 + usize::from(lstm);
    let mut out = vec![T::zero(); slots * bh];
    let zeros = vec![T::zero(); if lstm && c0.is_none() { bh } else { 0 }];
    let c0 = c0.unwrap_or(&zeros);
    // without a backward to come (inference) nothing is kept: each block works in scratch rows
    let keep = |n: usize| vec![T::zero(); if save { n } else { 0 }];
    let mut saved = Saved {
        h_prev: keep(steps * bh),
        acts: keep(steps * batch * gh),
        extra: keep(if cell.gates() == 1 { 0 } else { steps * bh }),
        tanh_c: keep(if lstm { steps * bh } else { 0 }),
    };
    // hh = h W_hh^T + b_hh; W_hh^T's (k, j) is w[j H + k]
    // SAFETY: w is [G H, H], alive for the whole scan
    let rhs = unsafe {
        FixedRhs::new(
            MatPtr {
                ptr: w.as_ptr(),
                rs: 1,
                cs: nh as isize,
            },
            nh,
            gh,
        )
    };
    let (po, ph, pa) = (
        Ptr(out.as_mut_ptr()),
        Ptr(saved.h_prev.as_mut_ptr()),
        Ptr(saved.acts.as_mut_ptr()),
    );
    let (pe, pt) = (
        Ptr(saved.extra.as_mut_ptr()),
        Ptr(saved.tanh_c.as_mut_ptr()),
    );
    for_blocks(batch, |(r0, r1)| {
        let bc = r1 - r0;
        let mut h = h0[r0 * nh..r1 * nh].to_vec();
        let mut c = if lstm {
            c0[r0 * nh..r1 * nh].to_vec()
        } else {
            Vec::new()
        };
        let mut hh = vec![T::zero(); bc * gh];
        let (mut acts_tmp, mut row_tmp) = if save {
            (Vec::new(), Vec::new())
        } else {
            (vec![T::zero(); gh], vec![T::zero(); nh])
        };
        for t in step_order(steps, reverse) {
            let at = (t * batch + r0) * nh;
            // SAFETY: rows r0..r1 of step t belong to this block alone
            unsafe {
                if save {
                    ph.slice(at, bc * nh).copy_from_slice(&h);
                    if lstm {
                        pe.slice(at, bc * nh).copy_from_slice(&c);
                    }
                }
                // h is [bc, H], hh [bc, G H], dense and distinct; b has G H values
                rhs.run(bc, h.as_ptr(), hh.as_mut_ptr(), false, b);
            }
            crate::cpu::simd::with_avx512(
                #[inline(always)]
                || {
                    for i in 0..bc {
                        if t >= lengths[r0 + i] {
                            continue;
                        }
                        let row = t * batch + r0 + i;
                        let x = &xp[row * gh..(row + 1) * gh];
                        let a = &hh[i * gh..(i + 1) * gh];
                        let hr = &mut h[i * nh..(i + 1) * nh];
                        // SAFETY: row `row` belongs to this block alone
                        let o = unsafe { po.slice(row * nh, nh) };
                        // the gate activations, and tanh(c') (LSTM) or h W_hn^T + b_hn (GRU)
                        let (acts, second): (&mut [T], &mut [T]) = if save {
                            // SAFETY: as above
                            unsafe {
                                let second = match cell {
                                    Cell::Lstm => pt.slice(row * nh, nh),
                                    Cell::Gru => pe.slice(row * nh, nh),
                                    _ => &mut [],
                                };
                                (pa.slice(row * gh, gh), second)
                            }
                        } else {
                            (&mut acts_tmp, &mut row_tmp)
                        };
                        match cell {
                            Cell::RnnTanh => rnn_row(x, a, acts, hr, o, |s: T| s.tanh_fma()),
                            Cell::RnnRelu => rnn_row(x, a, acts, hr, o, |s: T| s.max(T::zero())),
                            Cell::Lstm => {
                                let cr = &mut c[i * nh..(i + 1) * nh];
                                lstm_row(x, a, acts, cr, second, hr, o);
                            }
                            Cell::Gru => gru_row(x, a, acts, second, hr, o),
                        }
                    }
                },
            );
        }
        // SAFETY: the final-state rows r0..r1 belong to this block alone
        unsafe {
            po.slice((steps * batch + r0) * nh, bc * nh)
                .copy_from_slice(&h);
            if lstm {
                po.slice(((steps + 1) * batch + r0) * nh, bc * nh)
                    .copy_from_slice(&c);
            }
        }
    });
    (out, saved)
}

/// One row of a plain RNN step: `h' = act(x + a)`, kept as the activation, state and output.
#[inline(always)]
fn rnn_row<T: Float>(
    x: &[T],
    a: &[T],
    acts: &mut [T],
    h: &mut [T],
    o: &mut [T],
    act: impl Fn(T) -> T,
) {
    for ((((&x, &a), s), h), o) in x
        .iter()
        .zip(a)
        .zip(acts.iter_mut())
        .zip(h.iter_mut())
        .zip(o.iter_mut())
    {
        let v = act(x + a);
        *s = v;
        *h = v;
        *o = v;
    }
}

/// One row of an LSTM step; `x` and `a` hold the four gate blocks i, f, g, o of `H` values.
#[inline(always)]
fn lstm_row<T: Float>(
    x: &[T],
    a: &[T],
    acts: &mut [T],
    c: &mut [T],
    tc: &mut [T],
    h: &mut [T],
    o: &mut [T],
) {
    // every slice cut to exactly H values, so that the loop has no bounds checks and vectorises
    let nh = h.len();
    let (xi, xf, xg, xo) = (
        &x[..nh],
        &x[nh..2 * nh],
        &x[2 * nh..3 * nh],
        &x[3 * nh..4 * nh],
    );
    let (ai, af, ag, ao) = (
        &a[..nh],
        &a[nh..2 * nh],
        &a[2 * nh..3 * nh],
        &a[3 * nh..4 * nh],
    );
    let (si, rest) = acts[..4 * nh].split_at_mut(nh);
    let (sf, rest) = rest.split_at_mut(nh);
    let (sg, so) = rest.split_at_mut(nh);
    let (c, tc, o) = (&mut c[..nh], &mut tc[..nh], &mut o[..nh]);
    // one pass per gate, then the state update: a single pass holding all five nonlinearities
    // was a chain of about 300 instructions per eight units, longer than the out-of-order window,
    // so its iterations could not overlap and it ran at its latency (a quarter of an LSTM forward)
    gate_pass(xi, ai, si, |s: T| s.sigmoid_fma());
    gate_pass(xf, af, sf, |s: T| s.sigmoid_fma());
    gate_pass(xg, ag, sg, |s: T| s.tanh_fma());
    gate_pass(xo, ao, so, |s: T| s.sigmoid_fma());
    for j in 0..nh {
        let cn = sf[j] * c[j] + si[j] * sg[j];
        let t_c = cn.tanh_fma();
        c[j] = cn;
        tc[j] = t_c;
        h[j] = so[j] * t_c;
        o[j] = so[j] * t_c;
    }
}

/// `out = act(x + a)`, element by element.
#[inline(always)]
fn gate_pass<T: Float>(x: &[T], a: &[T], out: &mut [T], act: impl Fn(T) -> T) {
    for ((&x, &a), s) in x.iter().zip(a).zip(out.iter_mut()) {
        *s = act(x + a);
    }
}

/// One row of a GRU step; `x` and `a` hold the three gate blocks r, z, n of `H` values.
#[inline(always)]
fn gru_row<T: Float>(x: &[T], a: &[T], acts: &mut [T], hn: &mut [T], h: &mut [T], o: &mut [T]) {
    // every slice cut to exactly H values, so that the loop has no bounds checks and vectorises
    let nh = h.len();
    let (xr, xz, xn) = (&x[..nh], &x[nh..2 * nh], &x[2 * nh..3 * nh]);
    let (ar, az, an) = (&a[..nh], &a[nh..2 * nh], &a[2 * nh..3 * nh]);
    let (sr, rest) = acts[..3 * nh].split_at_mut(nh);
    let (sz, sn) = rest.split_at_mut(nh);
    let (hn, o) = (&mut hn[..nh], &mut o[..nh]);
    for j in 0..nh {
        let rg = (xr[j] + ar[j]).sigmoid_fma();
        let z = (xz[j] + az[j]).sigmoid_fma();
        let n = (xn[j] + rg * an[j]).tanh_fma();
        let v = (T::one() - z) * n + z * h[j];
        sr[j] = rg;
        sz[j] = z;
        sn[j] = n;
        hn[j] = an[j];
        h[j] = v;
        o[j] = v;
    }
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
    let gh = cell.gates() * nh;
    let bh = batch * nh;
    let lstm = cell.has_cell_state();
    let gru = cell == Cell::Gru;
    let mut dh0 = vec![T::zero(); bh];
    let mut dc0 = vec![T::zero(); if lstm { bh } else { 0 }];
    let mut dxp = vec![T::zero(); steps * batch * gh];
    // the recurrent side's gate gradients differ from the input side's only for the GRU's n
    let mut dhh = vec![T::zero(); if gru { steps * batch * gh } else { 0 }];
    // SAFETY: w is [G H, H], alive for the whole backward
    let rhs = unsafe {
        FixedRhs::new(
            MatPtr {
                ptr: w.as_ptr(),
                rs: nh as isize,
                cs: 1,
            },
            gh,
            nh,
        )
    };
    let order: Vec<usize> = step_order(steps, reverse).collect();
    let (pdx, pdhh) = (Ptr(dxp.as_mut_ptr()), Ptr(dhh.as_mut_ptr()));
    let (pdh0, pdc0) = (Ptr(dh0.as_mut_ptr()), Ptr(dc0.as_mut_ptr()));
    for_blocks(batch, |(r0, r1)| {
        let bc = r1 - r0;
        let mut dh = gout[(steps * batch + r0) * nh..(steps * batch + r1) * nh].to_vec();
        let mut dc = if lstm {
            gout[((steps + 1) * batch + r0) * nh..((steps + 1) * batch + r1) * nh].to_vec()
        } else {
            Vec::new()
        };
        for &t in order.iter().rev() {
            crate::cpu::simd::with_avx512(
                #[inline(always)]
                || {
                    for i in 0..bc {
                        if t >= lengths[r0 + i] {
                            continue;
                        }
                        let row = t * batch + r0 + i;
                        let go = &gout[row * nh..(row + 1) * nh];
                        let acts = &saved.acts[row * gh..(row + 1) * gh];
                        let dhr = &mut dh[i * nh..(i + 1) * nh];
                        // SAFETY: row `row` belongs to this block alone
                        let da = unsafe { pdx.slice(row * gh, gh) };
                        match cell {
                            Cell::RnnTanh | Cell::RnnRelu => {
                                rnn_back_row(cell == Cell::RnnTanh, go, acts, dhr, da)
                            }
                            Cell::Lstm => {
                                let dcr = &mut dc[i * nh..(i + 1) * nh];
                                let c_prev = &saved.extra[row * nh..(row + 1) * nh];
                                let tc = &saved.tanh_c[row * nh..(row + 1) * nh];
                                lstm_back_row(go, acts, c_prev, tc, dhr, dcr, da);
                            }
                            Cell::Gru => {
                                let hn = &saved.extra[row * nh..(row + 1) * nh];
                                let hp = &saved.h_prev[row * nh..(row + 1) * nh];
                                // SAFETY: as above
                                let dha = unsafe { pdhh.slice(row * gh, gh) };
                                gru_back_row(go, acts, hn, hp, dhr, da, dha);
                            }
                        }
                    }
                },
            );
            // dh += da_hh W_hh (rows past their length have da = 0 and keep their dh)
            let at = (t * batch + r0) * gh;
            let dstep = if gru { pdhh } else { pdx };
            // SAFETY: these rows of step t are this block's, [bc, G H]; dh is [bc, H]
            unsafe { rhs.run(bc, dstep.0.add(at), dh.as_mut_ptr(), true, None) };
        }
        // SAFETY: rows r0..r1 belong to this block alone
        unsafe {
            pdh0.slice(r0 * nh, bc * nh).copy_from_slice(&dh);
            if lstm {
                pdc0.slice(r0 * nh, bc * nh).copy_from_slice(&dc);
            }
        }
    });
    let dall = if gru { &dhh } else { &dxp };
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
        h0: dh0,
        c0: dc0,
    }
}

/// The backward of [`rnn_row`]: the gate gradient from the state's, which is then cleared (a
/// plain RNN's state reaches the previous one only through `W_hh`).
#[inline(always)]
fn rnn_back_row<T: Float>(tanh: bool, go: &[T], acts: &[T], dh: &mut [T], da: &mut [T]) {
    for (((&g, &v), dh), da) in go.iter().zip(acts).zip(dh.iter_mut()).zip(da.iter_mut()) {
        let dt = *dh + g;
        *da = if tanh {
            dt * (T::one() - v * v)
        } else if v > T::zero() {
            dt
        } else {
            T::zero()
        };
        *dh = T::zero();
    }
}

/// The backward of [`lstm_row`].
#[inline(always)]
fn lstm_back_row<T: Float>(
    go: &[T],
    acts: &[T],
    c_prev: &[T],
    tc: &[T],
    dh: &mut [T],
    dc: &mut [T],
    da: &mut [T],
) {
    let nh = dh.len();
    let (si, sf, sg, so) = (
        &acts[..nh],
        &acts[nh..2 * nh],
        &acts[2 * nh..3 * nh],
        &acts[3 * nh..4 * nh],
    );
    let (di, rest) = da[..4 * nh].split_at_mut(nh);
    let (df, rest) = rest.split_at_mut(nh);
    let (dg, dout) = rest.split_at_mut(nh);
    let (go, c_prev, tc, dc) = (&go[..nh], &c_prev[..nh], &tc[..nh], &mut dc[..nh]);
    let one = T::one();
    for j in 0..nh {
        let (i, f, g, o) = (si[j], sf[j], sg[j], so[j]);
        let dt = dh[j] + go[j];
        let dct = dc[j] + dt * o * (one - tc[j] * tc[j]);
        dout[j] = dt * tc[j] * o * (one - o);
        di[j] = dct * g * i * (one - i);
        dg[j] = dct * i * (one - g * g);
        df[j] = dct * c_prev[j] * f * (one - f);
        dc[j] = dct * f;
        dh[j] = T::zero();
    }
}

/// The backward of [`gru_row`]: input-side gate gradients in `da`, recurrent-side in `dha`,
/// and the direct part `dh z` of the previous state's gradient left in `dh`.
#[inline(always)]
fn gru_back_row<T: Float>(
    go: &[T],
    acts: &[T],
    hn: &[T],
    hp: &[T],
    dh: &mut [T],
    da: &mut [T],
    dha: &mut [T],
) {
    let nh = dh.len();
    let (sr, sz, sn) = (&acts[..nh], &acts[nh..2 * nh], &acts[2 * nh..3 * nh]);
    let (dar, rest) = da[..3 * nh].split_at_mut(nh);
    let (daz, dan) = rest.split_at_mut(nh);
    let (dhr, rest) = dha[..3 * nh].split_at_mut(nh);
    let (dhz, dhn) = rest.split_at_mut(nh);
    let (go, hn, hp) = (&go[..nh], &hn[..nh], &hp[..nh]);
    let one = T::one();
    for j in 0..nh {
        let (rg, z, n) = (sr[j], sz[j], sn[j]);
        let dt = dh[j] + go[j];
        let dn_a = dt * (one - z) * (one - n * n);
        let dz_a = dt * (hp[j] - n) * z * (one - z);
        let dr_a = dn_a * hn[j] * rg * (one - rg);
        dar[j] = dr_a;
        daz[j] = dz_a;
        dan[j] = dn_a;
        dhr[j] = dr_a;
        dhz[j] = dz_a;
        dhn[j] = dn_a * rg;
        dh[j] = dt * z;
    }
}
