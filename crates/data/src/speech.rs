//! Spoken-digit clips (the Free Spoken Digit Dataset's layout): a folder of WAV files named
//! `{digit}_{speaker}_{take}.wav`, read, resampled to the model's rate, turned into features
//! and held as a [`Dataset`].
//!
//! Features (what the PyTorch reference uses): frames of 25 ms under a Hann window every
//! 10 ms, the power spectrum, 40 mel bands (Slaney), decibels (80 dB range), each band then
//! normalised over the clip (zero mean, unit deviation); or 13 MFCCs with their deltas and
//! delta-deltas (39 values a frame), normalised likewise.
//!
//! Lengths: a clip longer than [`MAX_CLIP_SECONDS`] is refused (it is not a spoken digit, and
//! would cost memory for nothing); every clip is cut to at most `frames` frames (centred on
//! its middle) and padded after its end with zero frames. The input of a clip is
//! `[frames, F + 1]`: its F features per frame and, last, a mask that is 1 for the clip's own
//! frames and 0 for padding, from which a recurrent model takes each clip's length.

use crate::audio_features::{
    dct2_ortho, deltas, mel_filterbank, mel_spectrogram, normalize_utterance, power_spectrogram,
    power_to_db, Framing,
};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::wav::{read_wav, resample, Audio};
use ferrograd_tensor::Tensor;
use std::path::{Path, PathBuf};

/// The longest clip accepted, in seconds (FSDD's longest is 2.28 s).
pub const MAX_CLIP_SECONDS: f64 = 10.0;
/// The sample rate features are computed at (FSDD's).
pub const SAMPLE_RATE: u32 = 8000;

/// What a file name says: `{digit}_{speaker}_{take}.wav`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClipName {
    pub digit: u8,
    pub speaker: String,
    pub take: u32,
}

/// Parses `{digit}_{speaker}_{take}.wav` (digit 0-9, a speaker name of letters, digits or
/// `-`, a take number); the error names the file.
pub fn parse_clip_name(path: &Path) -> Result<ClipName> {
    let bad = || {
        Error::file(
            path,
            "the file name is not of the form {digit}_{speaker}_{take}.wav (e.g. 7_theo_12.wav)",
        )
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let stem = name.strip_suffix(".wav").ok_or_else(bad)?;
    let mut parts = stem.split('_');
    let (Some(d), Some(s), Some(t), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let digit = match d.as_bytes() {
        [c @ b'0'..=b'9'] => c - b'0',
        _ => return Err(bad()),
    };
    let speaker_ok =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if !speaker_ok || t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let take = t.parse().map_err(|_| bad())?;
    Ok(ClipName {
        digit,
        speaker: s.to_string(),
        take,
    })
}

/// The WAV files of a folder with their names, sorted by file name. Errors: not a folder, no
/// `.wav` file, a `.wav` whose name does not parse.
pub fn list_clips(dir: &Path) -> Result<Vec<(PathBuf, ClipName)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::file(dir, format!("cannot list the folder: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let p = e
            .map_err(|e| Error::file(dir, format!("cannot list the folder: {e}")))?
            .path();
        if p.extension().is_some_and(|x| x == "wav") {
            let name = parse_clip_name(&p)?;
            out.push((p, name));
        }
    }
    if out.is_empty() {
        return Err(Error::file(dir, "holds no .wav files"));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Which features a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// 40 log-mel bands.
    LogMel,
    /// 13 MFCCs, their deltas and delta-deltas: 39 values.
    Mfcc,
}

impl FeatureKind {
    pub fn dim(self) -> usize {
        match self {
            FeatureKind::LogMel => 40,
            FeatureKind::Mfcc => 39,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            FeatureKind::LogMel => "logmel",
            FeatureKind::Mfcc => "mfcc",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "logmel" => Some(FeatureKind::LogMel),
            "mfcc" => Some(FeatureKind::Mfcc),
            _ => None,
        }
    }
}

/// The features of a clip's samples at [`SAMPLE_RATE`]: `[frames][dim]`, normalised per clip.
pub fn features(audio: &Audio, kind: FeatureKind) -> Result<Vec<Vec<f32>>> {
    let audio = if audio.sample_rate == SAMPLE_RATE {
        audio.clone()
    } else {
        resample(audio, SAMPLE_RATE)?
    };
    let framing = Framing {
        n_fft: 200,
        hop: 80,
        center: true,
    };
    let power = power_spectrogram(&audio.samples, framing)?;
    let bank = mel_filterbank(SAMPLE_RATE, framing.n_fft, 40, (0.0, 4000.0), false)?;
    let db = power_to_db(&mel_spectrogram(&power, &bank), Some(80.0));
    let mut f = match kind {
        FeatureKind::LogMel => db,
        FeatureKind::Mfcc => {
            let c = dct2_ortho(&db, 13);
            // deltas need at least as many frames as their window: short clips use a shorter one
            let width = if c.len() >= 9 { 9 } else { 3 };
            let (d1, d2) = if c.len() >= width {
                let d1 = deltas(&c, width)?;
                let d2 = deltas(&d1, width)?;
                (d1, d2)
            } else {
                let z = vec![vec![0.0; 13]; c.len()];
                (z.clone(), z)
            };
            c.into_iter()
                .zip(d1)
                .zip(d2)
                .map(|((a, b), c)| a.into_iter().chain(b).chain(c).collect())
                .collect()
        }
    };
    normalize_utterance(&mut f);
    Ok(f.into_iter()
        .map(|r| r.into_iter().map(|v| v as f32).collect())
        .collect())
}

/// One clip: its name and its features.
#[derive(Clone, Debug)]
pub struct Utterance {
    pub name: ClipName,
    pub path: PathBuf,
    pub features: Vec<Vec<f32>>,
}

/// Reads one clip and computes its features; refuses one longer than [`MAX_CLIP_SECONDS`] or
/// without a single frame of samples.
pub fn read_utterance(path: &Path, name: ClipName, kind: FeatureKind) -> Result<Utterance> {
    let audio = read_wav(path)?;
    if audio.samples.is_empty() {
        return Err(Error::file(path, "holds no samples"));
    }
    if audio.seconds() > MAX_CLIP_SECONDS {
        return Err(Error::file(
            path,
            format!(
                "is {:.1} s long; clips longer than {MAX_CLIP_SECONDS} s are refused (a spoken \
                 digit lasts about a second)",
                audio.seconds()
            ),
        ));
    }
    let features = features(&audio, kind).map_err(|e| Error::file(path, e))?;
    Ok(Utterance {
        name,
        path: path.to_path_buf(),
        features,
    })
}

/// Every clip of a folder (see [`list_clips`]), read on the thread pool.
pub fn read_folder(dir: &Path, kind: FeatureKind) -> Result<Vec<Utterance>> {
    use rayon::prelude::*;
    list_clips(dir)?
        .into_par_iter()
        .map(|(p, n)| read_utterance(&p, n, kind))
        .collect()
}

/// Which clips train and which test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeechSplit {
    /// FSDD's: takes 0-4 of every speaker test, the rest train.
    Official,
    /// Leave one speaker out: all of that speaker's clips test, everyone else's train.
    Speaker(String),
}

impl SpeechSplit {
    /// `official` or `speaker:NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "official" {
            return Ok(SpeechSplit::Official);
        }
        match s.strip_prefix("speaker:") {
            Some(n) if !n.is_empty() => Ok(SpeechSplit::Speaker(n.to_string())),
            _ => Err(Error::Invalid(format!(
                "--split {s}: expected official or speaker:NAME"
            ))),
        }
    }
    pub fn is_test(&self, n: &ClipName) -> bool {
        match self {
            SpeechSplit::Official => n.take < 5,
            SpeechSplit::Speaker(s) => &n.speaker == s,
        }
    }
}

/// Clips as a dataset of fixed-size inputs `[frames, F + 1]` (features, then the mask) and
/// digit targets.
pub struct SpeechSet {
    inputs: Vec<f32>,
    labels: Vec<i64>,
    names: Vec<ClipName>,
    frames: usize,
    dim: usize,
}

impl SpeechSet {
    /// The clips cut or padded to `frames` frames (see the module doc).
    pub fn new(utts: &[Utterance], frames: usize) -> Result<Self> {
        if frames == 0 {
            return Err(Error::Invalid(
                "speech set: frames must be at least 1".into(),
            ));
        }
        let Some(first) = utts.first() else {
            return Err(Error::Invalid("speech set: no clips".into()));
        };
        let dim = first.features.first().map_or(0, Vec::len);
        let width = dim + 1;
        let len = utts
            .len()
            .checked_mul(frames)
            .and_then(|n| n.checked_mul(width))
            .filter(|&n| {
                ferrograd_tensor::creation::physical_memory()
                    .is_none_or(|mem| (n as u64).saturating_mul(4) <= mem)
            })
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "speech set: {} clips of {frames} frames of {width} values do not fit in memory",
                    utts.len()
                ))
            })?;
        let mut inputs = vec![0f32; len];
        for (u, block) in utts.iter().zip(inputs.chunks_exact_mut(frames * width)) {
            let n = u.features.len();
            let skip = n.saturating_sub(frames) / 2;
            for (row, f) in block.chunks_exact_mut(width).zip(&u.features[skip..]) {
                if f.len() != dim {
                    return Err(Error::file(
                        &u.path,
                        "features of another width than the others",
                    ));
                }
                row[..dim].copy_from_slice(f);
                row[dim] = 1.0;
            }
        }
        Ok(SpeechSet {
            inputs,
            labels: utts.iter().map(|u| i64::from(u.name.digit)).collect(),
            names: utts.iter().map(|u| u.name.clone()).collect(),
            frames,
            dim,
        })
    }
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// Features per frame (without the mask).
    pub fn feature_dim(&self) -> usize {
        self.dim
    }
    pub fn names(&self) -> &[ClipName] {
        &self.names
    }
}

impl Dataset for SpeechSet {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        let per = self.frames * (self.dim + 1);
        let mut x = Vec::with_capacity(indices.len() * per);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.labels.len() {
                return Err(Error::Invalid(format!(
                    "speech set: index {i} out of {} clips",
                    self.labels.len()
                )));
            }
            x.extend_from_slice(&self.inputs[i * per..(i + 1) * per]);
            y.push(self.labels[i]);
        }
        Ok((
            Tensor::from_vec(x, [indices.len(), self.frames, self.dim + 1])?,
            Tensor::from_vec(y, [indices.len()])?,
        ))
    }
}

/// The frames that hold `seconds` of audio (10 ms a frame, plus the centred first).
pub fn frames_for_seconds(seconds: f64) -> usize {
    (seconds * 100.0).floor() as usize + 1
}
