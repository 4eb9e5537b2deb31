//! The fuzz targets' bodies: each takes arbitrary bytes through one of ferrograd's readers of
//! outside files, the way the command does, and must return (an error or a value) without a
//! panic, an abort, a hang or unbounded memory. `fuzz/` (cargo fuzz, libFuzzer) runs them;
//! `tests/replay.rs` replays the committed corpus `fuzz/corpus/<target>/` through them in the
//! ordinary tests. Results are dropped: a target only shows that the reader survives.

use ferrograd_data::TextTokenizer;
use std::path::Path;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its folder in `fuzz/corpus/` and of its cargo fuzz binary).
pub const TARGETS: [(&str, Target); 9] = [
    ("safetensors", safetensors),
    ("checkpoint", checkpoint),
    ("idx", idx),
    ("corpus", corpus),
    ("labelled", labelled),
    ("tokenizer", tokenizer),
    ("png", png),
    ("wav", wav),
    ("interactions", interactions),
];

/// A weights file: the tensors and metadata, then what the commands read from the metadata
/// (the GPT's tokenizer, a classifier's classes and adapters).
pub fn safetensors(data: &[u8]) {
    let Ok((tensors, md)) = ferrograd_nn::serialize::tensors_from_bytes(data) else {
        return;
    };
    let _ = TextTokenizer::from_metadata(&md);
    let _ = ferrograd_models::text_classifier::ClassifierInfo::from_metadata(&md, Path::new("f"));
    if let Ok(c) = ferrograd_models::recommend::RecConfig::from_metadata(&md) {
        // a recommender is built from its metadata before its tensors are loaded
        if c.users().saturating_add(c.items()).saturating_mul(c.dim) <= 1 << 16 {
            let _ = ferrograd_models::recommend::Recommender::for_loading(c);
        }
    }
    if let Ok(c) = ferrograd_models::GptConfig::from_metadata(&md) {
        let _ = c.check_against(&|n| tensors.get(n).map(|t| t.dims().to_vec()));
    }
}

/// A training checkpoint, through the trainer's own loading.
pub fn checkpoint(data: &[u8]) {
    let _ = ferrograd_train::Checkpoint::from_bytes(Path::new("c"), data);
}

/// An IDX array, raw or gzip-compressed.
pub fn idx(data: &[u8]) {
    let _ = ferrograd_data::idx::read_idx_bytes(data, Path::new("x.idx"));
}

/// A text corpus: checked, tokenized by characters, split and cut into blocks.
pub fn corpus(data: &[u8]) {
    let Ok(text) = ferrograd_data::text::corpus_from_bytes(Path::new("t"), data.to_vec()) else {
        return;
    };
    let Ok(tok) = TextTokenizer::fit("char", &text, &text, 0) else {
        return;
    };
    if let Ok(ids) = tok.encode(&text) {
        let split = ferrograd_data::TokenSplit::new(ids, 0.9);
        let mut rng = ferrograd_tensor::Rng::new(0);
        let _ = ferrograd_data::text::random_blocks(&split.train, 2, 4, &mut rng);
        let _ = tok.decode(&split.val);
    }
}

/// A labelled set: the first byte picks JSON lines or CSV, the rest is the file.
pub fn labelled(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let name = if kind % 2 == 0 { "l.jsonl" } else { "l.csv" };
    let fields = ["text".to_string(), "title".to_string()];
    let _ =
        ferrograd_data::labelled::labelled_from_bytes(Path::new(name), rest, &fields[..1], "label");
    let _ = ferrograd_data::labelled::labelled_from_bytes(Path::new(name), rest, &fields, "label");
}

/// A `tokenizer.json`, then an encoding and a decoding with it.
pub fn tokenizer(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = ferrograd_data::SubwordTokenizer::from_json(json) {
        if let Ok(ids) = t.encode("a b\u{e9} 12 [CLS]") {
            let _ = t.decode(&ids);
        }
    }
}

/// A PNG, as `predict` reads a digit image.
pub fn png(data: &[u8]) {
    let _ = ferrograd_data::image::digit_from_png(data, Path::new("d.png"));
}

/// A WAV file, as the speech tools read a recording.
pub fn wav(data: &[u8]) {
    let _ = ferrograd_data::wav::wav_from_bytes(data, Path::new("r.wav"));
}

/// An interactions file (the first byte picks `u.data`/`.inter` or CSV naming), then its
/// splits; and the same bytes as an item catalog.
pub fn interactions(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let name = if kind % 2 == 0 { "u.data" } else { "r.csv" };
    use ferrograd_data::interactions as i;
    if let Ok(d) = i::interactions_from_bytes(Path::new(name), rest, None) {
        let _ = i::leave_last_out(&d);
        let _ = i::k_fold(d.len(), 2, 0);
        let _ = d.items_by_user(&(0..d.len()).collect::<Vec<_>>());
    }
    let cat = if kind % 2 == 0 {
        "u.item"
    } else {
        "movies.csv"
    };
    let _ = i::catalog_from_bytes(Path::new(cat), rest.to_vec());
}
