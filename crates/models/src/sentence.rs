//! Sentence embeddings from a pretrained BERT-style sentence Transformer (all-MiniLM-L6-v2), as
//! sentence-transformers computes them: tokenise (truncation at `max_len`, padding per batch),
//! encode, mean-pool over the attention mask, L2-normalise.

use crate::bert::Bert;
use ferrograd_data::subword::pad_batch;
use ferrograd_data::SubwordTokenizer;
use ferrograd_nn::{Error, Module, Result};
use ferrograd_tensor::no_grad;
use std::path::Path;

/// A sentence-embedding model and its tokenizer.
pub struct SentenceEncoder {
    pub model: Bert,
    pub tok: SubwordTokenizer,
}

/// A data error (tokenizer file, encoding) as this crate's error.
fn data_err(e: ferrograd_data::Error) -> Error {
    Error::invalid("SentenceEncoder", e.to_string())
}

impl SentenceEncoder {
    /// Loads a Hugging Face model folder (config.json, model.safetensors, tokenizer.json).
    pub fn load(dir: &Path, max_len: usize) -> Result<Self> {
        let mut model = Bert::from_pretrained(dir)?;
        model.eval();
        if max_len > model.config.max_position_embeddings {
            return Err(Error::invalid(
                "SentenceEncoder",
                format!(
                    "--max-len {max_len} is more than the model's {} positions",
                    model.config.max_position_embeddings
                ),
            ));
        }
        let tok =
            SubwordTokenizer::from_file(dir.join("tokenizer.json"), max_len).map_err(data_err)?;
        if tok.vocab_size() > model.config.vocab_size {
            return Err(Error::file(
                dir.join("tokenizer.json"),
                format!(
                    "the tokenizer has {} tokens but the model only {}",
                    tok.vocab_size(),
                    model.config.vocab_size
                ),
            ));
        }
        Ok(SentenceEncoder { model, tok })
    }

    /// Unit-length embeddings of `texts`, in their order. Sentences are batched by length so
    /// that padding stays small; the result does not depend on the batching.
    pub fn embed(&self, texts: &[String], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        // tokenised once: the lengths order the batches, the ids fill them
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.tok.encode(t))
            .collect::<std::result::Result<_, _>>()
            .map_err(data_err)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        let dim = self.model.config.hidden_size;
        for chunk in order.chunks(batch_size.max(1)) {
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let enc = pad_batch(&seqs, self.tok.pad_id()).map_err(data_err)?;
            let e = no_grad(|| self.model.sentence_embeddings(&enc.ids, &enc.mask))?;
            let v = e.to_vec::<f32>()?;
            for (row, &i) in chunk.iter().enumerate() {
                out[i] = v[row * dim..(row + 1) * dim].to_vec();
            }
        }
        Ok(out)
    }
}

/// Cosine similarity of two vectors (in f64).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}
