//! im2col / col2im for 2-D convolution: unfold every receptive field of one image into a column
//! so the convolution becomes one matrix product, and fold column gradients back.

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
    #[inline]
    fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        let x = (ox * self.sw + kx * self.dw) as isize - self.pw as isize;
        (x >= 0 && (x as usize) < self.w).then_some(x as usize)
    }
}

/// `cols[(c, ky, kx), (oy, ox)] = img[c, oy*sh + ky*dh - ph, ox*sw + kx*dw - pw]` (0 in padding).
/// `img` is one dense [C, H, W] image, `cols` is [C*kh*kw, oh*ow].
pub fn im2col<T: Float>(img: &[T], g: &Window2d, cols: &mut [T]) {
    let l = g.oh * g.ow;
    let mut row = 0;
    for c in 0..g.channels {
        let plane = &img[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut cols[row * l..(row + 1) * l];
                for oy in 0..g.oh {
                    let d = &mut dst[oy * g.ow..(oy + 1) * g.ow];
                    match g.in_y(oy, ky) {
                        None => d.iter_mut().for_each(|v| *v = T::zero()),
                        Some(y) => {
                            let src = &plane[y * g.w..(y + 1) * g.w];
                            for (ox, v) in d.iter_mut().enumerate() {
                                *v = match g.in_x(ox, kx) {
                                    Some(x) => src[x],
                                    None => T::zero(),
                                };
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back to the image position it came from.
pub fn col2im_add<T: Float>(cols: &[T], g: &Window2d, img: &mut [T]) {
    let l = g.oh * g.ow;
    let mut row = 0;
    for c in 0..g.channels {
        let plane = &mut img[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let src = &cols[row * l..(row + 1) * l];
                for oy in 0..g.oh {
                    if let Some(y) = g.in_y(oy, ky) {
                        let s = &src[oy * g.ow..(oy + 1) * g.ow];
                        for (ox, &v) in s.iter().enumerate() {
                            if let Some(x) = g.in_x(ox, kx) {
                                plane[y * g.w + x] += v;
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}
