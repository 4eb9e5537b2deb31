//! all-MiniLM-L6-v2 against sentence-transformers on PyTorch (tests/fixtures/gen_minilm.py):
//! token ids, sentence embeddings of 53 varied sentences, and gradients through the encoder.
//! Needs the weights (scripts/fetch-minilm.sh); skipped with a message when they are absent.

use ferrograd_data::SubwordTokenizer;
use ferrograd_models::bert::{l2_normalize, mean_pool};
use ferrograd_models::Bert;
use ferrograd_nn::{named_parameters, Module};
use ferrograd_tensor::{DType, Tensor};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> Option<PathBuf> {
    let d = root().join("models/all-MiniLM-L6-v2");
    if d.join("model.safetensors").exists() {
        Some(d)
    } else {
        eprintln!(
            "SKIPPED: {} has no model.safetensors; run scripts/fetch-minilm.sh to enable the MiniLM parity tests",
            d.display()
        );
        None
    }
}

fn fixture() -> serde_json::Value {
    let p = root().join("tests/fixtures/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn tokenizer_and_embeddings_match_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let fx = fixture();
    let sentences = strings(&fx["sentences"]);
    assert!(sentences.len() >= 50);
    let tok = SubwordTokenizer::from_file(dir.join("tokenizer.json"), 256).unwrap();
    for (s, want) in sentences.iter().zip(fx["input_ids"].as_array().unwrap()) {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(s).unwrap(), want, "token ids of {s:?}");
    }

    let mut model = Bert::from_pretrained(&dir).unwrap();
    model.eval();
    // batches of similar length, as sentence-transformers does, so padding is exercised but small
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by_key(|&i| tok.encode(&sentences[i]).unwrap().len());
    let mut worst_cos = 1.0f64;
    let mut worst_diff = 0.0f64;
    for chunk in order.chunks(8) {
        let texts: Vec<&str> = chunk.iter().map(|&i| sentences[i].as_str()).collect();
        let batch = tok.encode_batch(&texts).unwrap();
        let emb = ferrograd_tensor::no_grad(|| model.sentence_embeddings(&batch.ids, &batch.mask))
            .unwrap();
        let got = emb.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
        for (row, &i) in chunk.iter().enumerate() {
            let want = floats(&fx["embeddings"][i]);
            let g = &got[row * 384..(row + 1) * 384];
            let dot: f64 = g.iter().zip(&want).map(|(a, b)| a * b).sum();
            let na = g.iter().map(|a| a * a).sum::<f64>().sqrt();
            let nb = want.iter().map(|a| a * a).sum::<f64>().sqrt();
            let cos = dot / (na * nb);
            let diff = g
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                cos >= 0.99999 && diff <= 1e-4,
                "sentence {i} {:?}: cosine {cos}, max abs diff {diff}",
                sentences[i]
            );
            worst_cos = worst_cos.min(cos);
            worst_diff = worst_diff.max(diff);
        }
    }
    eprintln!(
        "{} sentences: worst cosine {worst_cos:.9}, worst max abs diff {worst_diff:.3e}",
        sentences.len()
    );
}

#[test]
fn gradients_through_the_encoder_match_pytorch() {
    let Some(dir) = model_dir() else { return };
    let fx = fixture();
    let gc = &fx["grad_check"];
    let pair = strings(&gc["sentences"]);
    let tok = SubwordTokenizer::from_file(dir.join("tokenizer.json"), 256).unwrap();
    let mut model = Bert::from_pretrained(&dir).unwrap();
    model.eval(); // no dropout, as the fixture
    let batch = tok.encode_batch(&pair).unwrap();
    let r = Tensor::from_vec(
        floats(&gc["r"])
            .iter()
            .map(|&x| x as f32)
            .collect::<Vec<_>>(),
        [384, 1],
    )
    .unwrap();
    let hidden = model.encode(&batch.ids, &batch.mask, None).unwrap();
    let e = l2_normalize(&mean_pool(&hidden, &batch.mask).unwrap()).unwrap();
    let loss = e.matmul(&r).unwrap().sum_all().unwrap();
    let want_loss = gc["loss"].as_f64().unwrap();
    let got_loss = loss.item().unwrap();
    assert!(
        (got_loss - want_loss).abs() <= 1e-5 * want_loss.abs().max(1.0),
        "loss {got_loss} vs {want_loss}"
    );
    loss.backward().unwrap();
    let params: std::collections::HashMap<String, Tensor> =
        named_parameters(&model).into_iter().collect();
    for (name, want) in gc["grads"].as_object().unwrap() {
        let want = floats(want);
        let (pname, rows) = match name.split_once('[') {
            Some((p, _)) => (p, Some(4)),
            None => (name.as_str(), None),
        };
        let g = params[pname].grad().expect("gradient");
        let g = match rows {
            Some(r) => g.narrow(0, 0, r).unwrap().contiguous().unwrap(),
            None => g,
        };
        let got = g.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            diff <= 1e-4 * scale.max(1e-3) + 1e-7,
            "{name}: max abs diff {diff} (largest gradient {scale})"
        );
        eprintln!("{name}: max abs diff {diff:.3e}, largest gradient {scale:.3e}");
    }
}
