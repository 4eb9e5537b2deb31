//! Transformer workloads of `ferrograd-bench transformer`: all-MiniLM-L6-v2's dimensions (6
//! layers, hidden 384, 12 heads, FFN 1536, vocabulary 30522), batch 16 of 128 tokens.
//!
//! - `bert_fwd_16x128`: inference forward (no graph, no dropout) to the mean-pooled embeddings.
//! - `bert_fwdbwd_16x128`: training forward (dropout 0.1) through a 2-class head, cross-entropy
//!   and backward. Each timed step is followed by an untimed AdamW step, so the peak RSS is that
//!   of full fine-tuning (weights, gradients, two moment buffers, activations).
//!
//! - `gpt_train_32x128`: one training iteration (forward, backward, clipping, AdamW) of the
//!   character GPT of the GPT issue (4 layers, 4 heads, 128 wide, vocabulary 65) on a batch of
//!   32 blocks of 128 tokens: 4,096 tokens per iteration.
//!
//! Seconds are the median of 5 steps after one warm-up step. The pretrained weights are used
//! when models/all-MiniLM-L6-v2 holds them, else a random model of the same size (same cost).

use ferrograd_data::text::random_blocks;
use ferrograd_models::bert::{mean_pool, BertClassifier, Pooling};
use ferrograd_models::{Bert, BertConfig, Gpt, GptConfig};
use ferrograd_nn::clip::clip_grad_norm;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{parameters, AdamW, Forward, Module, Optimizer};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

pub const WORKLOADS: [&str; 3] = ["bert_fwd_16x128", "bert_fwdbwd_16x128", "gpt_train_32x128"];

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
    let mask = Tensor::ones([b, t], DType::I64).map_err(|e| e.to_string())?;
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
        "gpt_train_32x128" => {
            let config = GptConfig {
                n_layer: 4,
                n_head: 4,
                n_embd: 128,
                block_size: 128,
                vocab_size: 65,
                dropout: 0.0,
                bias: true,
            };
            let model = Gpt::new(config, &mut rng).map_err(|x| e(&x))?;
            let params = parameters(&model);
            let mut opt = AdamW::new(params.clone(), 1e-3, 0.1).map_err(|x| e(&x))?;
            let data: Vec<u32> = (0..100_000).map(|_| rng.below(65) as u32).collect();
            for i in 0..6 {
                let (x, y) = random_blocks(&data, 32, 128, &mut rng).map_err(|x| e(&x))?;
                let t0 = Instant::now();
                opt.zero_grad();
                let loss =
                    Gpt::loss(&model.forward(&x).map_err(|x| e(&x))?, &y).map_err(|x| e(&x))?;
                loss.backward().map_err(|x| e(&x))?;
                clip_grad_norm(&params, 1.0).map_err(|x| e(&x))?;
                opt.step().map_err(|x| e(&x))?;
                if i > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let s = median(times);
            return Ok(json!({"seconds": s, "tokens_per_s": 4096.0 / s}));
        }
        other => return Err(format!("unknown workload {other}")),
    }
    Ok(json!({"seconds": median(times)}))
}
