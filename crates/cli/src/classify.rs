//! `ferrograd classify`: runs a classifier written by `ferrograd finetune` on new text.

use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_data::SubwordTokenizer;
use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::Bert;
use ferrograd_nn::serialize::load_tensors;
use ferrograd_nn::{state_dict, Module};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Clone, Debug)]
pub struct ClassifyArgs {
    /// Texts to classify
    pub texts: Vec<String>,
    /// The weights `ferrograd finetune` wrote
    #[arg(long)]
    pub weights: PathBuf,
    /// The pretrained model folder the classifier was trained from
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn parse_pooling(s: &str) -> Result<Pooling, String> {
    match s {
        "mean" => Ok(Pooling::Mean),
        "cls" => Ok(Pooling::Cls),
        _ => Err(format!("--pooling must be mean or cls, got {s:?}")),
    }
}

/// Copies the tensors of `saved` into the model's tensors of the same names; every saved tensor
/// must exist in the model with its shape.
fn load_partial(model: &dyn Module, saved: &BTreeMap<String, Tensor>) -> Result<(), String> {
    let own = state_dict(model);
    let mut problems = Vec::new();
    for (k, v) in saved {
        match own.get(k) {
            None => problems.push(format!("unexpected tensor {k}")),
            Some(t) if t.dims() != v.dims() => problems.push(format!(
                "{k}: expected shape {:?}, got {:?}",
                t.dims(),
                v.dims()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    for (k, v) in saved {
        let v = if v.dtype() != own[k].dtype() {
            v.to_dtype(own[k].dtype()).map_err(err)?
        } else {
            v.clone()
        };
        own[k].copy_from(&v).map_err(err)?;
    }
    Ok(())
}

/// Rebuilds a classifier from `ferrograd finetune` output: the base model, adapters when the
/// file has them, then the saved tensors.
pub fn load_classifier(
    base: &Path,
    weights: &Path,
) -> Result<(BertClassifier, Vec<String>, usize), String> {
    let (saved, meta) = load_tensors(weights).map_err(err)?;
    let get = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| {
            format!(
                "{}: not a ferrograd classifier (no {k} in its metadata)",
                weights.display()
            )
        })
    };
    let classes: Vec<String> = serde_json::from_str(&get("ferrograd.classes")?)
        .map_err(|e| format!("{}: bad class list: {e}", weights.display()))?;
    let pooling = parse_pooling(&get("ferrograd.pooling")?)?;
    let max_len: usize = get("ferrograd.max_len")?.parse().map_err(err)?;
    let mut bert = Bert::from_pretrained(base).map_err(err)?;
    if let Some(r) = meta.get("ferrograd.lora_rank") {
        let r: usize = r.parse().map_err(err)?;
        let alpha: f64 = get("ferrograd.lora_alpha")?.parse().map_err(err)?;
        let targets: Vec<String> = get("ferrograd.lora_targets")?
            .split(',')
            .map(str::to_string)
            .collect();
        bert.attach_lora(&targets, r, alpha, &mut Rng::new(0))
            .map_err(err)?;
    }
    let mut model =
        BertClassifier::new(bert, classes.len(), pooling, 0.0, &mut Rng::new(0)).map_err(err)?;
    load_partial(&model, &saved).map_err(|e| format!("{}: {e}", weights.display()))?;
    model.eval();
    Ok((model, classes, max_len))
}

pub fn run_classify(a: &ClassifyArgs) -> Result<(), String> {
    if a.texts.is_empty() {
        return Err("no texts to classify".into());
    }
    let (model, classes, max_len) = load_classifier(&a.model, &a.weights)?;
    let tok = SubwordTokenizer::from_file(a.model.join("tokenizer.json"), max_len).map_err(err)?;
    for t in &a.texts {
        let b = tok.encode_batch(&[t]).map_err(err)?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask)).map_err(err)?;
        let p = logits.softmax(-1).map_err(err)?;
        let p = p
            .to_dtype(DType::F64)
            .map_err(err)?
            .to_vec::<f64>()
            .map_err(err)?;
        let (best, prob) =
            p.iter()
                .enumerate()
                .fold((0, f64::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        println!("{}\t{:.4}\t{t}", classes[best], prob);
    }
    Ok(())
}
