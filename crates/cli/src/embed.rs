//! `ferrograd embed` and `ferrograd similarity`: sentence embeddings from a pretrained BERT-style
//! sentence Transformer (all-MiniLM-L6-v2): tokenise (truncation at 256, padding per batch),
//! encode, mean-pool over the attention mask, L2-normalise.

use clap::Args;
use ferrograd_data::subword::pad_batch;
use ferrograd_data::SubwordTokenizer;
use ferrograd_models::Bert;
use ferrograd_nn::serialize::{save_tensors, write_atomic};
use ferrograd_nn::Module;
use ferrograd_tensor::{no_grad, Tensor};
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
pub fn require_weights(dir: &Path) -> Result<(), String> {
    if dir.join("model.safetensors").exists() {
        Ok(())
    } else {
        Err(format!(
            "{}: no model.safetensors here (scripts/fetch-minilm.sh fetches all-MiniLM-L6-v2)",
            dir.display()
        ))
    }
}

/// A sentence-embedding model and its tokenizer.
pub struct SentenceEncoder {
    pub model: Bert,
    pub tok: SubwordTokenizer,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl SentenceEncoder {
    /// Loads the model folder; a missing folder says how to fetch it.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self, String> {
        require_weights(dir)?;
        let mut model = Bert::from_pretrained(dir).map_err(err)?;
        model.eval();
        if max_len > model.config.max_position_embeddings {
            return Err(format!(
                "--max-len {max_len} is more than the model's {} positions",
                model.config.max_position_embeddings
            ));
        }
        let tok = SubwordTokenizer::from_file(dir.join("tokenizer.json"), max_len).map_err(err)?;
        if tok.vocab_size() > model.config.vocab_size {
            return Err(format!(
                "tokenizer has {} tokens but the model only {}",
                tok.vocab_size(),
                model.config.vocab_size
            ));
        }
        Ok(SentenceEncoder { model, tok })
    }

    /// Unit-length embeddings of `texts`, in their order. Sentences are batched by length so
    /// that padding stays small; the result does not depend on the batching.
    pub fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>, String> {
        // tokenised once: the lengths order the batches, the ids fill them
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.tok.encode(t))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        let dim = self.model.config.hidden_size;
        for chunk in order.chunks(batch_size.max(1)) {
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let enc = pad_batch(&seqs, self.tok.pad_id()).map_err(err)?;
            let e = no_grad(|| self.model.sentence_embeddings(&enc.ids, &enc.mask)).map_err(err)?;
            let v = e.to_vec::<f32>().map_err(err)?;
            for (row, &i) in chunk.iter().enumerate() {
                out[i] = v[row * dim..(row + 1) * dim].to_vec();
            }
        }
        Ok(out)
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

pub fn run_embed(a: &EmbedArgs) -> Result<(), String> {
    let mut texts = a.sentences.clone();
    if let Some(p) = &a.input {
        let bytes = std::fs::read(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
        let s = String::from_utf8(bytes)
            .map_err(|e| format!("{}: not UTF-8 text: {e}", p.display()))?;
        texts.extend(s.lines().map(str::to_string));
    }
    if texts.is_empty() {
        return Err("no sentences: give them as arguments or with --input FILE".into());
    }
    let enc = SentenceEncoder::load(&a.model, a.max_len)?;
    let emb = enc.embed(&texts, a.batch_size)?;
    match &a.output {
        Some(p) if p.extension().is_some_and(|e| e == "safetensors") => {
            let dim = enc.model.config.hidden_size;
            let flat: Vec<f32> = emb.concat();
            let t = Tensor::from_vec(flat, [texts.len(), dim]).map_err(err)?;
            let mut m = BTreeMap::new();
            m.insert("embeddings".to_string(), t);
            let meta = [(
                "sentences".to_string(),
                serde_json::to_string(&texts).map_err(err)?,
            )]
            .into_iter()
            .collect();
            save_tensors(p, &m, Some(meta)).map_err(err)?;
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
                    write_atomic(p, s.as_bytes()).map_err(err)?;
                    eprintln!("{} embeddings written to {}", texts.len(), p.display());
                }
                None => print!("{s}"),
            }
        }
    }
    Ok(())
}

pub fn run_similarity(a: &SimilarityArgs) -> Result<(), String> {
    let enc = SentenceEncoder::load(&a.model, a.max_len)?;
    let emb = enc.embed(&[a.a.clone(), a.b.clone()], 2)?;
    println!("{:.6}", cosine(&emb[0], &emb[1]));
    Ok(())
}
