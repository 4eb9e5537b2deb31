//! Speech features from samples, as librosa computes them (its defaults named in each
//! function): frames of a centred, zero-padded signal under a periodic Hann window, the power
//! spectrum through `realfft`, a mel filterbank on the HTK or Slaney scale with Slaney's area
//! normalisation, decibels, and MFCCs by an orthonormal DCT-II. Matched against librosa by
//! `tests/fixtures/gen_librosa_features.py` (the test reads its output).

use crate::error::{Error, Result};

/// How the signal is cut into frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Framing {
    /// Samples per frame and FFT size (librosa's `n_fft`).
    pub n_fft: usize,
    /// Samples between frame starts (`hop_length`).
    pub hop: usize,
    /// Pad `n_fft / 2` zeros at both ends so frame t is centred on sample `t * hop`
    /// (`center=True, pad_mode="constant"`).
    pub center: bool,
}

/// The periodic Hann window of `n` points (`scipy.signal.get_window("hann", n)`, librosa's).
pub fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// `|STFT|^2`: one row of `n_fft / 2 + 1` powers per frame (`librosa.stft` then `abs()**2`).
pub fn power_spectrogram(samples: &[f32], f: Framing) -> Result<Vec<Vec<f64>>> {
    if f.n_fft < 2 || f.hop == 0 {
        return Err(Error::Invalid(format!(
            "spectrogram: n_fft {} must be at least 2 and hop {} positive",
            f.n_fft, f.hop
        )));
    }
    let pad = if f.center { f.n_fft / 2 } else { 0 };
    let mut x = vec![0.0f64; samples.len() + 2 * pad];
    for (o, &s) in x[pad..].iter_mut().zip(samples) {
        *o = s as f64;
    }
    if x.len() < f.n_fft {
        return Err(Error::Invalid(format!(
            "spectrogram: {} samples are fewer than one frame of {}",
            samples.len(),
            f.n_fft
        )));
    }
    let frames = 1 + (x.len() - f.n_fft) / f.hop;
    let window = hann(f.n_fft);
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(f.n_fft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut out = Vec::with_capacity(frames);
    for t in 0..frames {
        let frame = &x[t * f.hop..t * f.hop + f.n_fft];
        for ((i, &v), &w) in input.iter_mut().zip(frame).zip(&window) {
            *i = v * w;
        }
        fft.process(&mut input, &mut spectrum)
            .map_err(|e| Error::Invalid(format!("spectrogram: {e}")))?;
        out.push(spectrum.iter().map(|c| c.norm_sqr()).collect());
    }
    Ok(out)
}

/// Hertz to mels: HTK's `2595 log10(1 + f / 700)`, or Slaney's (linear below 1 kHz, 3 mels a
/// 200 Hz, logarithmic above), librosa's default.
pub fn hz_to_mel(f: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + f / 700.0).log10();
    }
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// The inverse of [`hz_to_mel`].
pub fn mel_to_hz(m: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    }
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// The mel filterbank `[n_mels][n_fft / 2 + 1]` (`librosa.filters.mel` with `norm="slaney"`):
/// triangles between `n_mels + 2` points evenly spaced in mels from `fmin` to `fmax`, each
/// scaled by `2 / (right - left)` in Hz so that every filter has the same area.
pub fn mel_filterbank(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    (fmin, fmax): (f64, f64),
    htk: bool,
) -> Result<Vec<Vec<f64>>> {
    let nyquist = sample_rate as f64 / 2.0;
    if n_mels == 0 || !(0.0..fmax).contains(&fmin) || fmax > nyquist || n_fft < 2 {
        return Err(Error::Invalid(format!(
            "mel filterbank: need n_mels > 0 and 0 <= fmin {fmin} < fmax {fmax} <= {nyquist} Hz"
        )));
    }
    let bins = n_fft / 2 + 1;
    let freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * nyquist / (bins - 1) as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
    let points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64, htk))
        .collect();
    Ok((0..n_mels)
        .map(|m| {
            let (left, centre, right) = (points[m], points[m + 1], points[m + 2]);
            let norm = 2.0 / (right - left);
            freqs
                .iter()
                .map(|&f| {
                    let lower = (f - left) / (centre - left);
                    let upper = (right - f) / (right - centre);
                    lower.min(upper).max(0.0) * norm
                })
                .collect()
        })
        .collect())
}

/// The filterbank applied to each frame's power spectrum: `[frames][n_mels]`.
pub fn mel_spectrogram(power: &[Vec<f64>], bank: &[Vec<f64>]) -> Vec<Vec<f64>> {
    power
        .iter()
        .map(|p| {
            bank.iter()
                .map(|w| w.iter().zip(p).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect()
}

/// `10 log10(max(S, 1e-10))`, then floored at `top_db` below the largest value when given
/// (`librosa.power_to_db` with `ref=1.0, amin=1e-10`; librosa's default `top_db` is 80).
pub fn power_to_db(s: &[Vec<f64>], top_db: Option<f64>) -> Vec<Vec<f64>> {
    let mut db: Vec<Vec<f64>> = s
        .iter()
        .map(|r| r.iter().map(|&v| 10.0 * v.max(1e-10).log10()).collect())
        .collect();
    if let Some(top) = top_db {
        let max = db
            .iter()
            .flatten()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        db.iter_mut().flatten().for_each(|v| *v = v.max(max - top));
    }
    db
}

/// The first `n` coefficients of the orthonormal DCT-II of each row (`scipy.fft.dct(x,
/// type=2, norm="ortho")`): `c_k = s_k sum_j x_j cos(pi k (2j + 1) / 2N)`, `s_0 = sqrt(1/N)`,
/// `s_k = sqrt(2/N)`. Applied to decibel mel spectra it gives MFCCs (`librosa.feature.mfcc`).
pub fn dct2_ortho(rows: &[Vec<f64>], n: usize) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|x| {
            let len = x.len() as f64;
            (0..n.min(x.len()))
                .map(|k| {
                    let s = if k == 0 {
                        (1.0 / len).sqrt()
                    } else {
                        (2.0 / len).sqrt()
                    };
                    s * x
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            v * (std::f64::consts::PI * k as f64 * (2 * j + 1) as f64 / (2.0 * len))
                                .cos()
                        })
                        .sum::<f64>()
                })
                .collect()
        })
        .collect()
}

/// First-order deltas along time of `[frames][coefficients]` over a window of `width` frames
/// (odd, at least 3; librosa's default 9): `librosa.feature.delta(x, width, order=1,
/// mode="interp")`, a Savitzky-Golay derivative of polynomial order 1, which is the regression
/// slope `sum_n n x[t + n] / sum_n n^2` for `n` in `-w..=w`; within `w` frames of either end
/// the slope of the first (or last) whole window is used, as the "interp" mode's fitted line
/// gives.
pub fn deltas(x: &[Vec<f64>], width: usize) -> Result<Vec<Vec<f64>>> {
    if width < 3 || width.is_multiple_of(2) || x.len() < width {
        return Err(Error::Invalid(format!(
            "deltas: width {width} must be odd, at least 3 and at most the {} frames",
            x.len()
        )));
    }
    let w = width / 2;
    let denom: f64 = (1..=w).map(|n| 2.0 * (n * n) as f64).sum();
    let slope = |t: usize, c: usize| -> f64 {
        (1..=w)
            .map(|n| n as f64 * (x[t + n][c] - x[t - n][c]))
            .sum::<f64>()
            / denom
    };
    let last = x.len() - 1 - w;
    Ok((0..x.len())
        .map(|t| {
            let centre = t.clamp(w, last);
            (0..x[t].len()).map(|c| slope(centre, c)).collect()
        })
        .collect())
}

/// Per-utterance normalisation: each coefficient shifted to mean 0 and scaled to standard
/// deviation 1 over the frames (population deviation; a constant coefficient is only
/// centred).
pub fn normalize_utterance(x: &mut [Vec<f64>]) {
    let Some(cols) = x.first().map(Vec::len) else {
        return;
    };
    let n = x.len() as f64;
    for c in 0..cols {
        let mean = x.iter().map(|r| r[c]).sum::<f64>() / n;
        let var = x.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / n;
        let scale = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
        x.iter_mut().for_each(|r| r[c] = (r[c] - mean) * scale);
    }
}
