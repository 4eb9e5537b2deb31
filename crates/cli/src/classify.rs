//! `ferrograd classify`: runs a classifier written by `ferrograd finetune` on new text.

use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_data::SubwordTokenizer;
use ferrograd_models::text_classifier::load_classifier;
use ferrograd_tensor::{no_grad, DType};
use ferrograd_train::{Result, TrainError};
use std::path::PathBuf;

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

pub fn run_classify(a: &ClassifyArgs) -> Result<()> {
    if a.texts.is_empty() {
        return Err(TrainError::config("no texts to classify"));
    }
    crate::embed::require_weights(&a.model)?;
    let (model, info) = load_classifier(&a.model, &a.weights)?;
    let tok = SubwordTokenizer::from_file(a.model.join("tokenizer.json"), info.max_len)?;
    for t in &a.texts {
        let b = tok.encode_batch(&[t])?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask))?;
        let p = logits.softmax(-1)?.to_dtype(DType::F64)?.to_vec::<f64>()?;
        let (best, prob) =
            p.iter()
                .enumerate()
                .fold((0, f64::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        println!("{}\t{:.4}\t{t}", info.classes[best], prob);
    }
    Ok(())
}
