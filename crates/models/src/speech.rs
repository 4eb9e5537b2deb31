//! Spoken-digit classifiers over frames of speech features (`ferrograd_data::speech`): an input
//! `[B, T, F + 1]` holds F features a frame and, last, a mask that is 1 on the clip's own frames.
//!
//! - `lstm` / `gru`: a 2-layer recurrent network of 128 over the clip's own frames (packed by
//!   the lengths the mask gives), its outputs averaged over those frames, then a linear layer
//!   to the 10 digits. PyTorch's equivalent: `nn.LSTM(F, 128, 2, batch_first=True)` on a packed
//!   sequence, `rnn.*` and `fc.*` in the state_dict.
//! - `cnn`: three 3x3 convolutions (16, 32, 64 channels, padding 1), each followed by ReLU and
//!   2x2 max pooling, over the features as a one-channel image `[F, T]`, then a linear layer
//!   from the flattened maps to the 10 digits; the mask is not used (the clip is padded with
//!   zero frames).

use ferrograd_nn::{
    module::join, Conv2d, Error, Forward, Linear, Module, Result, RngStream, RnnOptions, GRU, LSTM,
};
use ferrograd_tensor::{Conv2dOptions, Pool2dOptions, Rng, Tensor};
use std::collections::HashMap;

/// The most frames an input holds: 10 s of 10 ms frames, the longest clip read.
pub const MAX_FRAMES: usize = 1001;

/// The architectures `ferrograd speech` trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeechArch {
    Lstm,
    Gru,
    Cnn,
}

impl SpeechArch {
    pub fn name(self) -> &'static str {
        match self {
            SpeechArch::Lstm => "lstm",
            SpeechArch::Gru => "gru",
            SpeechArch::Cnn => "cnn",
        }
    }
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "lstm" => Some(SpeechArch::Lstm),
            "gru" => Some(SpeechArch::Gru),
            "cnn" => Some(SpeechArch::Cnn),
            _ => None,
        }
    }
}

/// What a speech model is built from, kept in its weights file's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeechConfig {
    pub arch: SpeechArch,
    /// Features per frame (without the mask).
    pub features: usize,
    /// The name of the feature kind (`logmel`, `mfcc`).
    pub feature_kind: String,
    /// Frames per clip the input holds.
    pub frames: usize,
    pub hidden: usize,
    pub layers: usize,
    /// Dropout between recurrent layers, in training.
    pub dropout: f64,
    pub classes: usize,
}

impl SpeechConfig {
    /// The metadata entries of a weights file.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let cfg = serde_json::json!({
            "arch": self.arch.name(), "features": self.features, "feature_kind": self.feature_kind,
            "frames": self.frames, "hidden": self.hidden, "layers": self.layers,
            "dropout": self.dropout, "classes": self.classes,
        });
        HashMap::from([
            ("format".to_string(), "ferrograd-speech".to_string()),
            ("config".to_string(), cfg.to_string()),
        ])
    }

    /// The configuration a weights file's metadata describes; the error says what is missing
    /// or out of range.
    pub fn from_metadata(md: &HashMap<String, String>) -> std::result::Result<Self, String> {
        if md.get("format").map(String::as_str) != Some("ferrograd-speech") {
            return Err("not a speech model (no format ferrograd-speech in the metadata: written by `ferrograd speech train`?)".into());
        }
        let cfg: serde_json::Value =
            serde_json::from_str(md.get("config").ok_or("no config in the metadata")?)
                .map_err(|e| format!("config metadata: {e}"))?;
        let num = |k: &str, most: usize| -> std::result::Result<usize, String> {
            let v = cfg[k]
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or(format!("no {k} in the config metadata"))?;
            if v == 0 || v > most {
                return Err(format!(
                    "{k} {v} in the config metadata is outside 1..={most}"
                ));
            }
            Ok(v)
        };
        let arch = cfg["arch"]
            .as_str()
            .and_then(SpeechArch::from_name)
            .ok_or("no known arch (lstm, gru, cnn) in the config metadata")?;
        Ok(SpeechConfig {
            arch,
            features: num("features", 1024)?,
            feature_kind: cfg["feature_kind"].as_str().unwrap_or("logmel").to_string(),
            frames: num("frames", MAX_FRAMES)?,
            hidden: num("hidden", 8192)?,
            layers: num("layers", 16)?,
            dropout: cfg["dropout"]
                .as_f64()
                .filter(|d| (0.0..1.0).contains(d))
                .unwrap_or(0.0),
            classes: num("classes", 100_000)?,
        })
    }
}

enum Rnn {
    Lstm(LSTM),
    Gru(GRU),
}

/// A recurrent classifier averaged over each clip's frames.
pub struct SpeechRnn {
    rnn: Rnn,
    fc: Linear,
    features: usize,
}

/// The three-layer CNN.
pub struct SpeechCnn {
    conv: [Conv2d; 3],
    fc: Linear,
    features: usize,
    frames: usize,
    training: bool,
}

/// Either model, as one [`Forward`] from `[B, T, F + 1]` to logits `[B, classes]`.
pub enum SpeechModel {
    Rnn(SpeechRnn),
    Cnn(SpeechCnn),
}

impl SpeechModel {
    pub fn new(c: &SpeechConfig, rng: &mut Rng) -> Result<Self> {
        // The weights alone, before any allocation: a size that could never be held is refused
        // here rather than after gigabytes of layers have been built.
        let (h, f) = (c.hidden as u128, c.features as u128);
        let weights = match c.arch {
            SpeechArch::Lstm | SpeechArch::Gru => {
                let g = if c.arch == SpeechArch::Lstm { 4 } else { 3 };
                g * h * (f + h + 2) + (c.layers as u128).saturating_sub(1) * g * h * (2 * h + 2)
            }
            SpeechArch::Cnn => 64 * (f / 8) * (c.frames as u128 / 8) * c.classes as u128,
        } + h * c.classes as u128;
        if let Some(mem) = ferrograd_tensor::creation::physical_memory() {
            // the weights, their gradients and Adam's two moments
            let bytes = weights.saturating_mul(16);
            if bytes > mem as u128 {
                return Err(Error::invalid(
                    "speech model",
                    format!(
                        "{} layers of {} with {} features make {weights} weights, whose training needs {} bytes, more than this machine's {} of memory",
                        c.layers,
                        c.hidden,
                        c.features,
                        bytes,
                        ferrograd_tensor::files::human_size(mem)
                    ),
                ));
            }
        }
        match c.arch {
            SpeechArch::Lstm | SpeechArch::Gru => {
                let opt = RnnOptions {
                    num_layers: c.layers,
                    batch_first: true,
                    dropout: c.dropout,
                    ..RnnOptions::default()
                };
                let rnn = if c.arch == SpeechArch::Lstm {
                    Rnn::Lstm(LSTM::new(c.features, c.hidden, opt, rng)?)
                } else {
                    Rnn::Gru(GRU::new(c.features, c.hidden, opt, rng)?)
                };
                Ok(SpeechModel::Rnn(SpeechRnn {
                    rnn,
                    fc: Linear::new(c.hidden, c.classes, rng)?,
                    features: c.features,
                }))
            }
            SpeechArch::Cnn => {
                let pad = Conv2dOptions {
                    padding: (1, 1),
                    ..Default::default()
                };
                let conv = [
                    Conv2d::new(1, 16, 3, pad, rng)?,
                    Conv2d::new(16, 32, 3, pad, rng)?,
                    Conv2d::new(32, 64, 3, pad, rng)?,
                ];
                let (h, w) = (c.features / 8, c.frames / 8);
                if h == 0 || w == 0 {
                    return Err(Error::invalid(
                        "speech cnn",
                        format!(
                            "needs at least 8 features and 8 frames (three 2x2 poolings), got {} and {}",
                            c.features, c.frames
                        ),
                    ));
                }
                Ok(SpeechModel::Cnn(SpeechCnn {
                    conv,
                    fc: Linear::new(64 * h * w, c.classes, rng)?,
                    features: c.features,
                    frames: c.frames,
                    training: true,
                }))
            }
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let f = match self {
            SpeechModel::Rnn(m) => m.features,
            SpeechModel::Cnn(m) => m.features,
        };
        if x.rank() != 3 || x.dims()[2] != f + 1 || x.dims()[1] == 0 {
            return Err(Error::invalid(
                "speech model",
                format!(
                    "expects input [batch, frames, {} features + mask], got {:?}",
                    f,
                    x.dims()
                ),
            ));
        }
        Ok(())
    }
}

/// Each clip's length: its mask's sum (at least 1 frame, so that an empty clip averages
/// its first padded frame rather than dividing by 0).
fn lengths_of(mask: &Tensor) -> Result<Vec<usize>> {
    let m = mask.sum(&[1], false)?.to_vec_f64();
    Ok(m.into_iter().map(|v| (v.round() as usize).max(1)).collect())
}

impl Forward for SpeechModel {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        match self {
            SpeechModel::Rnn(m) => {
                let f = m.features;
                let feats = x.narrow(2, 0, f)?.contiguous()?;
                let mask = x
                    .narrow(2, f, 1)?
                    .contiguous()?
                    .reshape([x.dims()[0], x.dims()[1]])?;
                let lengths = lengths_of(&mask)?;
                let out = match &m.rnn {
                    Rnn::Lstm(r) => r.forward_with(&feats, None, Some(&lengths))?,
                    Rnn::Gru(r) => r.forward_with(&feats, None, Some(&lengths))?,
                };
                // outputs past a clip's length are 0: the sum over all frames is the sum over its own
                let n: Vec<f32> = lengths.iter().map(|&l| 1.0 / l as f32).collect();
                let inv = Tensor::from_vec(n, [lengths.len(), 1])?;
                let mean = out.output.sum(&[1], false)?.mul(&inv)?;
                m.fc.forward(&mean)
            }
            SpeechModel::Cnn(m) => {
                let (b, t) = (x.dims()[0], x.dims()[1]);
                if t != m.frames {
                    return Err(Error::invalid(
                        "speech cnn",
                        format!("was built for {} frames, got {t}", m.frames),
                    ));
                }
                // [B, T, F] -> [B, 1, F, T]
                let mut h = x
                    .narrow(2, 0, m.features)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape([b, 1, m.features, t])?;
                for c in &m.conv {
                    h = c.forward(&h)?.max_pool2d(Pool2dOptions::new(2))?.relu()?;
                }
                m.fc.forward(&h.flatten(1, -1)?)
            }
        }
    }
}

impl Module for SpeechModel {
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        match self {
            SpeechModel::Rnn(m) => {
                match &m.rnn {
                    Rnn::Lstm(r) => r.visit_parameters(&join(prefix, "rnn"), f),
                    Rnn::Gru(r) => r.visit_parameters(&join(prefix, "rnn"), f),
                }
                m.fc.visit_parameters(&join(prefix, "fc"), f);
            }
            SpeechModel::Cnn(m) => {
                for (i, c) in m.conv.iter().enumerate() {
                    c.visit_parameters(&join(prefix, &format!("conv{}", i + 1)), f);
                }
                m.fc.visit_parameters(&join(prefix, "fc"), f);
            }
        }
    }
    fn visit_rng_streams(&self, prefix: &str, f: &mut dyn FnMut(&str, &RngStream)) {
        if let SpeechModel::Rnn(m) = self {
            match &m.rnn {
                Rnn::Lstm(r) => r.visit_rng_streams(&join(prefix, "rnn"), f),
                Rnn::Gru(r) => r.visit_rng_streams(&join(prefix, "rnn"), f),
            }
        }
    }
    fn set_training(&mut self, training: bool) {
        match self {
            SpeechModel::Rnn(m) => match &mut m.rnn {
                Rnn::Lstm(r) => r.set_training(training),
                Rnn::Gru(r) => r.set_training(training),
            },
            SpeechModel::Cnn(m) => {
                m.training = training;
                m.conv.iter_mut().for_each(|c| c.set_training(training));
                m.fc.set_training(training);
            }
        }
    }
    fn is_training(&self) -> bool {
        match self {
            SpeechModel::Rnn(m) => match &m.rnn {
                Rnn::Lstm(r) => r.is_training(),
                Rnn::Gru(r) => r.is_training(),
            },
            SpeechModel::Cnn(m) => m.training,
        }
    }
}
