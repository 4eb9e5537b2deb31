//! Images for the digit models: a PNG of any size and colour type to 28 x 28 intensities in
//! [0, 1] as MNIST has them (light digit on dark).

use crate::error::{Error, Result};
use std::path::Path;

/// The most a PNG may decode to (a 4096 x 4096 RGBA image); a header claiming more is refused
/// before its pixels are allocated.
pub const MAX_PNG_BYTES: usize = 64 << 20;

/// The largest PNG file read.
const MAX_PNG_FILE: u64 = 256 << 20;

/// Decodes a PNG file into 28x28 intensities in [0, 1] (area-averaged), MNIST polarity.
pub fn load_digit_png(path: &Path) -> Result<Vec<f32>> {
    let bytes = ferrograd_tensor::files::read_regular(path, MAX_PNG_FILE)
        .map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    digit_from_png(&bytes, path)
}

/// [`load_digit_png`] on the bytes of a PNG (`path` only names it in errors).
pub fn digit_from_png(bytes: &[u8], path: &Path) -> Result<Vec<f32>> {
    let limits = png::Limits {
        bytes: MAX_PNG_BYTES,
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| Error::file(path, format!("not a readable PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .filter(|&n| n <= MAX_PNG_BYTES)
        .ok_or_else(|| {
            let (w, h) = reader.info().size();
            Error::file(
                path,
                format!("a {w} x {h} image is larger than the {MAX_PNG_BYTES} bytes a digit image may decode to"),
            )
        })?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| Error::file(path, format!("corrupt PNG data: {e}")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w == 0 || h == 0 {
        return Err(Error::file(path, "empty image"));
    }
    let ch = info.color_type.samples();
    let grey: Vec<f32> = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| {
            let v = if ch >= 3 {
                0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
            } else {
                p[0] as f32
            };
            // composite transparent pixels onto black
            let alpha = if ch == 2 || ch == 4 {
                p[ch - 1] as f32 / 255.0
            } else {
                1.0
            };
            v / 255.0 * alpha
        })
        .collect();
    let mut out = vec![0f32; 28 * 28];
    for (oy, row) in out.chunks_mut(28).enumerate() {
        let (y0, y1) = (
            oy * h / 28,
            ((oy + 1) * h).div_ceil(28).max(oy * h / 28 + 1),
        );
        for (ox, v) in row.iter_mut().enumerate() {
            let (x0, x1) = (
                ox * w / 28,
                ((ox + 1) * w).div_ceil(28).max(ox * w / 28 + 1),
            );
            let mut s = 0.0;
            for y in y0..y1.min(h) {
                for x in x0..x1.min(w) {
                    s += grey[y * w + x];
                }
            }
            *v = s / ((y1.min(h) - y0) * (x1.min(w) - x0)) as f32;
        }
    }
    // MNIST digits are light on dark: invert when the border is mostly light
    let border: f32 = (0..28)
        .flat_map(|i| [out[i], out[27 * 28 + i], out[i * 28], out[i * 28 + 27]])
        .sum::<f32>()
        / 112.0;
    if border > 0.5 {
        out.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(out)
}
