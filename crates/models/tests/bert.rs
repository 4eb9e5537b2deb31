//! A tiny random BERT: strict loading by name (missing, extra and mis-shaped tensors named),
//! padding that changes nothing, and LoRA attached by layer name. No download needed.

use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::{Bert, BertConfig};
use ferrograd_nn::serialize::save_tensors;
use ferrograd_nn::{num_parameters, state_dict, trainable_parameters, Forward, Module};
use ferrograd_tensor::{no_grad, Rng, Tensor};
use std::path::PathBuf;

const CONFIG: &str = r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2,
  "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 12,
  "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}"#;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrograd-bert-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), CONFIG).unwrap();
    d
}

fn tiny() -> Bert {
    let c: BertConfig = serde_json::from_str(CONFIG).unwrap();
    Bert::new(c, &mut Rng::new(3)).unwrap()
}

fn ids(v: &[i64], t: usize) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len() / t, t]).unwrap()
}

#[test]
fn saved_weights_load_back_strictly() {
    let mut m = tiny();
    m.eval();
    let d = dir("ok");
    save_tensors(d.join("model.safetensors"), &state_dict(&m), None).unwrap();
    let mut back = Bert::from_pretrained(&d).unwrap();
    back.eval();
    let x = ids(&[1, 5, 7, 2], 4);
    let (a, b) = (m.forward(&x).unwrap(), back.forward(&x).unwrap());
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    assert_eq!(state_dict(&m).len(), 2 * 16 + 5 + 2 + 1);
}

#[test]
fn missing_extra_and_misshaped_tensors_are_named() {
    let m = tiny();
    let mut sd = state_dict(&m);
    sd.remove("encoder.layer.1.attention.self.key.bias");
    sd.insert(
        "cls.predictions.bias".into(),
        Tensor::zeros([50], ferrograd_tensor::DType::F32).unwrap(),
    );
    sd.insert(
        "pooler.dense.weight".into(),
        Tensor::zeros([8, 9], ferrograd_tensor::DType::F32).unwrap(),
    );
    let d = dir("bad");
    save_tensors(d.join("model.safetensors"), &sd, None).unwrap();
    let e = Bert::from_pretrained(&d).err().unwrap().to_string();
    for want in [
        "encoder.layer.1.attention.self.key.bias",
        "cls.predictions.bias",
        "pooler.dense.weight: expected shape [8, 8], got [8, 9]",
        "model.safetensors",
    ] {
        assert!(e.contains(want), "{want:?} not in {e}");
    }
    std::fs::write(d.join("model.safetensors"), b"\x08\0\0\0\0\0\0\0{}").unwrap();
    assert!(Bert::from_pretrained(&d).is_err());
    std::fs::write(d.join("config.json"), "{\"hidden_size\": 8}").unwrap();
    let e = Bert::from_pretrained(&d).err().unwrap().to_string();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn padding_does_not_change_the_real_tokens() {
    let mut m = tiny();
    m.eval();
    let alone = m
        .sentence_embeddings(&ids(&[1, 9, 4, 2], 4), &ids(&[1, 1, 1, 1], 4))
        .unwrap();
    let batch = ids(&[1, 9, 4, 2, 0, 0, 1, 3, 3, 3, 3, 2], 6);
    let mask = ids(&[1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], 6);
    let padded = m.sentence_embeddings(&batch, &mask).unwrap();
    let a = alone.to_vec::<f32>().unwrap();
    let p = padded.narrow(0, 0, 1).unwrap().contiguous().unwrap();
    for (x, y) in a.iter().zip(p.to_vec::<f32>().unwrap()) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    // unit length
    let n: f32 = a.iter().map(|x| x * x).sum();
    assert!((n - 1.0).abs() < 1e-5);
    // bad inputs are errors, not panics
    assert!(m.encode(&ids(&[1, 99], 2), &ids(&[1, 1], 2), None).is_err());
    assert!(m
        .encode(&ids(&[1, 2], 2), &ids(&[1, 1, 1], 3), None)
        .is_err());
    let long: Vec<i64> = vec![1; 13];
    assert!(m.forward(&ids(&long, 13)).is_err());
}

#[test]
fn lora_by_layer_name_freezes_the_rest() {
    let mut m = tiny();
    let targets = vec!["query".to_string(), "value".to_string()];
    let adapted = m.attach_lora(&targets, 2, 4.0, &mut Rng::new(1)).unwrap();
    assert_eq!(
        adapted,
        [
            "encoder.layer.0.attention.self.query",
            "encoder.layer.0.attention.self.value",
            "encoder.layer.1.attention.self.query",
            "encoder.layer.1.attention.self.value"
        ]
    );
    let trainable = trainable_parameters(&m);
    assert_eq!(trainable.len(), 8);
    assert_eq!(
        trainable.iter().map(|(_, t)| t.numel()).sum::<usize>(),
        4 * (2 * 8 + 8 * 2)
    );
    let err = m
        .attach_lora(&["qkv".to_string()], 2, 4.0, &mut Rng::new(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("qkv"), "{err}");

    // a classifier on top: gradients reach the adapters and the head only
    let clf = BertClassifier::new(m, 3, Pooling::Mean, 0.0, &mut Rng::new(2)).unwrap();
    let logits = clf
        .logits(&ids(&[1, 4, 2, 0], 4), &ids(&[1, 1, 1, 0], 4))
        .unwrap();
    logits.sum_all().unwrap().backward().unwrap();
    assert!(clf.bert.embeddings.word_embeddings.weight.grad().is_none());
    assert!(clf.classifier.weight.grad().is_some());
    assert_eq!(trainable_parameters(&clf).len(), 10);
    assert!(num_parameters(&clf) > 1000);
    // merging keeps the outputs
    let mut clf = clf;
    clf.eval();
    let x = ids(&[1, 4, 2, 0], 4);
    let mask = ids(&[1, 1, 1, 0], 4);
    for (_, l) in clf.bert.linears_mut() {
        if let Some(ad) = &l.adapter {
            ad.b.copy_from(&Tensor::full(ad.b.dims(), 0.1, ad.b.dtype()).unwrap())
                .unwrap();
        }
    }
    let before = no_grad(|| clf.logits(&x, &mask))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    clf.bert.merge_lora().unwrap();
    let after = no_grad(|| clf.logits(&x, &mask))
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
