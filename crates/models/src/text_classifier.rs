//! A text classifier on a pretrained encoder, as `ferrograd finetune` writes it: what its
//! weights file records besides the tensors (classes, pooling, length, LoRA settings), loading it
//! back onto the base model, and predicting classes in batches sorted by length.

use crate::bert::{Bert, BertClassifier, Pooling};
use ferrograd_data::subword::pad_batch;
use ferrograd_nn::serialize::load_tensors;
use ferrograd_nn::{load_state_dict_partial, Error, Module, Result};
use ferrograd_tensor::{no_grad, Rng};
use std::collections::HashMap;
use std::path::Path;

/// LoRA adapters' settings: rank, alpha, the layers adapted (by name suffix).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraSettings {
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
}

/// What a classifier's weights file records in its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierInfo {
    pub classes: Vec<String>,
    pub pooling: Pooling,
    pub max_len: usize,
    /// `full`, `linear-probe` or `lora` (what the file's tensors cover).
    pub mode: String,
    pub lora: Option<LoraSettings>,
}

impl Pooling {
    pub fn parse(s: &str) -> Result<Pooling> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            _ => Err(Error::invalid(
                "Pooling",
                format!("--pooling must be mean or cls, got {s:?}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

impl ClassifierInfo {
    /// The safetensors metadata (`format: pt` and `ferrograd.*` keys); `base` names the encoder.
    pub fn metadata(&self, base: &Path) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), "pt".into());
        m.insert("ferrograd.task".into(), "sequence-classification".into());
        m.insert("ferrograd.mode".into(), self.mode.clone());
        m.insert(
            "ferrograd.classes".into(),
            serde_json::json!(self.classes).to_string(),
        );
        m.insert("ferrograd.pooling".into(), self.pooling.name().into());
        m.insert("ferrograd.max_len".into(), self.max_len.to_string());
        m.insert("ferrograd.base".into(), base.display().to_string());
        if let Some(l) = &self.lora {
            m.insert("ferrograd.lora_rank".into(), l.rank.to_string());
            m.insert("ferrograd.lora_alpha".into(), l.alpha.to_string());
            m.insert("ferrograd.lora_targets".into(), l.targets.join(","));
        }
        m
    }

    /// Reads [`ClassifierInfo::metadata`] back; `path` names the file in errors.
    pub fn from_metadata(md: &HashMap<String, String>, path: &Path) -> Result<Self> {
        let get = |k: &str| {
            md.get(k).cloned().ok_or_else(|| {
                Error::file(
                    path,
                    format!("not a ferrograd classifier (no {k} in its metadata)"),
                )
            })
        };
        let bad = |k: &str, e: &dyn std::fmt::Display| {
            Error::file(path, format!("bad {k} in the metadata: {e}"))
        };
        let classes: Vec<String> =
            serde_json::from_str(&get("ferrograd.classes")?).map_err(|e| bad("class list", &e))?;
        let mut distinct = classes.clone();
        distinct.sort();
        distinct.dedup();
        if classes.len() < 2 || distinct.len() != classes.len() {
            return Err(bad(
                "class list",
                &format!("{classes:?} (a classifier needs two or more distinct classes)"),
            ));
        }
        let max_len: usize = get("ferrograd.max_len")?
            .parse()
            .map_err(|e| bad("max_len", &e))?;
        if !(2..=1 << 16).contains(&max_len) {
            return Err(bad("max_len", &format!("{max_len} (not in 2..=65536)")));
        }
        let lora = match md.get("ferrograd.lora_rank") {
            Some(r) => Some(LoraSettings {
                rank: r.parse().map_err(|e| bad("lora_rank", &e))?,
                alpha: get("ferrograd.lora_alpha")?
                    .parse()
                    .map_err(|e| bad("lora_alpha", &e))?,
                targets: get("ferrograd.lora_targets")?
                    .split(',')
                    .map(str::to_string)
                    .collect(),
            }),
            None => None,
        };
        if let Some(l) = &lora {
            if !(1..=4096).contains(&l.rank) || !l.alpha.is_finite() || l.alpha <= 0.0 {
                return Err(bad(
                    "LoRA settings",
                    &format!(
                        "rank {} and alpha {} (rank 1 to 4096, alpha > 0)",
                        l.rank, l.alpha
                    ),
                ));
            }
        }
        Ok(ClassifierInfo {
            classes,
            pooling: Pooling::parse(&get("ferrograd.pooling")?)
                .map_err(|e| Error::file(path, e))?,
            max_len,
            mode: md
                .get("ferrograd.mode")
                .cloned()
                .unwrap_or_else(|| "full".into()),
            lora,
        })
    }
}

/// Rebuilds a classifier from `ferrograd finetune` output: the base model from `base`, adapters
/// when the file has them, then the file's tensors (all of them must fit the model).
pub fn load_classifier(base: &Path, weights: &Path) -> Result<(BertClassifier, ClassifierInfo)> {
    let (saved, meta) = load_tensors(weights)?;
    ferrograd_nn::serialize::require_finite(weights, &saved)?;
    let info = ClassifierInfo::from_metadata(&meta, weights)?;
    let mut bert = Bert::from_pretrained(base)?;
    if let Some(l) = &info.lora {
        bert.attach_lora(&l.targets, l.rank, l.alpha, &mut Rng::new(0))?;
    }
    let mut model = BertClassifier::new(
        bert,
        info.classes.len(),
        info.pooling,
        0.0,
        &mut Rng::new(0),
    )?;
    load_state_dict_partial(&model, &saved).map_err(|e| Error::file(weights, e))?;
    model.eval();
    Ok((model, info))
}

/// Predicted classes of token id lists, in batches of `batch` sorted by length (so that padding
/// stays small), returned in the input order.
pub fn predict_classes(
    model: &BertClassifier,
    ids: &[Vec<u32>],
    batch: usize,
) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![0usize; ids.len()];
    for chunk in order.chunks(batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let b =
            pad_batch(&seqs, 0).map_err(|e| Error::invalid("predict_classes", e.to_string()))?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask))?;
        let am = logits.argmax(-1, false)?.to_vec::<i64>()?;
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = am[row] as usize;
        }
    }
    Ok(out)
}
