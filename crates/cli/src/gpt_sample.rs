//! `ferrograd gpt sample`: text from weights written by `gpt train`, streamed token by token
//! through the KV cache, with temperature and top-k sampling.

use clap::Args;
use ferrograd_data::TextTokenizer;
use ferrograd_models::gpt::sample_top_k;
use ferrograd_models::{Gpt, GptConfig};
use ferrograd_nn::serialize::load_tensors;
use ferrograd_nn::{load_state_dict, Module};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use ferrograd_train::{Result, TrainError};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct GptSampleArgs {
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(a: &GptSampleArgs) -> Result<()> {
    // the flags first: nothing is read before they are known to make sense
    if !(a.temperature.is_finite() && a.temperature > 0.0) || a.top_k == 0 {
        return Err(TrainError::config(format!(
            "--temperature ({}) must be a positive number and --top-k ({}) positive",
            a.temperature, a.top_k
        )));
    }
    if a.prompt.is_empty() {
        return Err(TrainError::config("--prompt is empty"));
    }
    let (tensors, md) = load_tensors(&a.weights)?;
    ferrograd_nn::serialize::require_finite(&a.weights, &tensors)?;
    let in_file = |e: &dyn std::fmt::Display| TrainError::file(&a.weights, e);
    let bad = |k: &str| {
        in_file(&format!(
            "no {k} in the metadata (not written by ferrograd gpt train)"
        ))
    };
    let tok = TextTokenizer::from_metadata(&md)
        .map_err(|e| in_file(&e))?
        .ok_or_else(|| bad("vocab"))?;
    let config = GptConfig::from_metadata(&md).map_err(|e| in_file(&e))?;
    if tok.vocab_size() > config.vocab_size {
        return Err(in_file(&format!(
            "the tokenizer has {} tokens but the model {}",
            tok.vocab_size(),
            config.vocab_size
        )));
    }
    config
        .check_against(&|name| tensors.get(name).map(|t| t.dims().to_vec()))
        .map_err(|e| in_file(&e))?;
    let mut model = Gpt::new(config.clone(), &mut Rng::new(0))?;
    load_state_dict(&model, &tensors).map_err(|e| format!("{}: {e}", a.weights.display()))?;
    model.eval();
    let mut ids = tok
        .encode(&a.prompt)
        .map_err(|e| format!("--prompt: {e}"))?;
    let prompt_len = ids.len();
    // BPE tokens may end inside a character: print what the decoded text gained each step
    let mut printed = 0usize;
    if ids.is_empty() {
        return Err(TrainError::config("--prompt is empty"));
    }
    let mut rng = Rng::new(a.seed);
    print!("{}", a.prompt);
    let mut out = std::io::stdout();
    // Each new token costs one position through the KV cache. Learned absolute positions stop at
    // block_size, so when the cache is full it restarts from the last half-window of tokens.
    let block = config.block_size;
    let half = (block / 2).max(1);
    let mut caches = Vec::new();
    let prefill =
        |ids: &[u32], caches: &mut Vec<ferrograd_nn::KvCache>, keep: usize| -> Result<Tensor> {
            caches.clear();
            let ctx: Vec<i64> = ids[ids.len().saturating_sub(keep)..]
                .iter()
                .map(|&v| v as i64)
                .collect();
            let n = ctx.len();
            let x = Tensor::from_vec(ctx, [1, n])?;
            let l = no_grad(|| model.forward_cached(&x, caches))?;
            Ok(l.narrow(1, n - 1, 1)?)
        };
    let mut logits = prefill(&ids, &mut caches, block)?;
    for _ in 0..a.tokens {
        let last = logits.to_dtype(DType::F64)?.to_vec::<f64>()?;
        let pick = sample_top_k(&last, a.temperature, a.top_k, &mut rng)?;
        ids.push(pick as u32);
        let text = tok.decode(&ids[prompt_len..])?;
        let stable = text.trim_end_matches('\u{fffd}');
        if stable.len() > printed && stable.is_char_boundary(printed) {
            print!("{}", &stable[printed..]);
            printed = stable.len();
        }
        let _ = out.flush();
        logits = if caches.first().is_some_and(|c| c.len() >= block) {
            prefill(&ids, &mut caches, half)?
        } else {
            let x = Tensor::from_vec(vec![pick as i64], [1, 1])?;
            no_grad(|| model.forward_cached(&x, &mut caches))?
        };
    }
    println!();
    Ok(())
}
