//! Subword tokenizers read from a Hugging Face `tokenizer.json` (WordPiece for BERT models,
//! byte-level BPE for GPT-2 style ones) through the `tokenizers` crate, and batches of them as
//! tensors with dynamic padding.
//!
//! A `tokenizer.json` may carry its own padding and truncation (all-MiniLM-L6-v2's pads every
//! sequence to 128 and cuts at 128); both are replaced here: no fixed padding, truncation at the
//! length the caller asks for, and each batch padded only to its longest sequence.

use crate::error::{Error, Result};
use ferrograd_tensor::Tensor;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

pub struct SubwordTokenizer {
    inner: Tokenizer,
    max_len: usize,
    pad_id: u32,
}

/// A padded batch: token ids and the 1/0 attention mask, both i64 `[B, T]`, T the longest
/// sequence of the batch.
pub struct EncodedBatch {
    pub ids: Tensor,
    pub mask: Tensor,
    /// Real (unpadded) length of each sequence, special tokens included.
    pub lengths: Vec<usize>,
}

/// Runs a call into the `tokenizers` crate, which panics on some malformed `tokenizer.json`
/// files, while reading them (an `expect("Helper")` in its decoder deserialiser) and while
/// encoding with them (a map lookup of a special token the template names but the file does not
/// define), both found by fuzzing: the panic is caught, kept off the terminal and returned as
/// an error. (Panics elsewhere still print: the hook is swapped only around these calls.)
fn guarded<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("the tokenizers crate failed on it ({msg})")
    })
}

/// `Tokenizer::from_bytes` after a check of the JSON syntax, guarded.
fn parse_tokenizer(bytes: &[u8]) -> std::result::Result<Tokenizer, String> {
    serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| e.to_string())?;
    guarded(|| Tokenizer::from_bytes(bytes))?.map_err(|e| e.to_string())
}

impl SubwordTokenizer {
    /// Reads `tokenizer.json`; sequences are cut at `max_len` tokens (special tokens included).
    pub fn from_file(path: impl AsRef<Path>, max_len: usize) -> Result<Self> {
        let path = path.as_ref();
        if max_len < 2 {
            return Err(Error::Invalid(format!(
                "tokenizer: max length {max_len} leaves no room for the special tokens"
            )));
        }
        // bounded and regular-file only: a tokenizer.json is tens of megabytes at most
        let bytes = ferrograd_tensor::files::read_regular(path, 256 << 20)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        let inner = parse_tokenizer(&bytes)
            .map_err(|e| Error::file(path, format!("not a usable tokenizer.json: {e}")))?;
        Self::configure(inner, Some(max_len)).map_err(|e| Error::file(path, e))
    }

    /// A tokenizer from the JSON text of a `tokenizer.json` (as [`SubwordTokenizer::to_json`]
    /// writes it), without truncation.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner = parse_tokenizer(json.as_bytes())
            .map_err(|e| Error::Invalid(format!("not a usable tokenizer: {e}")))?;
        Self::configure(inner, None)
    }

    /// Trains a byte-level BPE (GPT-2's scheme: every byte is a base token, so any text can be
    /// encoded) with `vocab_size` tokens on `text`, split into lines for the merge statistics.
    pub fn train_byte_level_bpe(text: &str, vocab_size: usize) -> Result<Self> {
        use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
        use tokenizers::models::TrainerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        if vocab_size < 257 {
            return Err(Error::Invalid(format!(
                "byte-level BPE needs a vocabulary of at least 257 (256 bytes + merges), got {vocab_size}"
            )));
        }
        let mut inner = Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(ByteLevel::default()));
        inner.with_decoder(Some(ByteLevel::default()));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        inner
            .train(&mut trainer, text.split_inclusive('\n'))
            .map_err(|e| Error::Invalid(format!("BPE training failed: {e}")))?;
        Self::configure(inner, None)
    }

    /// The tokenizer as `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(|e| Error::Invalid(format!("cannot serialise the tokenizer: {e}")))
    }

    fn configure(mut inner: Tokenizer, max_len: Option<usize>) -> Result<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(max_len.map(|m| TruncationParams {
                max_length: m,
                ..Default::default()
            }))
            .map_err(|e| Error::Invalid(format!("cannot set truncation: {e}")))?;
        let pad_id = ["[PAD]", "<pad>", "<|endoftext|>"]
            .iter()
            .find_map(|t| inner.token_to_id(t))
            .unwrap_or(0);
        Ok(SubwordTokenizer {
            inner,
            max_len: max_len.unwrap_or(usize::MAX),
            pad_id,
        })
    }

    /// The id padding positions get.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of one text, with the model's special tokens (`[CLS] ... [SEP]`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::Invalid(format!("tokenizer: cannot encode {text:?}: {e}"))
        };
        let e = guarded(|| self.inner.encode(text, true))
            .map_err(|e| bad(&e))?
            .map_err(|e| bad(&e))?;
        Ok(e.get_ids().to_vec())
    }

    /// Token ids without special tokens (for language modelling on a corpus).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::Invalid(format!("tokenizer: cannot encode text: {e}"))
        };
        let e = guarded(|| self.inner.encode(text, false))
            .map_err(|e| bad(&e))?
            .map_err(|e| bad(&e))?;
        Ok(e.get_ids().to_vec())
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bad =
            |e: &dyn std::fmt::Display| Error::Invalid(format!("tokenizer: cannot decode: {e}"));
        guarded(|| self.inner.decode(ids, true))
            .map_err(|e| bad(&e))?
            .map_err(|e| bad(&e))
    }

    /// Encodes `texts` and pads them to the longest with the pad id.
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<EncodedBatch> {
        let seqs = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        pad_batch(&seqs, self.pad_id)
    }
}

/// Pads id sequences to the longest one; the mask is 1 on real tokens.
pub fn pad_batch(seqs: &[Vec<u32>], pad_id: u32) -> Result<EncodedBatch> {
    let b = seqs.len();
    let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = vec![pad_id as i64; b * t];
    let mut mask = vec![0i64; b * t];
    for (i, s) in seqs.iter().enumerate() {
        for (j, &id) in s.iter().enumerate() {
            ids[i * t + j] = id as i64;
            mask[i * t + j] = 1;
        }
    }
    Ok(EncodedBatch {
        ids: Tensor::from_vec(ids, [b, t])?,
        mask: Tensor::from_vec(mask, [b, t])?,
        lengths: seqs.iter().map(Vec::len).collect(),
    })
}
