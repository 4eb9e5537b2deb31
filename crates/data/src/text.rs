//! Text corpora for language models: a character-level tokenizer (the vocabulary is the sorted
//! set of characters of the corpus), the first-90% / last-10% train/validation split, and random
//! contiguous blocks drawn from a seeded generator, as nanoGPT's `get_batch`.

use crate::error::{Error, Result};
use ferrograd_tensor::{Rng, Tensor};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Maps characters to ids and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    ids: BTreeMap<char, u32>,
}

impl CharTokenizer {
    /// The vocabulary of `text`: its distinct characters in sorted order.
    pub fn fit(text: &str) -> Result<Self> {
        let mut chars: Vec<char> = text
            .chars()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        chars.sort_unstable();
        if chars.is_empty() {
            return Err(Error::Invalid("CharTokenizer: the corpus is empty".into()));
        }
        Ok(Self::from_chars(chars))
    }

    /// A tokenizer with this exact vocabulary (ids in the given order).
    pub fn from_chars(chars: Vec<char>) -> Self {
        let ids = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        CharTokenizer { chars, ids }
    }

    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Ids of `text`; a character outside the vocabulary is an error naming it and its position.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        // sized exactly first: a vector grown by doubling holds up to twice the ids, and three
        // times while it moves (a 110 MB corpus peaked 190 MB higher)
        let mut ids = Vec::with_capacity(text.chars().count());
        for (i, c) in text.chars().enumerate() {
            let id = self.ids.get(&c).copied().ok_or_else(|| {
                Error::Invalid(format!(
                    "character {c:?} at position {i} is not in the vocabulary of {} characters",
                    self.chars.len()
                ))
            })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// Text of `ids`; an id past the vocabulary is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&i| {
                self.chars.get(i as usize).copied().ok_or_else(|| {
                    Error::Invalid(format!(
                        "token id {i} is outside the vocabulary of {}",
                        self.chars.len()
                    ))
                })
            })
            .collect()
    }
}

/// The largest corpus read (its ids take four bytes a token beside the text).
pub const MAX_CORPUS: u64 = 2 * ferrograd_tensor::files::GIB;

/// Reads a UTF-8 corpus, rejecting empty and binary files with a message naming the file. Only
/// a regular file of at most [`MAX_CORPUS`] bytes is read, and its first 64 KiB are checked
/// for NUL bytes before the rest is read, so a binary file is refused without reading it all.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<String> {
    use ferrograd_tensor::files;
    let path = path.as_ref();
    let cannot = |e: std::io::Error| Error::file(path, format!("cannot read: {e}"));
    let (mut f, len) = files::open_regular(path, MAX_CORPUS).map_err(cannot)?;
    if len == 0 {
        return Err(Error::file(path, "the corpus is empty"));
    }
    let binary = || Error::file(path, "looks binary (contains NUL bytes), not a text corpus");
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| Error::file(path, "cannot allocate room for the corpus"))?;
    (&mut f)
        .take(64 << 10)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.contains(&0) {
        return Err(binary());
    }
    (&mut f)
        .take(MAX_CORPUS)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    corpus_from_bytes(path, bytes)
}

/// The text of a corpus from its bytes (`path` names it in errors): not empty, no NUL bytes,
/// UTF-8.
pub fn corpus_from_bytes(path: &Path, bytes: Vec<u8>) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::file(path, "the corpus is empty"));
    }
    if bytes.contains(&0) {
        return Err(Error::file(
            path,
            "looks binary (contains NUL bytes), not a text corpus",
        ));
    }
    String::from_utf8(bytes).map_err(|e| Error::file(path, format!("not UTF-8 text: {e}")))
}

/// A tokenized corpus split into training (first 90%) and validation (last 10%) ids, shared
/// (the training blocks and the evaluation read the same ids; a copy of a large corpus's ids
/// is hundreds of megabytes).
#[derive(Clone, Debug)]
pub struct TokenSplit {
    pub train: std::sync::Arc<Vec<u32>>,
    pub val: std::sync::Arc<Vec<u32>>,
}

impl TokenSplit {
    /// Splits `ids` in place: the validation part (10%) is moved out, the training part stays
    /// where it is (not shrunk: with the allocator keeping freed memory, shrinking copies it).
    pub fn new(mut ids: Vec<u32>, train_fraction: f64) -> Self {
        let n = (((ids.len() as f64) * train_fraction) as usize).min(ids.len());
        let val = ids.split_off(n);
        TokenSplit {
            train: std::sync::Arc::new(ids),
            val: std::sync::Arc::new(val),
        }
    }
}

/// `batch` random blocks of `block + 1` consecutive ids from `data`: inputs are the first
/// `block`, targets the last `block` (shifted by one). Both `[batch, block]` i64.
pub fn random_blocks(
    data: &[u32],
    batch: usize,
    block: usize,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor)> {
    if data.len() <= block {
        return Err(Error::Invalid(format!(
            "a split of {} tokens is too short for blocks of {block}",
            data.len()
        )));
    }
    let n = batch
        .checked_mul(block)
        .filter(|&n| n <= 1 << 31)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "a batch of {batch} blocks of {block} tokens is more than 2^31 tokens"
            ))
        })?;
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..batch {
        let s = rng.below((data.len() - block) as u64) as usize;
        x.extend(data[s..s + block].iter().map(|&v| v as i64));
        y.extend(data[s + 1..s + block + 1].iter().map(|&v| v as i64));
    }
    Ok((
        Tensor::from_vec(x, [batch, block])?,
        Tensor::from_vec(y, [batch, block])?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_round_trips_and_rejects_unknown_characters() {
        let t = CharTokenizer::fit("hello, world").unwrap();
        assert_eq!(t.chars(), &[' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        let ids = t.encode("world, hello").unwrap();
        assert_eq!(t.decode(&ids).unwrap(), "world, hello");
        let e = t.encode("hex").unwrap_err().to_string();
        assert!(e.contains("'x'") && e.contains("position 2"), "{e}");
        assert!(t.decode(&[99]).is_err());
        assert!(CharTokenizer::fit("").is_err());
    }

    #[test]
    fn split_and_blocks() {
        let ids: Vec<u32> = (0..100).collect();
        let s = TokenSplit::new(ids, 0.9);
        assert_eq!((s.train.len(), s.val.len(), s.val[0]), (90, 10, 90));
        let (x, y) = random_blocks(&s.train, 4, 8, &mut Rng::new(1)).unwrap();
        assert_eq!(x.dims(), &[4, 8]);
        let (xv, yv) = (x.to_vec::<i64>().unwrap(), y.to_vec::<i64>().unwrap());
        for r in 0..4 {
            for j in 0..8 {
                assert_eq!(
                    yv[r * 8 + j],
                    xv[r * 8 + j] + 1,
                    "targets are inputs shifted by one"
                );
            }
        }
        let (x2, _) = random_blocks(&s.train, 4, 8, &mut Rng::new(1)).unwrap();
        assert_eq!(x2.to_vec::<i64>().unwrap(), xv, "same seed, same blocks");
        assert!(random_blocks(&s.val, 1, 10, &mut Rng::new(0)).is_err());
    }

    #[test]
    fn corpus_checks() {
        let d = std::env::temp_dir().join(format!("ferrograd-text-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("empty.txt"), b"").unwrap();
        std::fs::write(d.join("bin.dat"), [1u8, 0, 2]).unwrap();
        std::fs::write(d.join("ok.txt"), "To be, or not to be").unwrap();
        assert!(read_corpus(d.join("empty.txt"))
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(read_corpus(d.join("bin.dat"))
            .unwrap_err()
            .to_string()
            .contains("binary"));
        assert_eq!(
            read_corpus(d.join("ok.txt")).unwrap(),
            "To be, or not to be"
        );
    }
}
