//! Transformer workloads of `ferrograd-bench transformer`: all-MiniLM-L6-v2's dimensions (6
//! layers, hidden 384, 12 heads, FFN 1536, vocabulary 30522), batch 16 of 128 tokens.
//!
//! - `bert_fwd_16x128`: inference forward (no graph, no dropout) to the mean-pooled embeddings.
//! - `bert_fwdbwd_16x128`: training forward (dropout 0.1) through a 2-class head, cross-entropy
//!   and backward. Each timed step is followed by an untimed AdamW step, so the peak RSS is that
//!   of full fine-tuning (weights, gradients, two moment buffers, activations).
//!
//! Seconds are the median of 5 steps after one warm-up step. The pretrained weights are used
//! when models/all-MiniLM-L6-v2 holds them, else a random model of the same size (same cost).

use ferrograd_models::bert::{mean_pool, BertClassifier, Pooling};
use ferrograd_models::{Bert, BertConfig};
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{parameters, AdamW, Module, Optimizer};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

pub const WORKLOADS: [&str; 2] = ["bert_fwd_16x128", "bert_fwdbwd_16x128"];

fn minilm() -> Result<Bert, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").exists() {
        return Bert::from_pretrained(&dir).map_err(|e| e.to_string());
    }
    let config = BertConfig {
        vocab_size: 30522,
        hidden_size: 384,
        num_hidden_layers: 6,
        num_attention_heads: 12,
        intermediate_size: 1536,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        hidden_act: "gelu".into(),
    };
    Bert::new(config, &mut Rng::new(0)).map_err(|e| e.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn worker(work: &str) -> Result<Value, String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let (b, t) = (16usize, 128usize);
    let mut rng = Rng::new(0);
    let ids: Vec<i64> = (0..b * t).map(|_| 1000 + rng.below(29000) as i64).collect();
    let ids = Tensor::from_vec(ids, [b, t]).map_err(|x| e(&x))?;
    let mask = Tensor::ones([b, t], DType::I64);
    let mut times = Vec::new();
    match work {
        "bert_fwd_16x128" => {
            let mut bert = minilm()?;
            bert.eval();
            for i in 0..6 {
                let t0 = Instant::now();
                no_grad(|| mean_pool(&bert.encode(&ids, &mask, None)?, &mask))
                    .map_err(|x| e(&x))?;
                if i > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        "bert_fwdbwd_16x128" => {
            let mut model = BertClassifier::new(minilm()?, 2, Pooling::Mean, 0.1, &mut rng)
                .map_err(|x| e(&x))?;
            model.train();
            let y = Tensor::from_vec((0..b as i64).map(|i| i % 2).collect::<Vec<_>>(), [b])
                .map_err(|x| e(&x))?;
            let mut opt = AdamW::new(parameters(&model), 2e-5, 0.01).map_err(|x| e(&x))?;
            for i in 0..6 {
                opt.zero_grad();
                let t0 = Instant::now();
                let logits = model.logits(&ids, &mask).map_err(|x| e(&x))?;
                let loss =
                    cross_entropy(&logits, &y, &ClassLossOptions::default()).map_err(|x| e(&x))?;
                loss.backward().map_err(|x| e(&x))?;
                if i > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
                opt.step().map_err(|x| e(&x))?;
            }
        }
        other => return Err(format!("unknown workload {other}")),
    }
    Ok(json!({"seconds": median(times)}))
}
