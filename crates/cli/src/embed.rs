//! `ferrograd embed` and `ferrograd similarity`: sentence embeddings from a pretrained BERT-style
//! sentence Transformer (all-MiniLM-L6-v2): tokenise (truncation at 256, padding per batch),
//! encode, mean-pool over the attention mask, L2-normalise.

use clap::Args;
use ferrograd_models::sentence::{cosine, SentenceEncoder};
use ferrograd_nn::serialize::{save_tensors, write_atomic};
use ferrograd_tensor::Tensor;
use ferrograd_train::{Result, TrainError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const DEFAULT_MODEL: &str = "models/all-MiniLM-L6-v2";

#[derive(Args, Clone, Debug)]
pub struct EmbedArgs {
    /// Sentences to embed (or use --input)
    pub sentences: Vec<String>,
    /// Model folder with config.json, model.safetensors and tokenizer.json
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// A text file with one sentence per line
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write here instead of stdout: `.safetensors` (tensor `embeddings` [N, dim]) or JSON lines
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Tokens kept per sentence, special tokens included
    #[arg(long, default_value_t = 256)]
    pub max_len: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Clone, Debug)]
pub struct SimilarityArgs {
    /// First sentence
    pub a: String,
    /// Second sentence
    pub b: String,
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 256)]
    pub max_len: usize,
}

/// Errors, saying how to fetch them, when a model folder has no weights.
pub fn require_weights(dir: &Path) -> Result<()> {
    if dir.join("model.safetensors").exists() {
        Ok(())
    } else {
        Err(TrainError::file(
            dir,
            "no model.safetensors here (scripts/fetch-minilm.sh fetches all-MiniLM-L6-v2)",
        ))
    }
}

pub fn run_embed(a: &EmbedArgs) -> Result<()> {
    let mut texts = a.sentences.clone();
    if let Some(p) = &a.input {
        let bytes =
            std::fs::read(p).map_err(|e| TrainError::file(p, format!("cannot read: {e}")))?;
        let s = String::from_utf8(bytes)
            .map_err(|e| TrainError::file(p, format!("not UTF-8 text: {e}")))?;
        texts.extend(s.lines().map(str::to_string));
    }
    if texts.is_empty() {
        return Err(TrainError::config(
            "no sentences: give them as arguments or with --input FILE",
        ));
    }
    require_weights(&a.model)?;
    let enc = SentenceEncoder::load(&a.model, a.max_len)?;
    let emb = enc.embed(&texts, a.batch_size)?;
    match &a.output {
        Some(p) if p.extension().is_some_and(|e| e == "safetensors") => {
            let dim = enc.model.config.hidden_size;
            let flat: Vec<f32> = emb.concat();
            let t = Tensor::from_vec(flat, [texts.len(), dim])?;
            let mut m = BTreeMap::new();
            m.insert("embeddings".to_string(), t);
            let meta = [(
                "sentences".to_string(),
                serde_json::to_string(&texts).map_err(|e| TrainError::config(e.to_string()))?,
            )]
            .into_iter()
            .collect();
            save_tensors(p, &m, Some(meta))?;
            eprintln!(
                "{} embeddings of dimension {dim} written to {}",
                texts.len(),
                p.display()
            );
        }
        out => {
            let mut s = String::new();
            for (t, e) in texts.iter().zip(&emb) {
                let line = serde_json::json!({ "text": t, "embedding": e });
                s.push_str(&line.to_string());
                s.push('\n');
            }
            match out {
                Some(p) => {
                    write_atomic(p, s.as_bytes())?;
                    eprintln!("{} embeddings written to {}", texts.len(), p.display());
                }
                None => print!("{s}"),
            }
        }
    }
    Ok(())
}

pub fn run_similarity(a: &SimilarityArgs) -> Result<()> {
    require_weights(&a.model)?;
    let enc = SentenceEncoder::load(&a.model, a.max_len)?;
    let emb = enc.embed(&[a.a.clone(), a.b.clone()], 2)?;
    println!("{:.6}", cosine(&emb[0], &emb[1]));
    Ok(())
}
