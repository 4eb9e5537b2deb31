//! `ferrograd gpt train` and `ferrograd gpt sample`: a character-level GPT on a text corpus, with
//! nanoGPT's recipe (AdamW, decay on the linear layers' weights only, linear warmup then cosine
//! decay, gradient clipping at 1.0) and periodic train/val evaluation.

use clap::{Args, Subcommand};
use ferrograd_data::text::{random_blocks, read_corpus, CharTokenizer, TokenSplit};
use ferrograd_data::SubwordTokenizer;
use ferrograd_models::{Gpt, GptConfig};
use ferrograd_nn::clip::clip_grad_norm;
use ferrograd_nn::serialize::{load_tensors, save_tensors};
use ferrograd_nn::{
    load_state_dict, named_parameters, state_dict, AdamW, Module, Optimizer, ParamGroup,
};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand, Clone, Debug)]
pub enum GptCommand {
    /// Train a character-level GPT on a text file
    Train(Box<GptTrainArgs>),
    /// Generate text from trained weights
    Sample(GptSampleArgs),
}

#[derive(Args, Clone, Debug)]
pub struct GptTrainArgs {
    /// UTF-8 text corpus (first 90% trains, last 10% validates)
    #[arg(long, default_value = "data/tiny_shakespeare.txt")]
    pub data: PathBuf,
    /// char (vocabulary = the corpus's characters) or bpe (byte-level BPE trained on the
    /// training part of the corpus with the `tokenizers` crate)
    #[arg(long, default_value = "char")]
    pub tokenizer: String,
    /// Vocabulary size of the BPE tokenizer (256 bytes + merges)
    #[arg(long, default_value_t = 512)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    #[arg(long, default_value_t = 128)]
    pub n_embd: usize,
    #[arg(long, default_value_t = 64)]
    pub block_size: usize,
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// Micro-batches whose gradients are averaged before each optimizer step
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 2000)]
    pub max_iters: usize,
    /// Peak learning rate (after warmup)
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning rate at the end of the cosine decay
    #[arg(long, default_value_t = 1e-4)]
    pub min_lr: f64,
    #[arg(long, default_value_t = 100)]
    pub warmup_iters: usize,
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    #[arg(long, default_value_t = 250)]
    pub eval_interval: usize,
    /// Batches averaged for each train/val loss estimate
    #[arg(long, default_value_t = 20)]
    pub eval_iters: usize,
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where to write the weights (safetensors with the vocabulary and config in its metadata)
    #[arg(long, default_value = "gpt.safetensors")]
    pub out: PathBuf,
    /// Write `iter,train_loss,val_loss,lr` at each evaluation here (CSV)
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw the train and val loss curves as a PNG here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write a checkpoint (weights, optimizer state, iteration, random generators, metrics)
    /// here at every evaluation
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from a checkpoint: the run goes on exactly as if it had not stopped
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop at this iteration, after writing the checkpoint (to split a run in parts)
    #[arg(long)]
    pub stop_at: Option<usize>,
}

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

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The GPT's tokenizer: characters, or byte-level BPE.
enum TextTokenizer {
    Char(CharTokenizer),
    Bpe(Box<SubwordTokenizer>),
}

impl TextTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        match self {
            TextTokenizer::Char(t) => t.encode(text).map_err(err),
            TextTokenizer::Bpe(t) => t.encode_plain(text).map_err(err),
        }
    }
    fn decode(&self, ids: &[u32]) -> Result<String, String> {
        match self {
            TextTokenizer::Char(t) => t.decode(ids).map_err(err),
            TextTokenizer::Bpe(t) => t.decode(ids).map_err(err),
        }
    }
    fn vocab_size(&self) -> usize {
        match self {
            TextTokenizer::Char(t) => t.vocab_size(),
            TextTokenizer::Bpe(t) => t.vocab_size(),
        }
    }
    fn describe(&self) -> String {
        match self {
            TextTokenizer::Char(t) => format!("vocabulary {} characters", t.vocab_size()),
            TextTokenizer::Bpe(t) => format!("byte-level BPE vocabulary {}", t.vocab_size()),
        }
    }
    /// Metadata entries that let `gpt sample` rebuild it.
    fn metadata(&self) -> Result<(String, String), String> {
        Ok(match self {
            TextTokenizer::Char(t) => (
                "vocab".into(),
                serde_json::to_string(&t.chars().iter().collect::<String>()).map_err(err)?,
            ),
            TextTokenizer::Bpe(t) => ("tokenizer".into(), t.to_json().map_err(err)?),
        })
    }
}

pub fn run(c: &GptCommand) -> Result<(), String> {
    match c {
        GptCommand::Train(a) => train(a),
        GptCommand::Sample(a) => sample(a),
    }
}

/// nanoGPT's schedule: linear warmup, cosine decay to `min_lr` at `max_iters`.
fn lr_at(a: &GptTrainArgs, it: usize) -> f64 {
    if it < a.warmup_iters {
        return a.lr * (it + 1) as f64 / (a.warmup_iters + 1) as f64;
    }
    if it >= a.max_iters {
        return a.min_lr;
    }
    let ratio = (it - a.warmup_iters) as f64 / (a.max_iters - a.warmup_iters).max(1) as f64;
    a.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (a.lr - a.min_lr)
}

fn estimate(model: &Gpt, data: &[u32], a: &GptTrainArgs, rng: &mut Rng) -> Result<f64, String> {
    no_grad(|| {
        let mut s = 0.0;
        for _ in 0..a.eval_iters.max(1) {
            let (x, y) = random_blocks(data, a.batch_size, a.block_size, rng).map_err(err)?;
            s += Gpt::loss(&model.forward(&x).map_err(err)?, &y)
                .map_err(err)?
                .item()
                .map_err(err)?;
        }
        Ok(s / a.eval_iters.max(1) as f64)
    })
}

/// (iteration, loss) points of the train and val estimates.
type Curves = (Vec<(f64, f64)>, Vec<(f64, f64)>);

const CHECKPOINT_FORMAT: &str = "ferrograd-gpt-checkpoint-1";

/// The settings a resumed run must share with the run that wrote the checkpoint.
fn run_signature(a: &GptTrainArgs) -> serde_json::Value {
    serde_json::json!({
        "data": a.data.display().to_string(), "tokenizer": a.tokenizer, "vocab_size": a.vocab_size,
        "n_layer": a.n_layer, "n_head": a.n_head, "n_embd": a.n_embd, "block_size": a.block_size,
        "batch_size": a.batch_size, "grad_accum": a.grad_accum, "max_iters": a.max_iters,
        "lr": a.lr, "min_lr": a.min_lr, "warmup_iters": a.warmup_iters,
        "weight_decay": a.weight_decay, "dropout": a.dropout, "eval_interval": a.eval_interval,
        "eval_iters": a.eval_iters, "seed": a.seed,
    })
}

/// Where a run stands: everything besides the weights and the optimizer state.
#[derive(serde::Serialize, serde::Deserialize)]
struct Progress {
    format: String,
    /// Next iteration to run (its evaluation already done and logged).
    iter: usize,
    rng: [u64; 4],
    eval_rng: [u64; 4],
    tokens: usize,
    csv: String,
    train_curve: Vec<(f64, f64)>,
    val_curve: Vec<(f64, f64)>,
    run: serde_json::Value,
}

fn save_checkpoint(
    path: &std::path::Path,
    model: &Gpt,
    opt: &AdamW,
    progress: &Progress,
) -> Result<(), String> {
    let mut tensors = std::collections::BTreeMap::new();
    for (k, v) in state_dict(model) {
        tensors.insert(format!("model.{k}"), v);
    }
    for (k, v) in opt.state_dict().map_err(err)? {
        tensors.insert(format!("optim.{k}"), v);
    }
    let mut md = HashMap::new();
    md.insert(
        "progress".to_string(),
        serde_json::to_string(progress).map_err(err)?,
    );
    save_tensors(path, &tensors, Some(md)).map_err(err)
}

fn load_checkpoint(
    path: &std::path::Path,
    a: &GptTrainArgs,
    model: &Gpt,
    opt: &mut AdamW,
) -> Result<Progress, String> {
    let (tensors, md) = load_tensors(path).map_err(err)?;
    let progress: Progress = md
        .get("progress")
        .and_then(|p| serde_json::from_str(p).ok())
        .filter(|p: &Progress| p.format == CHECKPOINT_FORMAT)
        .ok_or_else(|| format!("{}: not a gpt train checkpoint", path.display()))?;
    if progress.run != run_signature(a) {
        return Err(format!(
            "{}: written by a run with other settings ({}); resume with the same flags",
            path.display(),
            progress.run
        ));
    }
    let part = |prefix: &str| -> std::collections::BTreeMap<String, Tensor> {
        tensors
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    };
    load_state_dict(model, &part("model.")).map_err(|e| format!("{}: {e}", path.display()))?;
    opt.load_state_dict(&part("optim."))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(progress)
}

fn train(a: &GptTrainArgs) -> Result<(), String> {
    let text = read_corpus(&a.data).map_err(err)?;
    let tok = match a.tokenizer.as_str() {
        "char" => TextTokenizer::Char(CharTokenizer::fit(&text).map_err(err)?),
        "bpe" => {
            // merges learned from the training part only, so validation text stays unseen
            let cut = text
                .char_indices()
                .nth(text.chars().count() * 9 / 10)
                .map_or(text.len(), |(i, _)| i);
            TextTokenizer::Bpe(Box::new(
                SubwordTokenizer::train_byte_level_bpe(&text[..cut], a.vocab_size).map_err(err)?,
            ))
        }
        other => return Err(format!("--tokenizer must be char or bpe, got {other:?}")),
    };
    let split = TokenSplit::new(tok.encode(&text)?, 0.9);
    let config = GptConfig {
        n_layer: a.n_layer,
        n_head: a.n_head,
        n_embd: a.n_embd,
        block_size: a.block_size,
        vocab_size: tok.vocab_size(),
        dropout: a.dropout,
        bias: true,
    };
    let mut rng = Rng::new(a.seed);
    let mut model = Gpt::new(config.clone(), &mut rng).map_err(err)?;
    let params = named_parameters(&model);
    let is_decayed = |n: &str| {
        n.ends_with("weight") && !n.contains("wte") && !n.contains("wpe") && !n.contains(".ln_")
    };
    let decay = params
        .iter()
        .filter(|(n, _)| is_decayed(n))
        .map(|(_, t)| t.clone())
        .collect();
    let rest = params
        .iter()
        .filter(|(n, _)| !is_decayed(n))
        .map(|(_, t)| t.clone())
        .collect();
    let all: Vec<Tensor> = params.iter().map(|(_, t)| t.clone()).collect();
    let mut opt = AdamW::with_groups(
        vec![
            ParamGroup::new(decay, a.lr, a.weight_decay),
            ParamGroup::new(rest, a.lr, 0.0),
        ],
        (0.9, 0.95),
        1e-8,
        false,
    )
    .map_err(err)?;
    println!(
        "GPT: {} parameters, {}, {} train / {} val tokens",
        ferrograd_nn::num_parameters(&model),
        tok.describe(),
        split.train.len(),
        split.val.len()
    );
    if a.grad_accum == 0 || a.batch_size == 0 || a.eval_iters == 0 {
        return Err("--grad-accum, --batch-size and --eval-iters must be positive".into());
    }
    let mut csv = String::from("iter,train_loss,val_loss,lr\n");
    // (iteration, loss) points of the train and val estimates
    let mut curves = (Vec::new(), Vec::new());
    let mut eval_rng = Rng::new(a.seed ^ 0x5eed);
    let t0 = Instant::now();
    let mut tokens = 0usize;
    let mut start = 0usize;
    let progress_at =
        |it: usize, rng: &Rng, eval_rng: &Rng, tokens: usize, csv: &str, curves: &Curves| {
            Progress {
                format: CHECKPOINT_FORMAT.into(),
                iter: it,
                rng: rng.state(),
                eval_rng: eval_rng.state(),
                tokens,
                csv: csv.to_string(),
                train_curve: curves.0.clone(),
                val_curve: curves.1.clone(),
                run: run_signature(a),
            }
        };
    if a.stop_at.is_some() && a.checkpoint.is_none() {
        return Err("--stop-at needs --checkpoint".into());
    }
    if let Some(p) = &a.resume {
        if a.dropout > 0.0 {
            // the attention layers' dropout streams are not in the checkpoint
            return Err("--resume is exact only without dropout (--dropout 0)".into());
        }
        let pr = load_checkpoint(p, a, &model, &mut opt)?;
        rng = Rng::from_state(pr.rng);
        eval_rng = Rng::from_state(pr.eval_rng);
        csv = pr.csv;
        curves = (pr.train_curve, pr.val_curve);
        start = pr.iter;
        println!("resumed from {} at iteration {start}", p.display());
    }
    for it in start..=a.max_iters {
        let resumed_here = a.resume.is_some() && it == start;
        if !resumed_here && (it % a.eval_interval.max(1) == 0 || it == a.max_iters) {
            model.eval();
            let tl = estimate(&model, &split.train, a, &mut eval_rng)?;
            let vl = estimate(&model, &split.val, a, &mut eval_rng)?;
            model.train();
            let rate = tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            println!("step {it}: train loss {tl:.4}, val loss {vl:.4} ({rate:.0} tokens/s)");
            curves.0.push((it as f64, tl));
            curves.1.push((it as f64, vl));
            csv.push_str(&format!("{it},{tl:.6},{vl:.6},{:e}\n", lr_at(a, it)));
            if let Some(p) = &a.metrics {
                ferrograd_nn::serialize::write_atomic(p, csv.as_bytes()).map_err(err)?;
            }
            if let Some(p) = &a.checkpoint {
                let pr = progress_at(it, &rng, &eval_rng, tokens, &csv, &curves);
                save_checkpoint(p, &model, &opt, &pr)?;
            }
        }
        if a.stop_at == Some(it) && it < a.max_iters {
            let Some(p) = &a.checkpoint else {
                return Err("--stop-at needs --checkpoint".into());
            };
            let pr = progress_at(it, &rng, &eval_rng, tokens, &csv, &curves);
            save_checkpoint(p, &model, &opt, &pr)?;
            println!(
                "stopped at iteration {it}; --resume {} continues",
                p.display()
            );
            return Ok(());
        }
        if it == a.max_iters {
            break;
        }
        opt.set_lr(lr_at(a, it));
        opt.zero_grad();
        // gradient accumulation: the mean of the micro-batches' losses, one backward each
        for _ in 0..a.grad_accum {
            let (x, y) =
                random_blocks(&split.train, a.batch_size, a.block_size, &mut rng).map_err(err)?;
            let loss = Gpt::loss(&model.forward(&x).map_err(err)?, &y).map_err(err)?;
            let lv = loss.item().map_err(err)?;
            if !lv.is_finite() {
                return Err(format!(
                    "iteration {it}: the loss is {lv}; training diverged (lr {})",
                    opt.lr()
                ));
            }
            loss.div_scalar(a.grad_accum as f64)
                .map_err(err)?
                .backward()
                .map_err(err)?;
            tokens += a.batch_size * a.block_size;
        }
        clip_grad_norm(&all, 1.0).map_err(err)?;
        opt.step().map_err(err)?;
    }
    let mut md = HashMap::new();
    let (k, v) = tok.metadata()?;
    md.insert(k, v);
    md.insert(
        "config".to_string(),
        serde_json::json!({"n_layer": a.n_layer, "n_head": a.n_head, "n_embd": a.n_embd, "block_size": a.block_size, "vocab_size": tok.vocab_size(), "bias": true}).to_string(),
    );
    save_tensors(&a.out, &state_dict(&model), Some(md)).map_err(err)?;
    println!("Saved weights to {}", a.out.display());
    if let Some(p) = &a.plot {
        crate::metrics::plot_curves(
            p,
            "GPT training",
            "iteration",
            "loss",
            &[("train", curves.0), ("val", curves.1)],
        )
        .map_err(err)?;
        println!("Saved plot to {}", p.display());
    }
    Ok(())
}

fn sample(a: &GptSampleArgs) -> Result<(), String> {
    let (tensors, md) = load_tensors(&a.weights).map_err(err)?;
    let bad = |k: &str| {
        format!(
            "{}: no {k} in the metadata (not written by ferrograd gpt train)",
            a.weights.display()
        )
    };
    let tok = match (md.get("tokenizer"), md.get("vocab")) {
        (Some(json), _) => TextTokenizer::Bpe(Box::new(
            SubwordTokenizer::from_json(json)
                .map_err(|e| format!("{}: {e}", a.weights.display()))?,
        )),
        (None, Some(v)) => {
            let vocab: String = serde_json::from_str(v).map_err(err)?;
            TextTokenizer::Char(CharTokenizer::from_chars(vocab.chars().collect()))
        }
        (None, None) => return Err(bad("vocab")),
    };
    let cfg: serde_json::Value =
        serde_json::from_str(md.get("config").ok_or_else(|| bad("config"))?).map_err(err)?;
    let u = |k: &str| cfg[k].as_u64().map(|v| v as usize).ok_or_else(|| bad(k));
    let config = GptConfig {
        n_layer: u("n_layer")?,
        n_head: u("n_head")?,
        n_embd: u("n_embd")?,
        block_size: u("block_size")?,
        vocab_size: u("vocab_size")?,
        dropout: 0.0,
        bias: true,
    };
    if tok.vocab_size() > config.vocab_size {
        return Err(format!(
            "{}: the tokenizer has {} tokens but the model {}",
            a.weights.display(),
            tok.vocab_size(),
            config.vocab_size
        ));
    }
    let mut model = Gpt::new(config.clone(), &mut Rng::new(0)).map_err(err)?;
    load_state_dict(&model, &tensors).map_err(|e| format!("{}: {e}", a.weights.display()))?;
    model.eval();
    let mut ids = tok
        .encode(&a.prompt)
        .map_err(|e| format!("--prompt: {e}"))?;
    let prompt_len = ids.len();
    // BPE tokens may end inside a character: print what the decoded text gained each step
    let mut printed = 0usize;
    if ids.is_empty() {
        return Err("--prompt is empty".into());
    }
    if a.temperature <= 0.0 || a.top_k == 0 {
        return Err("--temperature and --top-k must be positive".into());
    }
    let mut rng = Rng::new(a.seed);
    print!("{}", a.prompt);
    let mut out = std::io::stdout();
    // Each new token costs one position through the KV cache. Learned absolute positions stop at
    // block_size, so when the cache is full it restarts from the last half-window of tokens.
    let block = config.block_size;
    let half = (block / 2).max(1);
    let mut caches = Vec::new();
    let prefill = |ids: &[u32],
                   caches: &mut Vec<ferrograd_nn::KvCache>,
                   keep: usize|
     -> Result<Tensor, String> {
        caches.clear();
        let ctx: Vec<i64> = ids[ids.len().saturating_sub(keep)..]
            .iter()
            .map(|&v| v as i64)
            .collect();
        let n = ctx.len();
        let x = Tensor::from_vec(ctx, [1, n]).map_err(err)?;
        let l = no_grad(|| model.forward_cached(&x, caches)).map_err(err)?;
        l.narrow(1, n - 1, 1).map_err(err)
    };
    let mut logits = prefill(&ids, &mut caches, block)?;
    for _ in 0..a.tokens {
        let last = logits
            .to_dtype(DType::F64)
            .map_err(err)?
            .to_vec::<f64>()
            .map_err(err)?;
        // top-k, temperature, softmax, draw
        let mut order: Vec<usize> = (0..last.len()).collect();
        order.sort_by(|&i, &j| last[j].total_cmp(&last[i]));
        order.truncate(a.top_k.min(last.len()));
        let m = last[order[0]];
        let w: Vec<f64> = order
            .iter()
            .map(|&i| ((last[i] - m) / a.temperature).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mut r = rng.next_f64() * total;
        let mut pick = order[order.len() - 1];
        for (k, &i) in order.iter().enumerate() {
            r -= w[k];
            if r <= 0.0 {
                pick = i;
                break;
            }
        }
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
            let x = Tensor::from_vec(vec![pick as i64], [1, 1]).map_err(err)?;
            no_grad(|| model.forward_cached(&x, &mut caches)).map_err(err)?
        };
    }
    println!();
    Ok(())
}
