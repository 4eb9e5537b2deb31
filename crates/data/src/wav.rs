//! WAV files through the `hound` crate: PCM of 8, 16, 24 or 32 bits and 32-bit float, any
//! number of channels (mixed down to mono by averaging each frame), any sample rate, as f32
//! samples in [-1, 1] (an integer sample is divided by 2^(bits - 1), as librosa and torchaudio
//! do). Resampling to a model's rate is the caller's. Every error names the file.

use crate::error::{Error, Result};
use std::path::Path;

/// The largest WAV file read (an hour of 48 kHz 16-bit stereo is 660 MiB).
pub const MAX_WAV: u64 = ferrograd_tensor::files::GIB;

/// Mono audio: samples in [-1, 1] at `sample_rate` per second.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    /// The length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Reads a WAV file (a regular file of at most [`MAX_WAV`] bytes).
pub fn read_wav(path: impl AsRef<Path>) -> Result<Audio> {
    let path = path.as_ref();
    let bytes = ferrograd_tensor::files::read_regular(path, MAX_WAV)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    wav_from_bytes(&bytes, path)
}

/// [`read_wav`] on the bytes of a file (`path` only names it in errors).
pub fn wav_from_bytes(bytes: &[u8], path: &Path) -> Result<Audio> {
    let bad = |msg: String| Error::file(path, msg);
    if !bytes.starts_with(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(bad("not a WAV file (no RIFF/WAVE header)".into()));
    }
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    let channels = spec.channels as usize;
    if channels == 0 || spec.sample_rate == 0 {
        return Err(bad(format!(
            "{} channels at {} Hz: nothing to read",
            spec.channels, spec.sample_rate
        )));
    }
    let declared = reader.len() as usize;
    // a header may claim more samples than the file holds: never reserve more than the bytes allow
    let room = declared.min(bytes.len() / (spec.bits_per_sample as usize / 8).max(1));
    let mut all: Vec<f32> = Vec::with_capacity(room);
    let truncated = |e: hound::Error| bad(format!("truncated or corrupt sample data: {e}"));
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in reader.samples::<f32>() {
                all.push(s.map_err(truncated)?);
            }
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.samples::<i32>() {
                all.push((s.map_err(truncated)? as f64 * scale) as f32);
            }
        }
        (format, bits) => {
            return Err(bad(format!(
                "{bits}-bit {} samples are not supported (PCM of 8, 16, 24 or 32 bits, or 32-bit float)",
                match format {
                    hound::SampleFormat::Float => "float",
                    hound::SampleFormat::Int => "integer",
                }
            )))
        }
    }
    if all.is_empty() {
        return Err(bad("holds no samples".into()));
    }
    if !all.len().is_multiple_of(channels) {
        return Err(bad(format!(
            "{} samples do not make whole frames of {channels} channels",
            all.len()
        )));
    }
    if let Some(i) = all.iter().position(|v| !v.is_finite()) {
        return Err(bad(format!("sample {i} is {}", all[i])));
    }
    let samples = if channels == 1 {
        all
    } else {
        all.chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// `audio` at `rate` samples per second, through rubato's synchronous FFT resampler (a fixed
/// ratio, anti-aliased, its delay removed by `process_all`): what a recording at another rate
/// goes through before features are taken at the model's rate. The same rate returns a copy.
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if rate == audio.sample_rate {
        return Ok(audio.clone());
    }
    let fail = |e: &dyn std::fmt::Display| {
        Error::Invalid(format!(
            "resampling {} Hz to {rate} Hz: {e}",
            audio.sample_rate
        ))
    };
    let n = audio.samples.len();
    let mut r = Fft::<f32>::new(
        audio.sample_rate as usize,
        rate as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| fail(&e))?;
    let input = InterleavedSlice::new(&audio.samples[..], 1, n).map_err(|e| fail(&e))?;
    let out = r.process_all(&input, n, None).map_err(|e| fail(&e))?;
    Ok(Audio {
        samples: out.take_data(),
        sample_rate: rate,
    })
}
