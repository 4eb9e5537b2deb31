//! Single-precision matrix product for x86-64 with AVX2 and FMA, in the BLIS layout.
//!
//! Why our own: the `gemm` crate reached 0.64-0.77 of OpenBLAS on this class of machine for
//! the large products that dominate training (its threading and packing, not its kernel), and
//! matrix products are two thirds of a Transformer step. This is the textbook design of Goto
//! and van de Geijn (BLIS): the operands are copied ("packed") into cache-sized blocks, then a
//! register-blocked micro-kernel computes a 6 x 16 tile of C as 96 running sums held in twelve
//! 256-bit registers, one rank-1 update per step of the inner dimension.
//!
//! Loops, from outside in: columns of C in blocks of `NC` (B block in L3), the inner dimension
//! in blocks of at most `KC_MAX`, rows in blocks of `MC` (A block in L2), then 16-column and 6-row
//! micro-panels. In products of at least 256 rows a row-major A is not packed: the kernel
//! broadcasts its six rows in place (the copy cost 4% of a 1000x500x784 product), except where
//! the rows would collide in L1 (see `in_place`).
//! Every element of C is the sum over the inner dimension in increasing order, in one register
//! lane per block of it, the blocks added to C in order; the blocking is chosen once per product,
//! so whatever the thread count or the split, results are bit-identical for any number of
//! threads.
//!
//! When C is not accumulated into, the first block of the inner dimension stores instead of
//! adding, so C is never read and need not be initialised.

use super::gemm::MatPtr;
use super::scratch;
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;
/// The inner dimension is cut into equal blocks of at most this many steps (equal rather than
/// 800 + remainder, so that no block is short) in products of at least `MANY_ROWS` rows. Each
/// block after the first reads C back and adds to it; with many rows C is large (2 MB for
/// 1000 x 500) and each pass over it costs, so fewer, longer blocks pay: a 16-column panel of B
/// (50 KiB at 800 steps) then lives in L2 rather than L1, which the kernel's 64 bytes per 12
/// multiply-adds allow. Against 384, same run, 2 threads: 1000x500x784 +6%, 4096x384x1536 +7%,
/// 2048^3 and 256^3 unchanged.
const KC_MAX: usize = 800;
/// The most steps per block in products of fewer rows: there C is small and stays in cache,
/// while the packed B block (`kc` x the thread's columns) should too. 800 made an MNIST MLP
/// training epoch at batch 64 (64 x 500 x 784 products and their gradients) 9-20% slower.
const KC_SMALL_M: usize = 384;
const MANY_ROWS: usize = 256;
/// Rows of A per block (72 x 800 floats = 225 KiB, in L2).
const MC: usize = 72;
const NC: usize = 4080;

/// Whether this CPU can run the kernel (checked once).
pub fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Whether a product of this shape goes to this kernel rather than to the `gemm` crate: it wins
/// on the large products (measured 1.1-1.6x at 64x500x784 to 2048x2048x2048, same run), and
/// loses on thin ones (a few rows, such as a 6-channel convolution, or a few columns, such
/// as an attention head of 32 or a 10-class output), where packing both operands does not pay.
/// Decided by the shape alone, so that the choice never depends on the thread count.
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    m >= 24 && n >= 48 && k >= 8 && available()
}

/// Whether a product whose B is already packed ([`PackedB`]) goes to this kernel: then nothing
/// is copied per call when A is read in place, so thin products win too (a 10-class output
/// layer, 1000 x 10 x 500, median 0.12 against 0.17 ms through the `gemm` crate; `ops_probe
/// mlp`).
pub fn suits_prepacked(m: usize, k: usize, a: MatPtr<f32>) -> bool {
    (k >= 8 && in_place(m, a)) && available()
}

/// A raw pointer that may cross to another thread; the caller guarantees disjoint writes.
#[derive(Clone, Copy)]
struct Shared<T>(T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

/// `C = (accumulate ? C : bias) + A (m x k) * B (k x n)`, C element (i, j) at
/// `c + i*rs_c + j*cs_c`, split across `threads` threads by whole micro-panels of C. `bias`
/// (null for none; ignored when accumulating) holds `n` values, one per column, added to every
/// row as the first block of sums is stored: a fully connected layer's `x W^T + b` in one pass.
/// With `relu`, `max(0, .)` is applied as the last block of sums is stored (a fused
/// `relu(x W^T + b)`; not with `accumulate`).
///
/// # Safety
/// [`available`] must be true; the pointers must be valid for the strided extents they
/// describe, and C must not alias A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatPtr<f32>,
    b: MatPtr<f32>,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    accumulate: bool,
    bias: *const f32,
    relu: bool,
    threads: usize,
) {
    unsafe {
        if m == 0 || n == 0 {
            return;
        }
        let threads = threads.max(1);
        let epi = Epilogue { bias, relu };
        // one blocking for the whole product, whatever its split across threads
        let kstep = kstep_for(m, k);
        let rows = in_place(m, a);
        if threads == 1 {
            return sgemm_blocks(
                m,
                n,
                k,
                a,
                b,
                (c, rs_c, cs_c),
                accumulate,
                epi,
                Plan {
                    kstep,
                    pre: Pre::None,
                    rows,
                },
            );
        }
        // Split the longer side of C into `threads` parts of whole micro-panels. The other operand
        // is needed whole by every thread: it is packed once, by all threads (each its share of its
        // panels), before the products start, rather than once per thread.
        let (c_sh, a_sh, b_sh, bias_sh) = (Shared(c), Shared(a), Shared(b), Shared(bias));
        if n >= m {
            // every thread reads all of A: packed once beforehand, or (row-major) read in place
            let panels = m.div_ceil(MR);
            let mut apack =
                scratch::take::<f32>(if rows { 0 } else { k * panels * MR + ALIGN_PAD });
            let ap = Shared(aligned(&mut apack));
            let per_pack = panels.div_ceil(threads) * MR;
            if !rows {
                rayon::scope(|s| {
                    for i0 in (0..m).step_by(per_pack) {
                        let mm = per_pack.min(m - i0);
                        s.spawn(move |_| {
                            let (a, ap) = (a_sh, ap);
                            for pc in (0..k).step_by(kstep) {
                                let kc = kstep.min(k - pc);
                                let dst = ap.0.add(pc * panels * MR + i0 * kc);
                                pack_a(mm, kc, a.0, i0, pc, dst);
                            }
                        });
                    }
                });
            }
            let pre = if rows {
                Pre::None
            } else {
                Pre::A(Shared(ap.0 as *const f32), panels)
            };
            let per = n.div_ceil(NR).div_ceil(tasks_for(threads, n.div_ceil(NR))) * NR;
            rayon::scope(|s| {
                for j0 in (0..n).step_by(per) {
                    let nn = per.min(n - j0);
                    s.spawn(move |_| {
                        let (c, a, mut b, bias) = (c_sh, a_sh, b_sh, bias_sh);
                        b.0.ptr = b.0.ptr.offset(j0 as isize * b.0.cs);
                        let c = c.0.offset(j0 as isize * cs_c);
                        let bias = if bias.0.is_null() {
                            bias.0
                        } else {
                            bias.0.add(j0)
                        };
                        let epi = Epilogue { bias, relu };
                        let c = (c, rs_c, cs_c);
                        let plan = Plan { kstep, pre, rows };
                        sgemm_blocks(m, nn, k, a.0, b.0, c, accumulate, epi, plan);
                    });
                }
            });
        } else {
            // every thread reads all of B: packed once beforehand by all threads
            let panels = n.div_ceil(NR);
            let mut bpack = scratch::take::<f32>(k * panels * NR + ALIGN_PAD);
            let bp = aligned(&mut bpack);
            pack_b_all(k, n, b, bp, kstep, threads);
            let pre = Pre::B(Shared(bp as *const f32), panels);
            let pre = Plan { kstep, pre, rows };
            sgemm_rows_split(m, n, k, a, pre, (c, rs_c, cs_c), accumulate, epi, threads);
        }
    }
}

/// Into how many tasks a product's rows or columns (`panels` micro-panels of them) are cut for
/// `threads` threads: up to four per thread while each keeps at least eight micro-panels, and
/// at least one per thread. Several per thread let rayon's work stealing even out a thread that
/// runs slow: on a shared VM one of two cores is often taken away for a while, and with one task
/// per thread the whole product then waits for the late half. Measured on MNIST MLP inference,
/// same-binary A/B against one task per thread: 0.95, 0.98 and 1.04 in three runs, so no cost
/// and a guard against such stalls. The cut changes nothing in the numbers (each element is
/// summed alike).
fn tasks_for(threads: usize, panels: usize) -> usize {
    let t = threads.max(1);
    (panels / 8).clamp(t, 4 * t).min(panels.max(1))
}

/// Packs all of B (k x n) into `dst` (`k * n.div_ceil(16) * 16` floats) in the layout of
/// [`Pre::B`] for inner blocks of `kstep`, the panels shared among `threads` threads.
///
/// # Safety
/// `b` is valid for its `k x n` strided extent and `dst` for writes of `k * n.div_ceil(16) *
/// 16` floats; the CPU has AVX2 and FMA.
unsafe fn pack_b_all(
    k: usize,
    n: usize,
    b: MatPtr<f32>,
    dst: *mut f32,
    kstep: usize,
    threads: usize,
) {
    unsafe {
        let panels = n.div_ceil(NR);
        let per_pack = panels.div_ceil(threads.max(1)) * NR;
        let (b_sh, bp) = (Shared(b), Shared(dst));
        let pack = move |j0: usize| {
            let nn = per_pack.min(n - j0);
            let (b, bp) = (b_sh, bp);
            for pc in (0..k).step_by(kstep) {
                let kc = kstep.min(k - pc);
                pack_b(kc, nn, b.0, pc, j0, bp.0.add(pc * panels * NR + j0 * kc));
            }
        };
        if per_pack >= n {
            return pack(0);
        }
        rayon::scope(|s| {
            for j0 in (0..n).step_by(per_pack) {
                s.spawn(move |_| pack(j0));
            }
        });
    }
}

/// The product with B already packed (`pre.pre` is [`Pre::B`]), the rows of C split across
/// `threads` threads by whole micro-panels.
///
/// # Safety
/// As [`sgemm`]; `pre` holds all of B packed for this product.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_rows_split(
    m: usize,
    n: usize,
    k: usize,
    a: MatPtr<f32>,
    pre: Plan,
    (c, rs_c, cs_c): (*mut f32, isize, isize),
    accumulate: bool,
    epi: Epilogue,
    threads: usize,
) {
    unsafe {
        let per = m.div_ceil(MR).div_ceil(tasks_for(threads, m.div_ceil(MR))) * MR;
        if per >= m {
            let c = (c, rs_c, cs_c);
            return sgemm_blocks(m, n, k, a, MatPtr::null(), c, accumulate, epi, pre);
        }
        let (c_sh, a_sh, bias_sh) = (Shared(c), Shared(a), Shared(epi.bias));
        let relu = epi.relu;
        rayon::scope(|s| {
            for i0 in (0..m).step_by(per) {
                let mm = per.min(m - i0);
                s.spawn(move |_| {
                    let (c, mut a, bias) = (c_sh, a_sh, bias_sh);
                    a.0.ptr = a.0.ptr.offset(i0 as isize * a.0.rs);
                    let c = c.0.offset(i0 as isize * rs_c);
                    let epi = Epilogue { bias: bias.0, relu };
                    let (b, c) = (MatPtr::null(), (c, rs_c, cs_c));
                    sgemm_blocks(mm, n, k, a.0, b, c, accumulate, epi, pre);
                });
            }
        });
    }
}

/// A right-hand operand packed once for many products: a layer's weights at inference, where
/// repacking them on every call cost 4% of a 1000 x 500 x 784 product.
pub struct PackedB {
    buf: Vec<f32>,
    start: usize,
    k: usize,
    n: usize,
    kstep: usize,
}

impl PackedB {
    /// Packs B (`k x n`), using up to `threads` threads.
    ///
    /// # Safety
    /// [`available`] must be true and `b` valid for the strided `k x n` extent it describes.
    pub unsafe fn new(k: usize, n: usize, b: MatPtr<f32>, threads: usize) -> PackedB {
        unsafe {
            let len = k * n.div_ceil(NR) * NR;
            let mut buf = Vec::<f32>::with_capacity(len + ALIGN_PAD);
            let start = (buf.as_ptr() as usize).next_multiple_of(64) - buf.as_ptr() as usize;
            let start = start / 4;
            // SAFETY (of the set_len): `pack_b_all` writes all `len` floats from `start` (zero
            // padding included); the floats before `start` are zeroed here.
            buf.as_mut_ptr().write_bytes(0, start);
            // the blocking of products with many rows (inference batches); see `kstep_for`
            let kstep = kstep_for(usize::MAX, k);
            pack_b_all(k, n, b, buf.as_mut_ptr().add(start), kstep, threads);
            buf.set_len(start + len);
            PackedB {
                buf,
                start,
                k,
                n,
                kstep,
            }
        }
    }

    /// (k, n): the inner dimension and the columns of B.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.capacity() * 4
    }
}

/// [`sgemm`] with B given packed: `C = (accumulate ? C : bias) + A (m x k) * B`, the same
/// numbers as `sgemm` with the unpacked B, bit for bit.
///
/// # Safety
/// As [`sgemm`]; `packed.dims()` is `(k, n)` of this product.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_packed(
    m: usize,
    a: MatPtr<f32>,
    packed: &PackedB,
    (c, rs_c, cs_c): (*mut f32, isize, isize),
    accumulate: bool,
    bias: *const f32,
    relu: bool,
    threads: usize,
) {
    unsafe {
        let (k, n) = packed.dims();
        if m == 0 || n == 0 {
            return;
        }
        let pre = Pre::B(
            Shared(packed.buf.as_ptr().add(packed.start)),
            n.div_ceil(NR),
        );
        let pre = Plan {
            kstep: packed.kstep,
            pre,
            rows: in_place(m, a),
        };
        let epi = Epilogue { bias, relu };
        sgemm_rows_split(m, n, k, a, pre, (c, rs_c, cs_c), accumulate, epi, threads);
    }
}

/// Whether the kernel reads A in place (see [`APanel::Rows`]) rather than from a packed copy,
/// in a product of `m` rows: when it has at least `MANY_ROWS` rows (with fewer, the copy is
/// small and read many times: in place made an MNIST MLP training epoch at batch 64 3-4% slower)
/// and A is row-major with rows that do not collide in L1 ([`rows_apart`]).
fn in_place(m: usize, a: MatPtr<f32>) -> bool {
    m >= MANY_ROWS && rows_apart(a)
}

/// Whether A is row-major and the six rows of a micro-panel fall in six different sets of a
/// 32 KiB, 8-way L1 (64 sets of 64-byte lines). A row stride of a multiple of 4 KiB (say 1024
/// or 2048 floats) puts all six in one set; they then evict each other and the B panel
/// (2048^3 measured 99 against 120 GFLOP/s packed).
fn rows_apart(a: MatPtr<f32>) -> bool {
    if a.cs != 1 || a.rs <= 0 {
        return false;
    }
    let set = |i: usize| (i * a.rs as usize * 4 / 64) % 64;
    (0..MR).all(|i| (0..i).all(|j| set(i) != set(j)))
}

/// Extra floats taken for packing buffers so that they can start on a cache line.
const ALIGN_PAD: usize = 16;

/// The first 64-byte-aligned element of `buf` (which holds [`ALIGN_PAD`] spare floats): a
/// packed B panel is `kc` rows of 64 bytes, so from an aligned start none of its 16-float loads
/// straddles two cache lines (a split load costs about two).
fn aligned(buf: &mut scratch::Scratch<f32>) -> *mut f32 {
    if buf.is_empty() {
        return buf.as_mut_ptr();
    }
    let p = buf.as_mut_ptr();
    let skip = (p as usize).next_multiple_of(64) - p as usize;
    // SAFETY (of the add): skip / 4 < 16 = ALIGN_PAD floats, inside the buffer
    unsafe { p.add(skip / 4) }
}

/// Steps of the inner dimension per block for a product with `m` rows: equal blocks of at most
/// `KC_MAX`, or of at most `KC_SMALL_M` below `MANY_ROWS` rows (see there).
fn kstep_for(m: usize, k: usize) -> usize {
    let most = if m >= MANY_ROWS { KC_MAX } else { KC_SMALL_M };
    k.div_ceil(k.div_ceil(most).max(1)).max(1)
}

/// How one thread runs its share of a product: the inner block size, what is packed already,
/// and whether A is read in place (decided once for the whole product, so that the numbers do
/// not depend on the split).
#[derive(Clone, Copy)]
struct Plan {
    kstep: usize,
    pre: Pre,
    rows: bool,
}

/// An operand packed beforehand for all threads: all of its micro-panels (the count given) for
/// each block of the inner dimension, block after block.
#[derive(Clone, Copy)]
enum Pre {
    None,
    A(Shared<*const f32>, usize),
    B(Shared<*const f32>, usize),
}

/// One thread's product (see [`sgemm`]), packing what `pre` does not hold already (`pre`
/// covers all of this product's rows of A, or all of its columns of B).
///
/// # Safety
/// As [`sgemm`]; `pre`, where given, holds what it says for this product's rows or columns.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_blocks(
    m: usize,
    n: usize,
    k: usize,
    a: MatPtr<f32>,
    b: MatPtr<f32>,
    (c, rs_c, cs_c): (*mut f32, isize, isize),
    accumulate: bool,
    epi: Epilogue,
    Plan { kstep, pre, rows }: Plan,
) {
    unsafe {
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    for j in 0..n {
                        let v = if epi.bias.is_null() {
                            0.0
                        } else {
                            *epi.bias.add(j)
                        };
                        *c.offset(i as isize * rs_c + j as isize * cs_c) =
                            if epi.relu { v.max(0.0) } else { v };
                    }
                }
            }
            return;
        }
        let own_b = !matches!(pre, Pre::B(..));
        // a row-major A is read in place by the kernel (see `APanel::Rows`)
        let own_a = !matches!(pre, Pre::A(..)) && !rows;
        let mut bbuf = scratch::take::<f32>(if own_b {
            kstep * NC.min(n).div_ceil(NR) * NR + ALIGN_PAD
        } else {
            0
        });
        let mut abuf = scratch::take::<f32>(if own_a {
            kstep * MC.min(m).div_ceil(MR) * MR + ALIGN_PAD
        } else {
            0
        });
        let (bbuf, abuf) = (aligned(&mut bbuf), aligned(&mut abuf));
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(kstep) {
                let kc = kstep.min(k - pc);
                if own_b {
                    pack_b(kc, nc, b, pc, jc, bbuf);
                }
                let add = accumulate || pc > 0;
                let bias = epi.bias;
                let with_bias = !add && !bias.is_null();
                let relu = epi.relu && pc + kc == k;
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    if own_a {
                        pack_a(mc, kc, a, ic, pc, abuf);
                    }
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        let bp = match pre {
                            Pre::B(p, panels) => p.0.add(pc * panels * NR + (jc + jr) * kc),
                            _ => bbuf.add(jr * kc),
                        };
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let ap = match pre {
                                Pre::A(p, panels) => {
                                    APanel::Packed(p.0.add(pc * panels * MR + (ic + ir) * kc))
                                }
                                _ if rows => APanel::Rows(
                                    a.ptr.offset((ic + ir) as isize * a.rs + pc as isize),
                                    a.rs,
                                ),
                                _ => APanel::Packed(abuf.add(ir * kc)),
                            };
                            let cp =
                                c.offset((ic + ir) as isize * rs_c + (jc + jr) as isize * cs_c);
                            let store = match (add, with_bias) {
                                (true, _) => Store::Add,
                                (false, false) => Store::Set,
                                (false, true) => Store::SetBias(bias.add(jc + jr)),
                            };
                            kernel(kc, ap, bp, cp, rs_c, cs_c, (store, relu), mr, nr);
                        }
                    }
                }
            }
        }
    }
}

/// Copies A[i0.., p0..] (mc x kc) into 6-row micro-panels, each stored k-major
/// (`dst[p * 6 + i]`), the last one padded with zeros.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` is valid for rows `i0..i0 + mc` and columns `p0..p0 + kc`,
/// `dst` for writes of `mc.div_ceil(6) * 6 * kc` floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(mc: usize, kc: usize, a: MatPtr<f32>, i0: usize, p0: usize, dst: *mut f32) {
    unsafe {
        let base = a.ptr.offset(i0 as isize * a.rs + p0 as isize * a.cs);
        for ip in (0..mc).step_by(MR) {
            let rows = MR.min(mc - ip);
            let d = dst.add(ip * kc);
            let src = base.offset(ip as isize * a.rs);
            if rows == MR && a.cs == 1 {
                // row-major A: six contiguous rows, transposed 8 steps of k at a time in registers
                // (two zero rows make the block square; each 8-float store overruns by two floats
                // into the next step's slot, rewritten next: at least one step is left to the
                // plain loop below, so nothing is written past the panel, which another thread
                // may be filling)
                let r: [*const f32; MR] = std::array::from_fn(|i| src.offset(i as isize * a.rs));
                let full = kc.saturating_sub(1) / 8 * 8;
                for p in (0..full).step_by(8) {
                    transpose8_regs(
                        std::array::from_fn(|i| {
                            if i < MR {
                                _mm256_loadu_ps(r[i].add(p))
                            } else {
                                _mm256_setzero_ps()
                            }
                        }),
                        d.add(p * MR),
                        MR,
                    );
                }
                for p in full..kc {
                    let o = d.add(p * MR);
                    for (i, row) in r.iter().enumerate() {
                        *o.add(i) = *row.add(p);
                    }
                }
            } else if rows == MR && a.rs == 1 {
                // column-major A (a transposed operand): each step of k is six contiguous values
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(src.offset(p as isize * a.cs), d.add(p * MR), MR);
                }
            } else {
                for p in 0..kc {
                    for i in 0..MR {
                        *d.add(p * MR + i) = if i < rows {
                            *src.offset(i as isize * a.rs + p as isize * a.cs)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Copies B[p0.., j0..] (kc x nc) into 16-column micro-panels, each stored k-major
/// (`dst[p * 16 + j]`), the last one padded with zeros.
///
/// # Safety
/// The CPU has AVX2 and FMA; `b` is valid for rows `p0..p0 + kc` and columns `j0..j0 + nc`,
/// `dst` for writes of `nc.div_ceil(16) * 16 * kc` floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(kc: usize, nc: usize, b: MatPtr<f32>, p0: usize, j0: usize, dst: *mut f32) {
    unsafe {
        let base = b.ptr.offset(p0 as isize * b.rs + j0 as isize * b.cs);
        for jp in (0..nc).step_by(NR) {
            let cols = NR.min(nc - jp);
            let d = dst.add(jp * kc);
            let src = base.offset(jp as isize * b.cs);
            if cols == NR && b.cs == 1 {
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(src.offset(p as isize * b.rs), d.add(p * NR), NR);
                }
            } else if cols == NR && b.rs == 1 {
                // B transposed (a weight matrix stored out x in): 8 x 8 blocks transposed in
                // registers, then the remaining steps of k one by one
                let full = kc / 8 * 8;
                for half in 0..2 {
                    let cols = src.offset((half * 8) as isize * b.cs);
                    for p in (0..full).step_by(8) {
                        transpose8(cols.add(p), b.cs, d.add(p * NR + half * 8), NR);
                    }
                }
                for j in 0..NR {
                    let col = src.offset(j as isize * b.cs);
                    for p in full..kc {
                        *d.add(p * NR + j) = *col.add(p);
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..NR {
                        *d.add(p * NR + j) = if j < cols {
                            *src.offset(p as isize * b.rs + j as isize * b.cs)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Writes the transpose of the 8 x 8 block at `src` (row stride `rs`) to `dst` (row stride
/// `rd`): dst[c * rd + r] = src[r * rs + c].
///
/// # Safety
/// The CPU has AVX2 and FMA; `src` is valid for 8 rows of 8 floats at stride `rs`, `dst` for
/// writes as [`transpose8_regs`] describes.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transpose8(src: *const f32, rs: isize, dst: *mut f32, rd: usize) {
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.offset(i as isize * rs)));
        transpose8_regs(r, dst, rd);
    }
}

/// Stores the transpose of the 8 x 8 block held in `r` (one row per register) to `dst`, row
/// stride `rd`, rows in increasing order: with `rd` < 8 each store overruns into the next
/// row, which the next store then overwrites, and the last one writes `8 - rd` floats past
/// `dst + 7 * rd + rd`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `dst` is valid for writes of `7 * rd + 8` floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8_regs(r: [__m256; 8], dst: *mut f32, rd: usize) {
    unsafe {
        // interleave pairs of rows, then pairs of pairs, then swap 128-bit halves
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        let out = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (c, v) in out.into_iter().enumerate() {
            _mm256_storeu_ps(dst.add(c * rd), v);
        }
    }
}

/// The 6 x 16 micro-kernel: C[0..mr, 0..nr] (+)= A-panel * B-panel over `kc` steps. Full
/// tiles of a row-major C are written from the registers; edge tiles go through a small array.
///
/// # Safety
/// The CPU has AVX2 and FMA; the panels hold `kc` steps, and C is valid for the `mr x nr` tile
/// at its strides.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn kernel(
    kc: usize,
    a: APanel,
    b: *const f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    (store, relu): (Store, bool),
    mr: usize,
    nr: usize,
) {
    unsafe {
        let wide = has_avx512();
        // A tile of at most four (two) rows runs the kernel cut to four (two) rows instead of
        // computing six and dropping the rest: a recurrent layer's blocks of 16 rows are two
        // full tiles and one of four. Every sum is the same chain of fused multiply-adds in
        // any of these kernels, so the bits do not depend on which one computed it.
        let run = |out: Out| match a {
            APanel::Packed(a) => match mr {
                ..=2 => kernel_avx2::<false, 2>(kc, [a; MR], b, out),
                3..=4 => kernel_avx2::<false, 4>(kc, [a; MR], b, out),
                _ if wide => kernel_avx512::<false>(kc, [a; MR], b, out),
                _ => kernel_avx2::<false, MR>(kc, [a; MR], b, out),
            },
            APanel::Rows(a, lda) => {
                // rows past the edge read row 0 again (in bounds); their sums are not stored
                let rows = std::array::from_fn(|i| {
                    if i < mr {
                        a.offset(i as isize * lda)
                    } else {
                        a
                    }
                });
                match mr {
                    ..=2 => kernel_avx2::<true, 2>(kc, rows, b, out),
                    3..=4 => kernel_avx2::<true, 4>(kc, rows, b, out),
                    _ if wide => kernel_avx512::<true>(kc, rows, b, out),
                    _ => kernel_avx2::<true, MR>(kc, rows, b, out),
                }
            }
        };
        if nr == NR && cs_c == 1 {
            // a tile short of rows (m not a multiple of 6) still stores its rows directly (the
            // kernel of 4 or 2 rows, or for 5 the six-row one with its last row dropped), which
            // is cheaper than storing every sum through an array and copying it out one by one
            run(Out::Direct {
                c,
                rs_c,
                rows: mr,
                store,
                relu,
            });
        } else {
            // only edge tiles need the array (zeroing it for every tile was a `memset` call per
            // kernel call, 0.6% of BERT inference)
            let mut acc = [[0f32; NR]; MR];
            run(Out::Tile(&mut acc));
            for (i, row) in acc.iter().enumerate().take(mr) {
                for (j, v) in row.iter().enumerate().take(nr) {
                    let p = c.offset(i as isize * rs_c + j as isize * cs_c);
                    let v = match store {
                        Store::Add => *p + v,
                        Store::Set => *v,
                        Store::SetBias(bias) => *v + *bias.add(j),
                    };
                    // as the relu op: positive values kept, everything else (NaN included) 0
                    *p = if !relu || v > 0.0 { v } else { 0.0 };
                }
            }
        }
    }
}

/// Where the micro-kernel reads its six rows of A.
#[derive(Clone, Copy)]
enum APanel {
    /// A packed micro-panel: step p's six values at `p * 6 ..`.
    Packed(*const f32),
    /// Six rows of a row-major A read in place (first row, row stride): the broadcasts load
    /// from six addresses instead of one, at no cost to the kernel, and A is never copied.
    Rows(*const f32, isize),
}

/// What meets the finished sums: a bias per column (null for none) and, with `relu`,
/// `max(0, .)` on the last block of the inner dimension.
#[derive(Clone, Copy)]
struct Epilogue {
    bias: *const f32,
    relu: bool,
}

/// How a tile of sums meets C.
#[derive(Clone, Copy)]
enum Store {
    /// C = sums (C is not read).
    Set,
    /// C = sums + bias, `bias` pointing at the tile's first column.
    SetBias(*const f32),
    /// C += sums.
    Add,
}

/// Where the micro-kernel puts its 6 x 16 sums.
enum Out<'a> {
    /// Into row-major C (stored, or added to what is there), its first `rows` rows: the
    /// sums of the rows past them (an edge tile's padding) are dropped.
    Direct {
        c: *mut f32,
        rs_c: isize,
        rows: usize,
        store: Store,
        relu: bool,
    },
    /// Into a small array, for edge tiles and strided destinations.
    Tile(&'a mut [[f32; NR]; MR]),
}

/// The register-blocked loop: twelve accumulators (6 rows x 2 halves of 8 columns); each step
/// loads 16 values of B, broadcasts 6 of A and issues 12 fused multiply-adds.
///
/// `ROWS`: `a` holds the six rows of A read in place (step p at `a[i] + p`); otherwise `a[0]`
/// is a packed panel (step p at `a[0] + 6 p`). `R`: the rows computed (6, or 4 or 2 for a
/// short edge tile, whose other rows' products would be thrown away).
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` and `b` hold `kc` steps in the layout `ROWS` says, and `out`
/// is valid for a 6 x 16 tile.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const ROWS: bool, const R: usize>(
    kc: usize,
    a: [*const f32; MR],
    b: *const f32,
    out: Out,
) {
    unsafe {
        if let Out::Direct { c, rs_c, rows, .. } = out {
            // the tile of C is read (added to) or written at the end: start fetching its rows now
            // (they are a row stride apart, so the hardware prefetcher would not guess them, and a
            // store that misses stalls the kernel as much as a load)
            for i in 0..rows as isize {
                let row = c.offset(i * rs_c) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(row);
                _mm_prefetch::<_MM_HINT_T0>(row.add(60));
            }
        }
        let mut c00 = _mm256_setzero_ps();
        let mut c01 = _mm256_setzero_ps();
        let mut c10 = _mm256_setzero_ps();
        let mut c11 = _mm256_setzero_ps();
        let mut c20 = _mm256_setzero_ps();
        let mut c21 = _mm256_setzero_ps();
        let mut c30 = _mm256_setzero_ps();
        let mut c31 = _mm256_setzero_ps();
        let mut c40 = _mm256_setzero_ps();
        let mut c41 = _mm256_setzero_ps();
        let mut c50 = _mm256_setzero_ps();
        let mut c51 = _mm256_setzero_ps();
        let mut b = b;
        // the value of A at row i, step p
        let at = |i: usize, p: usize| -> *const f32 {
            if ROWS {
                a[i].add(p)
            } else {
                a[0].add(p * MR + i)
            }
        };
        macro_rules! step {
            ($p:expr) => {
                let p = $p;
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                if R > 0 {
                    let x = _mm256_broadcast_ss(&*at(0, p));
                    c00 = _mm256_fmadd_ps(x, b0, c00);
                    c01 = _mm256_fmadd_ps(x, b1, c01);
                }
                if R > 1 {
                    let x = _mm256_broadcast_ss(&*at(1, p));
                    c10 = _mm256_fmadd_ps(x, b0, c10);
                    c11 = _mm256_fmadd_ps(x, b1, c11);
                }
                if R > 2 {
                    let x = _mm256_broadcast_ss(&*at(2, p));
                    c20 = _mm256_fmadd_ps(x, b0, c20);
                    c21 = _mm256_fmadd_ps(x, b1, c21);
                }
                if R > 3 {
                    let x = _mm256_broadcast_ss(&*at(3, p));
                    c30 = _mm256_fmadd_ps(x, b0, c30);
                    c31 = _mm256_fmadd_ps(x, b1, c31);
                }
                if R > 4 {
                    let x = _mm256_broadcast_ss(&*at(4, p));
                    c40 = _mm256_fmadd_ps(x, b0, c40);
                    c41 = _mm256_fmadd_ps(x, b1, c41);
                }
                if R > 5 {
                    let x = _mm256_broadcast_ss(&*at(5, p));
                    c50 = _mm256_fmadd_ps(x, b0, c50);
                    c51 = _mm256_fmadd_ps(x, b1, c51);
                }
                b = b.add(NR);
            };
        }
        let mut p = 0;
        while p + 4 <= kc {
            step!(p);
            step!(p + 1);
            step!(p + 2);
            step!(p + 3);
            p += 4;
        }
        while p < kc {
            step!(p);
            p += 1;
        }
        let rows = [
            (c00, c01),
            (c10, c11),
            (c20, c21),
            (c30, c31),
            (c40, c41),
            (c50, c51),
        ];
        match out {
            Out::Direct {
                c,
                rs_c,
                rows: mr,
                store,
                relu,
            } => {
                let zero = _mm256_setzero_ps();
                for (i, (lo, hi)) in rows.into_iter().enumerate().take(mr.min(R)) {
                    let p = c.offset(i as isize * rs_c);
                    let (lo, hi) = match store {
                        Store::Set => (lo, hi),
                        Store::SetBias(b) => (
                            _mm256_add_ps(lo, _mm256_loadu_ps(b)),
                            _mm256_add_ps(hi, _mm256_loadu_ps(b.add(8))),
                        ),
                        Store::Add => (
                            _mm256_add_ps(_mm256_loadu_ps(p), lo),
                            _mm256_add_ps(_mm256_loadu_ps(p.add(8)), hi),
                        ),
                    };
                    // max(x, 0) gives the second operand for NaN: 0, as the relu op
                    let (lo, hi) = if relu {
                        (_mm256_max_ps(lo, zero), _mm256_max_ps(hi, zero))
                    } else {
                        (lo, hi)
                    };
                    _mm256_storeu_ps(p, lo);
                    _mm256_storeu_ps(p.add(8), hi);
                }
            }
            Out::Tile(t) => {
                for (o, (lo, hi)) in t.iter_mut().zip(rows).take(R) {
                    _mm256_storeu_ps(o.as_mut_ptr(), lo);
                    _mm256_storeu_ps(o.as_mut_ptr().add(8), hi);
                }
            }
        }
    }
}

/// Whether [`kernel_avx512`] computes the tiles: the CPU has AVX-512 and
/// `FERROGRAD_NO_AVX512=1` does not keep the AVX2 kernel (to compare the two).
fn has_avx512() -> bool {
    super::simd::has_avx512()
}

/// [`kernel_avx2`] with one 512-bit register per row of the tile: six accumulators of 16
/// columns, six fused multiply-adds per step instead of twelve. The packing, the tile and the
/// order of every sum are the same (each element is one chain of fused multiply-adds over the
/// inner dimension, in increasing order), so the results are bit for bit those of the AVX2
/// kernel (tested); with two 512-bit FMA units a step takes four cycles (the chains' latency)
/// instead of six.
///
/// # Safety
/// The CPU has AVX-512F; as [`kernel_avx2`] otherwise.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_avx512<const ROWS: bool>(kc: usize, a: [*const f32; MR], b: *const f32, out: Out) {
    unsafe {
        if let Out::Direct { c, rs_c, rows, .. } = out {
            for i in 0..rows as isize {
                let row = c.offset(i * rs_c) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(row);
                _mm_prefetch::<_MM_HINT_T0>(row.add(60));
            }
        }
        let mut acc = [_mm512_setzero_ps(); MR];
        let mut b = b;
        let at = |i: usize, p: usize| -> *const f32 {
            if ROWS {
                a[i].add(p)
            } else {
                a[0].add(p * MR + i)
            }
        };
        macro_rules! step {
            ($p:expr) => {
                let p = $p;
                let bv = _mm512_loadu_ps(b);
                acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(*at(0, p)), bv, acc[0]);
                acc[1] = _mm512_fmadd_ps(_mm512_set1_ps(*at(1, p)), bv, acc[1]);
                acc[2] = _mm512_fmadd_ps(_mm512_set1_ps(*at(2, p)), bv, acc[2]);
                acc[3] = _mm512_fmadd_ps(_mm512_set1_ps(*at(3, p)), bv, acc[3]);
                acc[4] = _mm512_fmadd_ps(_mm512_set1_ps(*at(4, p)), bv, acc[4]);
                acc[5] = _mm512_fmadd_ps(_mm512_set1_ps(*at(5, p)), bv, acc[5]);
                b = b.add(NR);
            };
        }
        let mut p = 0;
        while p + 4 <= kc {
            step!(p);
            step!(p + 1);
            step!(p + 2);
            step!(p + 3);
            p += 4;
        }
        while p < kc {
            step!(p);
            p += 1;
        }
        match out {
            Out::Direct {
                c,
                rs_c,
                rows,
                store,
                relu,
            } => {
                let zero = _mm512_setzero_ps();
                for (i, v) in acc.into_iter().enumerate().take(rows) {
                    let p = c.offset(i as isize * rs_c);
                    let v = match store {
                        Store::Set => v,
                        Store::SetBias(b) => _mm512_add_ps(v, _mm512_loadu_ps(b)),
                        Store::Add => _mm512_add_ps(_mm512_loadu_ps(p), v),
                    };
                    // max(x, 0) gives the second operand for NaN: 0, as the relu op
                    let v = if relu { _mm512_max_ps(v, zero) } else { v };
                    _mm512_storeu_ps(p, v);
                }
            }
            Out::Tile(t) => {
                for (o, v) in t.iter_mut().zip(acc) {
                    _mm512_storeu_ps(o.as_mut_ptr(), v);
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn the_avx512_kernel_gives_the_avx2_kernels_bits() {
        if !is_x86_feature_detected!("avx512f") || !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        for kc in [1usize, 3, 4, 37, 128, 801] {
            let a = values(kc * MR, kc as u32);
            let b = values(kc * NR, 7 + kc as u32);
            let bias = values(NR, 99);
            // packed panel, and the same values as six rows read in place
            let rows_data: Vec<Vec<f32>> = (0..MR)
                .map(|i| (0..kc).map(|p| a[p * MR + i]).collect())
                .collect();
            let rows: [*const f32; MR] = std::array::from_fn(|i| rows_data[i].as_ptr());
            for (store_kind, relu) in [(0, false), (1, false), (1, true), (2, false), (0, true)] {
                let run = |wide: bool, packed: bool| -> Vec<u32> {
                    let mut c = values(MR * NR, 5);
                    let store = match store_kind {
                        0 => Store::Set,
                        1 => Store::SetBias(bias.as_ptr()),
                        _ => Store::Add,
                    };
                    let out = Out::Direct {
                        c: c.as_mut_ptr(),
                        rs_c: NR as isize,
                        rows: MR,
                        store,
                        relu,
                    };
                    // SAFETY: the panels hold kc steps, C a dense 6 x 16 tile; the CPU checks above
                    unsafe {
                        match (wide, packed) {
                            (true, true) => {
                                kernel_avx512::<false>(kc, [a.as_ptr(); MR], b.as_ptr(), out)
                            }
                            (false, true) => {
                                kernel_avx2::<false, MR>(kc, [a.as_ptr(); MR], b.as_ptr(), out)
                            }
                            (true, false) => kernel_avx512::<true>(kc, rows, b.as_ptr(), out),
                            (false, false) => kernel_avx2::<true, MR>(kc, rows, b.as_ptr(), out),
                        }
                    }
                    c.iter().map(|v| v.to_bits()).collect()
                };
                for packed in [true, false] {
                    assert_eq!(
                        run(true, packed),
                        run(false, packed),
                        "kc {kc}, store {store_kind}, relu {relu}"
                    );
                }
            }
            let tile = |wide: bool| {
                let mut t = [[0f32; NR]; MR];
                // SAFETY: as above
                unsafe {
                    if wide {
                        kernel_avx512::<false>(kc, [a.as_ptr(); MR], b.as_ptr(), Out::Tile(&mut t))
                    } else {
                        kernel_avx2::<false, MR>(
                            kc,
                            [a.as_ptr(); MR],
                            b.as_ptr(),
                            Out::Tile(&mut t),
                        )
                    }
                }
                t.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(tile(true), tile(false), "kc {kc}, tile");
        }
    }

    #[test]
    fn short_tiles_give_the_six_row_kernels_bits_and_leave_the_rows_past_them() {
        if !available() {
            eprintln!("skipped: no AVX2/FMA on this CPU");
            return;
        }
        for kc in [1usize, 5, 40, 128] {
            let a = values(kc * MR, 3 + kc as u32);
            let b = values(kc * NR, 11 + kc as u32);
            let bias = values(NR, 42);
            for (store_kind, relu) in [(0, false), (1, true), (2, false)] {
                for mr in 1..=MR {
                    // C has a sentinel row past the tile's `mr` rows, which no kernel may touch
                    let run = |rows_kernel: usize| -> Vec<u32> {
                        let mut c = values((MR + 1) * NR, 5);
                        c[mr * NR..].iter_mut().for_each(|v| *v = 7.5);
                        let store = match store_kind {
                            0 => Store::Set,
                            1 => Store::SetBias(bias.as_ptr()),
                            _ => Store::Add,
                        };
                        let out = Out::Direct {
                            c: c.as_mut_ptr(),
                            rs_c: NR as isize,
                            rows: mr,
                            store,
                            relu,
                        };
                        let ap = [a.as_ptr(); MR];
                        // SAFETY: the panel holds kc steps of 6 rows, C 7 dense rows of 16
                        unsafe {
                            match rows_kernel {
                                2 => kernel_avx2::<false, 2>(kc, ap, b.as_ptr(), out),
                                4 => kernel_avx2::<false, 4>(kc, ap, b.as_ptr(), out),
                                _ => kernel_avx2::<false, MR>(kc, ap, b.as_ptr(), out),
                            }
                        }
                        c.iter().map(|v| v.to_bits()).collect()
                    };
                    let six = run(MR);
                    assert!(six[mr * NR..].iter().all(|&v| v == 7.5f32.to_bits()));
                    for short in [2, 4].into_iter().filter(|&r| r >= mr) {
                        assert_eq!(run(short), six, "kc {kc}, mr {mr}, kernel of {short} rows");
                    }
                }
            }
        }
    }

    /// Row-major A (m x k) and B (k x n) in f64: C[i][j] = sum_p A[i][p] B[p][j].
    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        c
    }

    /// Deterministic values in [-1, 1] (a multiplicative hash, no RNG dependency).
    pub(in crate::cpu) fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2654435761).wrapping_add(seed);
                ((h >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn row_major(p: &[f32], cols: usize) -> MatPtr<f32> {
        MatPtr {
            ptr: p.as_ptr(),
            rs: cols as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major rows x cols matrix, stored row-major, viewed back as the
    /// original (column-major) matrix.
    fn col_major(p: &[f32], rows: usize, cols: usize) -> (Vec<f32>, usize) {
        let t = (0..rows * cols)
            .map(|x| p[(x % rows) * cols + x / rows])
            .collect();
        (t, rows)
    }

    fn close(got: f32, want: f64, k: usize) -> bool {
        (got as f64 - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs())
    }

    #[test]
    fn matches_f64_reference_for_edge_shapes_layouts_bias_and_threads() {
        if !available() {
            eprintln!("skipped: no AVX2/FMA on this CPU");
            return;
        }
        // edges in every dimension: partial micro-panels (m % 6, n % 16), several row blocks
        // (m > MC), several inner blocks (k > KC_MAX), odd k for the 8-step transposes
        for &(m, n, k) in &[
            (1, 1, 1),
            (6, 16, 1),
            (7, 17, 3),
            (13, 33, 300),
            (150, 40, 257),
            (5, 100, 20),
            (145, 9, 801),
            // many rows: A read in place (k = 300, and 801 in two blocks), edge rows
            (259, 40, 300),
            (260, 70, 801),
        ] {
            let a = values(m * k, 1);
            let b = values(k * n, 2);
            let bias = values(n, 3);
            let want = reference(m, n, k, &a, &b);
            let (at, lda) = col_major(&a, m, k);
            let (bt, ldb) = col_major(&b, k, n);
            let a_col = MatPtr {
                ptr: at.as_ptr(),
                rs: 1,
                cs: lda as isize,
            };
            let b_col = MatPtr {
                ptr: bt.as_ptr(),
                rs: 1,
                cs: ldb as isize,
            };
            for (la, lb) in [
                (row_major(&a, k), row_major(&b, n)),
                (a_col, b_col),
                (row_major(&a, k), b_col),
            ] {
                for threads in [1, 2, 3] {
                    // (accumulate, with bias): C starts as NaN when it must not be read
                    for (acc, with_bias, relu) in [
                        (false, false, false),
                        (true, false, false),
                        (false, true, false),
                        (false, true, true),
                    ] {
                        let mut c = vec![if acc { 0.5f32 } else { f32::NAN }; m * n];
                        let bp = if with_bias {
                            bias.as_ptr()
                        } else {
                            std::ptr::null()
                        };
                        unsafe {
                            let cp = c.as_mut_ptr();
                            sgemm(m, n, k, la, lb, cp, n as isize, 1, acc, bp, relu, threads);
                        }
                        for (idx, &got) in c.iter().enumerate() {
                            let extra = match (acc, with_bias) {
                                (true, _) => 0.5,
                                (false, true) => bias[idx % n] as f64,
                                _ => 0.0,
                            };
                            let w = want[idx] + extra;
                            let w = if relu { w.max(0.0) } else { w };
                            assert!(
                                close(got, w, k),
                                "{m}x{n}x{k} threads {threads} acc {acc} bias {with_bias} \
                                 at {idx}: {got} vs {w}"
                            );
                        }
                    }
                }
            }
            // a column-major destination goes through the edge-tile path everywhere
            let mut c = vec![f32::NAN; m * n];
            unsafe {
                let (la, lb, null) = (row_major(&a, k), row_major(&b, n), std::ptr::null());
                sgemm(
                    m,
                    n,
                    k,
                    la,
                    lb,
                    c.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    null,
                    false,
                    2,
                );
            }
            for i in 0..m {
                for j in 0..n {
                    assert!(close(c[j * m + i], want[i * n + j], k));
                }
            }
        }
    }

    #[test]
    fn row_major_a_is_read_in_place_unless_its_rows_collide_in_l1() {
        let a = |rs, cs| MatPtr {
            ptr: std::ptr::null::<f32>(),
            rs,
            cs,
        };
        // rows 3,136 bytes apart (MNIST's 784): six different sets; the reference test above
        // covers both kinds (k = 300 and 801 in place with 259 and 260 rows, others packed)
        assert!(rows_apart(a(784, 1)) && rows_apart(a(300, 1)) && rows_apart(a(801, 1)));
        assert!(!rows_apart(a(1024, 1)) && !rows_apart(a(2048, 1)) && !rows_apart(a(257, 1)));
        assert!(!rows_apart(a(1, 784)), "a column-major A is packed");
        assert!(
            in_place(1000, a(784, 1)) && !in_place(64, a(784, 1)),
            "few rows are packed"
        );
    }

    #[test]
    fn bit_identical_for_any_thread_count() {
        if !available() {
            return;
        }
        // wide (split by columns) and tall (split by rows)
        for (m, n, k) in [(70, 300, 600), (300, 70, 600)] {
            let a = values(m * k, 3);
            let b = values(k * n, 4);
            let run = |threads| {
                let mut c = vec![0f32; m * n];
                unsafe {
                    let (la, lb, null) = (row_major(&a, k), row_major(&b, n), std::ptr::null());
                    sgemm(
                        m,
                        n,
                        k,
                        la,
                        lb,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                        false,
                        null,
                        false,
                        threads,
                    );
                }
                c
            };
            let one = run(1);
            for t in [2, 3, 4] {
                assert!(one
                    .iter()
                    .zip(run(t))
                    .all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
    }
}
