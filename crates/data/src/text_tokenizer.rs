//! A language model's tokenizer, whichever kind: characters, or byte-level BPE, with the
//! metadata entry that stores it beside the weights (`vocab`: the characters as one JSON
//! string; `tokenizer`: the BPE's tokenizer.json).

use crate::error::{Error, Result};
use crate::subword::SubwordTokenizer;
use crate::text::CharTokenizer;
use std::collections::HashMap;

pub enum TextTokenizer {
    Char(CharTokenizer),
    Bpe(Box<SubwordTokenizer>),
}

impl TextTokenizer {
    /// `char` (the corpus's characters) or `bpe` (a byte-level BPE of `vocab_size` tokens
    /// trained on `train_text`).
    pub fn fit(kind: &str, text: &str, train_text: &str, vocab_size: usize) -> Result<Self> {
        Ok(match kind {
            "char" => TextTokenizer::Char(CharTokenizer::fit(text)?),
            "bpe" => TextTokenizer::Bpe(Box::new(SubwordTokenizer::train_byte_level_bpe(
                train_text, vocab_size,
            )?)),
            other => {
                return Err(Error::Invalid(format!(
                    "--tokenizer must be char or bpe, got {other:?}"
                )))
            }
        })
    }
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Char(t) => t.encode(text),
            TextTokenizer::Bpe(t) => t.encode_plain(text),
        }
    }
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            TextTokenizer::Char(t) => t.decode(ids),
            TextTokenizer::Bpe(t) => t.decode(ids),
        }
    }
    pub fn vocab_size(&self) -> usize {
        match self {
            TextTokenizer::Char(t) => t.vocab_size(),
            TextTokenizer::Bpe(t) => t.vocab_size(),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            TextTokenizer::Char(t) => format!("vocabulary {} characters", t.vocab_size()),
            TextTokenizer::Bpe(t) => format!("byte-level BPE vocabulary {}", t.vocab_size()),
        }
    }
    /// The metadata entry that [`TextTokenizer::from_metadata`] reads back.
    pub fn metadata(&self) -> Result<(String, String)> {
        Ok(match self {
            TextTokenizer::Char(t) => (
                "vocab".into(),
                serde_json::to_string(&t.chars().iter().collect::<String>())
                    .map_err(|e| Error::Invalid(format!("vocabulary: {e}")))?,
            ),
            TextTokenizer::Bpe(t) => ("tokenizer".into(), t.to_json()?),
        })
    }
    /// The tokenizer stored in a weights file's metadata; None when it holds neither entry.
    pub fn from_metadata(md: &HashMap<String, String>) -> Result<Option<Self>> {
        Ok(match (md.get("tokenizer"), md.get("vocab")) {
            (Some(json), _) => Some(TextTokenizer::Bpe(Box::new(SubwordTokenizer::from_json(
                json,
            )?))),
            (None, Some(v)) => {
                let vocab: String = serde_json::from_str(v)
                    .map_err(|e| Error::Invalid(format!("vocab metadata: {e}")))?;
                Some(TextTokenizer::Char(CharTokenizer::from_chars(
                    vocab.chars().collect(),
                )))
            }
            (None, None) => None,
        })
    }
}
