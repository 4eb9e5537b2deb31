//! im2col / col2im for 2-D convolution: unfold every receptive field of one image into a column
//! so the convolution becomes one matrix product, and fold column gradients back.

use crate::cpu::scratch::{self, Scratch};
use crate::dtype::Float;

/// Geometry of a 2-D convolution or pooling window over one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Window2d {
    /// Input row of output row `oy` and kernel row `ky`, or None in the padding.
    #[inline]
    fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        let y = (oy * self.sh + ky * self.dh) as isize - self.ph as isize;
        (y >= 0 && (y as usize) < self.h).then_some(y as usize)
    }
}

impl Window2d {
    /// The output columns `[lo, hi)` whose input column for kernel column `kx` lies inside the
    /// image, and the input column of `lo`.
    #[inline]
    fn x_range(&self, kx: usize) -> (usize, usize, usize) {
        let off = (kx * self.dw) as isize - self.pw as isize; // x = ox * sw + off
        let sw = self.sw as isize;
        // smallest ox with x >= 0, and one past the largest with x < w
        let lo = if off >= 0 { 0 } else { ((-off) + sw - 1) / sw };
        let hi = if (self.w as isize) <= off {
            0
        } else {
            ((self.w as isize - off) + sw - 1) / sw
        };
        let (lo, hi) = (lo as usize, (hi as usize).min(self.ow));
        let hi = hi.max(lo.min(self.ow));
        let lo = lo.min(hi);
        (lo, hi, (lo as isize * sw + off).max(0) as usize)
    }
}

/// `cols[(c, ky, kx), (oy, ox)] = img[c, oy*sh + ky*dh - ph, ox*sw + kx*dw - pw]` (0 in padding).
/// `img` is one dense [C, H, W] image, `cols` is [C*kh*kw, oh*ow]. Each row segment is a
/// contiguous copy when the stride is 1, with the padding columns zeroed around it.
pub fn im2col<T: Float>(img: &[T], g: &Window2d, cols: &mut [T]) {
    assert!(
        cols.len() >= g.channels * g.kh * g.kw * g.oh * g.ow,
        "im2col: buffer too small"
    );
    // SAFETY: the buffer holds every row of the block (checked above).
    unsafe { im2col_strided(img, g, cols.as_mut_ptr(), g.oh * g.ow) }
}

/// [`im2col`] into rows `ld` apart: row r of this image's block starts at `cols[r * ld]`, so the
/// images of a batch can be unfolded side by side into one `[C*kh*kw, N*oh*ow]` matrix.
///
/// # Safety
/// `cols + r * ld .. + oh*ow` must be valid for writes (it need not be initialised) for every
/// row r < C*kh*kw, and no other
/// thread may access those segments meanwhile (other images' segments may be written
/// concurrently: only this image's segments are ever borrowed).
pub unsafe fn im2col_strided<T: Float>(img: &[T], g: &Window2d, cols: *mut T, ld: usize) {
    unsafe {
        if g.sw == 1 {
            return im2col_unit_stride(img, g, cols, ld);
        }
        // Raw writes only (no references into `cols`): callers may pass memory not yet
        // initialised, which this fills completely. All-zero bits are 0.0 for f32 and f64.
        let mut row = 0;
        for c in 0..g.channels {
            let plane = &img[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let (lo, hi, x0) = g.x_range(kx);
                    let dst = cols.add(row * ld);
                    for oy in 0..g.oh {
                        let d = dst.add(oy * g.ow);
                        match g.in_y(oy, ky) {
                            None => std::ptr::write_bytes(d, 0, g.ow),
                            Some(y) => {
                                std::ptr::write_bytes(d, 0, lo);
                                std::ptr::write_bytes(d.add(hi), 0, g.ow - hi);
                                let src = &plane[y * g.w..(y + 1) * g.w];
                                if g.sw == 1 {
                                    let s = &src[x0..x0 + (hi - lo)];
                                    std::ptr::copy_nonoverlapping(s.as_ptr(), d.add(lo), s.len());
                                } else {
                                    for i in 0..hi - lo {
                                        d.add(lo + i).write(src[x0 + i * g.sw]);
                                    }
                                }
                            }
                        }
                    }
                    row += 1;
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back to the image position it came from.
pub fn col2im_add<T: Float>(cols: &[T], g: &Window2d, img: &mut [T]) {
    col2im_add_strided(cols, g, img, g.oh * g.ow);
}

/// [`col2im_add`] from rows `ld` apart (the adjoint of [`im2col_strided`]).
pub fn col2im_add_strided<T: Float>(cols: &[T], g: &Window2d, img: &mut [T], ld: usize) {
    if g.sw == 1 {
        return col2im_add_unit_stride(cols, g, img, ld);
    }
    let l = g.oh * g.ow;
    let mut row = 0;
    for c in 0..g.channels {
        let plane = &mut img[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let (lo, hi, x0) = g.x_range(kx);
                let src = &cols[row * ld..row * ld + l];
                for oy in 0..g.oh {
                    if let Some(y) = g.in_y(oy, ky) {
                        let s = &src[oy * g.ow + lo..oy * g.ow + hi];
                        let dst = &mut plane[y * g.w..(y + 1) * g.w];
                        if g.sw == 1 {
                            dst[x0..x0 + s.len()]
                                .iter_mut()
                                .zip(s)
                                .for_each(|(d, &v)| *d += v);
                        } else {
                            for (i, &v) in s.iter().enumerate() {
                                dst[x0 + i * g.sw] += v;
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// The image zero-padded on every side, `[C, H + 2ph, W + 2pw]`, or the image itself when
/// there is no padding: every receptive field then lies inside it, and an unfolded row segment
/// is one plain copy of `ow` elements (no clipping, no zero fill between copies).
fn padded_image<'a, T: Float>(
    img: &'a [T],
    g: &Window2d,
    buf: &'a mut Scratch<T>,
) -> (&'a [T], usize, usize) {
    if g.ph == 0 && g.pw == 0 {
        return (img, g.h, g.w);
    }
    let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
    *buf = scratch::take(g.channels * hp * wp);
    buf.fill(T::zero());
    for c in 0..g.channels {
        for y in 0..g.h {
            let d = (c * hp + y + g.ph) * wp + g.pw;
            buf[d..d + g.w].copy_from_slice(&img[(c * g.h + y) * g.w..][..g.w]);
        }
    }
    (&buf[..], hp, wp)
}

/// Copies `n` elements, inline: the unfolded rows are 10 to 30 elements long, too short for a
/// `memcpy` call to pay off. Blocks of eight, the last one overlapping the one before (source
/// and destination are different buffers, so writing an element twice is harmless).
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `n` elements, and they do not overlap.
#[inline(always)]
unsafe fn copy_short<T: Copy>(src: *const T, dst: *mut T, n: usize) {
    unsafe {
        if n < 8 {
            for i in 0..n {
                dst.add(i).write(src.add(i).read());
            }
            return;
        }
        let mut i = 0;
        while i + 8 <= n {
            std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), 8);
            i += 8;
        }
        if i < n {
            std::ptr::copy_nonoverlapping(src.add(n - 8), dst.add(n - 8), 8);
        }
    }
}

/// [`im2col_strided`] for horizontal stride 1 (any vertical stride, dilation and padding):
/// `cols[(c, ky, kx), (oy, ox)] = padded[c, oy*sh + ky*dh, ox + kx*dw]`.
///
/// # Safety
/// As [`im2col_strided`].
unsafe fn im2col_unit_stride<T: Float>(img: &[T], g: &Window2d, cols: *mut T, ld: usize) {
    unsafe {
        let mut buf = Scratch::empty();
        let (src, hp, wp) = padded_image(img, g, &mut buf);
        // The output size guarantees (oh-1)*sh + (kh-1)*dh < hp and (ow-1) + (kw-1)*dw < wp.
        debug_assert!(g.oh == 0 || (g.oh - 1) * g.sh + (g.kh - 1) * g.dh < hp);
        debug_assert!(g.ow == 0 || g.ow - 1 + (g.kw - 1) * g.dw < wp);
        let mut row = 0;
        for c in 0..g.channels {
            let plane = src[c * hp * wp..(c + 1) * hp * wp].as_ptr();
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let (s, d) = (plane.add(ky * g.dh * wp + kx * g.dw), cols.add(row * ld));
                    for oy in 0..g.oh {
                        copy_short(s.add(oy * g.sh * wp), d.add(oy * g.ow), g.ow);
                    }
                    row += 1;
                }
            }
        }
    }
}

/// [`col2im_add_strided`] for horizontal stride 1: every row segment is added to the padded
/// image gradient (so no clipping), whose interior is then added to `img`.
fn col2im_add_unit_stride<T: Float>(cols: &[T], g: &Window2d, img: &mut [T], ld: usize) {
    let padded = g.ph != 0 || g.pw != 0;
    let (hp, wp) = (g.h + 2 * g.ph, g.w + 2 * g.pw);
    let mut buf = scratch::take(if padded { g.channels * hp * wp } else { 0 });
    buf.fill(T::zero());
    let dst: &mut [T] = if padded { &mut buf } else { img };
    let (l, ow) = (g.oh * g.ow, g.ow);
    let mut row = 0;
    for c in 0..g.channels {
        let plane = &mut dst[c * hp * wp..(c + 1) * hp * wp];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let src = &cols[row * ld..row * ld + l];
                for oy in 0..g.oh {
                    let at = (oy * g.sh + ky * g.dh) * wp + kx * g.dw;
                    plane[at..at + ow]
                        .iter_mut()
                        .zip(&src[oy * ow..(oy + 1) * ow])
                        .for_each(|(d, &v)| *d += v);
                }
                row += 1;
            }
        }
    }
    if padded {
        for c in 0..g.channels {
            for y in 0..g.h {
                let s = &buf[(c * hp + y + g.ph) * wp + g.pw..][..g.w];
                img[(c * g.h + y) * g.w..][..g.w]
                    .iter_mut()
                    .zip(s)
                    .for_each(|(d, &v)| *d += v);
            }
        }
    }
}

/// Whether [`conv_direct_f32`] takes this geometry: stride and dilation 1, rows of at least
/// eight outputs, and few inputs per output (`C*kh*kw <= 32`, such as LeNet's first layer,
/// 1 x 5 x 5), where unfolding copies each input value `kh*kw` times for a product too thin
/// to pay for it.
pub fn direct_suits(g: &Window2d) -> bool {
    cfg!(target_arch = "x86_64")
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.ow >= 8
        && g.oh > 0
        && g.channels * g.kh * g.kw <= 32
        && super::simd::has_avx2()
}

/// Direct convolution of one f32 image: `out[o, oy, ox] = b[o] + sum_{c, ky, kx}
/// w[o, c, ky, kx] * x[c, oy + ky - ph, ox + kx - pw]` (0 outside the image), `out` `[O, oh*ow]`,
/// `w` `[O, C*kh*kw]`. Six output channels by sixteen columns at a time in registers (two
/// vectors of eight, the last pair overlapping the one before), the terms added in the order
/// (c, ky, kx), one fused multiply-add each.
///
/// # Safety
/// [`direct_suits`] holds; `img` holds the `[C, H, W]` image, `w` `O * C*kh*kw` weights, `b`
/// (if any) `O` values, and `out` is valid for `O * oh*ow` writes.
#[cfg(target_arch = "x86_64")]
pub unsafe fn conv_direct_f32(
    img: &[f32],
    g: &Window2d,
    w: &[f32],
    b: Option<&[f32]>,
    outputs: usize,
    out: *mut f32,
) {
    unsafe {
        let mut buf = Scratch::empty();
        let (p, hp, wp) = padded_image(img, g, &mut buf);
        let ckk = g.channels * g.kh * g.kw;
        assert!(w.len() >= outputs * ckk && b.is_none_or(|b| b.len() >= outputs));
        let mut o0 = 0;
        while o0 < outputs {
            let rows = (outputs - o0).min(6);
            let t = DirectTile {
                p: p.as_ptr(),
                hp,
                wp,
                g: *g,
                w: w.as_ptr().add(o0 * ckk),
                b: b.map(|b| b.as_ptr().add(o0)),
                out: out.add(o0 * g.oh * g.ow),
            };
            match rows {
                6 => direct_tile::<6>(t),
                5 => direct_tile::<5>(t),
                4 => direct_tile::<4>(t),
                3 => direct_tile::<3>(t),
                2 => direct_tile::<2>(t),
                _ => direct_tile::<1>(t),
            }
            o0 += rows;
        }
    }
}

/// The padded image, geometry, and the weights, biases and output planes of up to six
/// output channels.
#[cfg(target_arch = "x86_64")]
struct DirectTile {
    p: *const f32,
    hp: usize,
    wp: usize,
    g: Window2d,
    w: *const f32,
    b: Option<*const f32>,
    out: *mut f32,
}

/// # Safety
/// The CPU has AVX2 and FMA; every pointer in `t` is valid for the rows and extents it
/// describes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn direct_tile<const R: usize>(t: DirectTile) {
    unsafe {
        use std::arch::x86_64::*;
        let g = &t.g;
        let (ckk, l) = (g.channels * g.kh * g.kw, g.oh * g.ow);
        // vector starts 0, 8, ..., the last at ow - 8; taken in pairs (an odd last one twice)
        let starts = g.ow.div_ceil(8);
        let start = |v: usize| (8 * v).min(g.ow - 8);
        for oy in 0..g.oh {
            let mut v = 0;
            while v < starts {
                let (x0, x1) = (start(v), start((v + 1).min(starts - 1)));
                let mut acc = [[_mm256_setzero_ps(); 2]; R];
                if let Some(b) = t.b {
                    for (r, a) in acc.iter_mut().enumerate() {
                        let bv = _mm256_set1_ps(*b.add(r));
                        *a = [bv, bv];
                    }
                }
                let mut tap = 0;
                for c in 0..g.channels {
                    for ky in 0..g.kh {
                        // SAFETY (reads): x1 + kx + 8 <= ow - 8 + kw - 1 + 8 = wp, inside the row
                        let row = t.p.add((c * t.hp + oy + ky) * t.wp);
                        for kx in 0..g.kw {
                            let p0 = _mm256_loadu_ps(row.add(x0 + kx));
                            let p1 = _mm256_loadu_ps(row.add(x1 + kx));
                            for (r, a) in acc.iter_mut().enumerate() {
                                let wv = _mm256_set1_ps(*t.w.add(r * ckk + tap));
                                a[0] = _mm256_fmadd_ps(wv, p0, a[0]);
                                a[1] = _mm256_fmadd_ps(wv, p1, a[1]);
                            }
                            tap += 1;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let o = t.out.add(r * l + oy * g.ow);
                    _mm256_storeu_ps(o.add(x0), a[0]);
                    _mm256_storeu_ps(o.add(x1), a[1]);
                }
                v += 2;
            }
        }
    }
}

/// Direct weight gradient of a convolution that [`direct_suits`], summed over a few images:
/// `dw[o, c, ky, kx] = sum_{images} sum_{oy, ox} gy[o, oy, ox] * x[c, oy + ky - ph, ox + kx - pw]`
/// (0 outside the image), `dw` `[O, C*kh*kw]`, each `gys[i]` image i's `[O, oh*ow]` output
/// gradient. Unfolding the input for `G X_col^T` copied each input value `kh*kw` times (LeNet's
/// first convolution: 25 rows of 784 per image) for products of only 6 x 25 outputs. Here two
/// output channels by up to five taps of one kernel row sit in ten registers; each step loads
/// eight outputs' gradients of both channels and the five shifted input vectors, ten fused
/// multiply-adds. Every element is summed in eight lanes over the images, rows and column
/// blocks in order (a last partial block masked to zero), the lanes folded as
/// [`super::fold_lanes`] does: the same numbers whatever the thread count.
///
/// # Safety
/// [`direct_suits`] holds; each `imgs[i]` holds a `[C, H, W]` image and `gys[i]` `O * oh*ow`
/// values; `dw` holds `O * C*kh*kw`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn conv_direct_dw_f32(
    imgs: &[&[f32]],
    gys: &[&[f32]],
    g: &Window2d,
    outputs: usize,
    dw: &mut [f32],
) {
    unsafe {
        let (kk, ckk, l) = (g.kh * g.kw, g.channels * g.kh * g.kw, g.oh * g.ow);
        assert!(
            imgs.len() == gys.len()
                && gys.iter().all(|v| v.len() >= outputs * l)
                && imgs.iter().all(|v| v.len() >= g.channels * g.h * g.w)
                && dw.len() >= outputs * ckk,
            "conv_direct_dw_f32: buffers too small"
        );
        // `padded` points into `bufs` (the padded copies) or into the images themselves (no
        // padding); `bufs` lives until the end so that those pointers stay valid
        let mut bufs = Vec::with_capacity(imgs.len());
        let mut padded = Vec::with_capacity(imgs.len());
        let (mut hp, mut wp) = (g.h, g.w);
        for img in imgs {
            let mut buf = Scratch::empty();
            let p;
            (p, hp, wp) = padded_image(img, g, &mut buf);
            padded.push(p.as_ptr());
            bufs.push(buf);
        }
        let gys: Vec<*const f32> = gys.iter().map(|v| v.as_ptr()).collect();
        let mut o0 = 0;
        while o0 < outputs {
            let rows = (outputs - o0).min(2);
            for c in 0..g.channels {
                for ky in 0..g.kh {
                    let mut kx0 = 0;
                    while kx0 < g.kw {
                        let taps = (g.kw - kx0).min(5);
                        let t = DwTile {
                            padded: &padded,
                            gys: &gys,
                            g: *g,
                            hp,
                            wp,
                            o0,
                            c,
                            ky,
                            kx0,
                        };
                        let sums: [[f32; 5]; 2] = match (rows, taps) {
                            (2, 5) => dw_tile::<2, 5>(t),
                            (2, 4) => dw_tile::<2, 4>(t),
                            (2, 3) => dw_tile::<2, 3>(t),
                            (2, 2) => dw_tile::<2, 2>(t),
                            (2, _) => dw_tile::<2, 1>(t),
                            (_, 5) => dw_tile::<1, 5>(t),
                            (_, 4) => dw_tile::<1, 4>(t),
                            (_, 3) => dw_tile::<1, 3>(t),
                            (_, 2) => dw_tile::<1, 2>(t),
                            _ => dw_tile::<1, 1>(t),
                        };
                        for (r, row) in sums.iter().enumerate().take(rows) {
                            let at = (o0 + r) * ckk + c * kk + ky * g.kw + kx0;
                            dw[at..at + taps].copy_from_slice(&row[..taps]);
                        }
                        kx0 += taps;
                    }
                }
            }
            o0 += rows;
        }
    }
}

/// The padded images and output gradients of [`conv_direct_dw_f32`], and which outputs and
/// taps one tile sums.
#[cfg(target_arch = "x86_64")]
struct DwTile<'a> {
    padded: &'a [*const f32],
    gys: &'a [*const f32],
    g: Window2d,
    hp: usize,
    wp: usize,
    o0: usize,
    c: usize,
    ky: usize,
    kx0: usize,
}

/// # Safety
/// The CPU has AVX2 and FMA; every pointer in `t` is valid for the rows and extents it
/// describes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dw_tile<const R: usize, const K: usize>(t: DwTile<'_>) -> [[f32; 5]; 2] {
    unsafe {
        use std::arch::x86_64::*;
        let g = &t.g;
        let (l, full) = (g.oh * g.ow, g.ow / 8 * 8);
        let rem = g.ow - full;
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // lanes below `rem` on: the last partial block's loads read nothing past its row
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem as i32), lane);
        // acc[k][r]: tap kx0 + k of output channel o0 + r
        let mut acc = [[_mm256_setzero_ps(); R]; K];
        // one block of eight columns: each shifted input vector meets both channels' gradients
        let block = |acc: &mut [[__m256; R]; K], gv: [__m256; R], pv: &dyn Fn(usize) -> __m256| {
            for (k, ak) in acc.iter_mut().enumerate() {
                let p = pv(k);
                for (a, &gr) in ak.iter_mut().zip(&gv) {
                    *a = _mm256_fmadd_ps(gr, p, *a);
                }
            }
        };
        for (&p, &gy) in t.padded.iter().zip(t.gys) {
            for oy in 0..g.oh {
                // input row oy + ky from tap kx0; stride and dilation 1, so the input column of
                // output column x and tap kx0 + k is x + kx0 + k, inside the padded row
                let row = p.add((t.c * t.hp + oy + t.ky) * t.wp + t.kx0);
                let grow: [*const f32; R] =
                    std::array::from_fn(|r| gy.add((t.o0 + r) * l + oy * g.ow));
                let mut x = 0;
                while x < full {
                    let gv = std::array::from_fn(|r| _mm256_loadu_ps(grow[r].add(x)));
                    block(&mut acc, gv, &|k| _mm256_loadu_ps(row.add(x + k)));
                    x += 8;
                }
                if rem > 0 {
                    let gv = std::array::from_fn(|r| _mm256_maskload_ps(grow[r].add(x), mask));
                    block(&mut acc, gv, &|k| _mm256_maskload_ps(row.add(x + k), mask));
                }
            }
        }
        let mut out = [[0f32; 5]; 2];
        for (k, ak) in acc.iter().enumerate() {
            for (r, &a) in ak.iter().enumerate() {
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), a);
                out[r][k] = super::fold_lanes(lanes);
            }
        }
        out
    }
}
