//! `ferrograd gpt train` and `ferrograd gpt sample`: a character-level (or byte-level BPE) GPT
//! on a text corpus with nanoGPT's recipe (AdamW, decay on the linear layers' weights only,
//! linear warmup then cosine decay as one sequential schedule, gradient clipping at 1.0),
//! trained by the Trainer with train/val estimates every `--eval-interval` iterations.

use crate::common::CommonArgs;
use clap::{Args, Subcommand};
use ferrograd_data::text::{random_blocks, read_corpus, CharTokenizer, TokenSplit};
use ferrograd_data::SubwordTokenizer;
use ferrograd_models::gpt::sample_top_k;
use ferrograd_models::{Gpt, GptConfig};
use ferrograd_nn::optim::decay_groups;
use ferrograd_nn::serialize::{load_tensors, save_tensors};
use ferrograd_nn::{load_state_dict, state_dict, AdamW, Forward, LrScheduler, Module, Schedule};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use ferrograd_train::callbacks::{plot_curves, Column, EvalEnd, LogLines, ProgressBar};
use ferrograd_train::{
    Batches, Console, RecordKind, Setting, StepOutput, TrainConfig, TrainError, TrainStep, Trainer,
};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Iterations (optimizer steps) of the run; the schedule's length
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
    /// A training-loss record (TensorBoard, the plot's source) every N iterations
    #[arg(long, default_value_t = 10)]
    pub log_every: usize,
    #[command(flatten)]
    pub common: CommonArgs,
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

pub fn run(c: &GptCommand) -> ferrograd_train::Result<()> {
    match c {
        GptCommand::Train(a) => train(a),
        GptCommand::Sample(a) => sample(a).map_err(TrainError::from),
    }
}

/// nanoGPT's schedule as a composition: linear warmup over `warmup_iters` from
/// `lr / (warmup + 1)` (the rate of iteration `it` is `lr (it + 1) / (warmup + 1)`), then cosine
/// decay to `min_lr` at `max_iters`.
pub fn nanogpt_schedule(a: &GptTrainArgs) -> Schedule {
    let cosine = Schedule::Cosine {
        t_max: a.max_iters.saturating_sub(a.warmup_iters).max(1),
        eta_min: a.min_lr,
    };
    if a.warmup_iters == 0 {
        return cosine;
    }
    Schedule::Sequential {
        schedules: vec![
            Schedule::Linear {
                start_factor: 1.0 / (a.warmup_iters + 1) as f64,
                end_factor: 1.0,
                total_iters: a.warmup_iters,
            },
            cosine,
        ],
        milestones: vec![a.warmup_iters],
    }
}

/// Random contiguous blocks of the training tokens, drawn from one generator: an endless source
/// whose state is that generator.
struct RandomBlocks {
    data: Arc<Vec<u32>>,
    batch: usize,
    block: usize,
    rng: Rng,
}

impl Batches for RandomBlocks {
    type Batch = (Tensor, Tensor);
    fn batches_per_epoch(&self) -> Option<usize> {
        None
    }
    fn epoch(
        &mut self,
        _epoch: usize,
        _start: usize,
    ) -> ferrograd_train::Result<Box<dyn Iterator<Item = ferrograd_train::Result<Self::Batch>> + '_>>
    {
        Ok(Box::new(std::iter::repeat_with(move || {
            Ok(random_blocks(
                &self.data,
                self.batch,
                self.block,
                &mut self.rng,
            )?)
        })))
    }
    fn state(&self) -> Value {
        serde_json::json!(self.rng.state())
    }
    fn load_state(&mut self, v: &Value) -> ferrograd_train::Result<()> {
        self.rng = Rng::from_state(rng_state(v)?);
        Ok(())
    }
}

fn rng_state(v: &Value) -> ferrograd_train::Result<[u64; 4]> {
    serde_json::from_value(v.clone())
        .map_err(|e| TrainError::config(format!("checkpoint: bad generator state: {e}")))
}

/// The step: next-token cross-entropy; the evaluation: nanoGPT's estimates of the train and val
/// losses over `eval_iters` random batches each, from their own generator.
struct GptStep {
    model: Gpt,
    split: TokenSplit,
    eval_rng: Rng,
    batch: usize,
    block: usize,
    eval_iters: usize,
}

impl GptStep {
    fn estimate(&mut self, val: bool) -> ferrograd_train::Result<f64> {
        let data = if val {
            &self.split.val
        } else {
            &self.split.train
        };
        let mut s = 0.0;
        for _ in 0..self.eval_iters {
            let (x, y) = random_blocks(data, self.batch, self.block, &mut self.eval_rng)?;
            s += no_grad(|| Gpt::loss(&self.model.forward(&x)?, &y))?.item()?;
        }
        Ok(s / self.eval_iters as f64)
    }
}

impl TrainStep for GptStep {
    type Batch = (Tensor, Tensor);
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, (x, y): Self::Batch) -> ferrograd_train::Result<StepOutput> {
        let tokens = x.numel();
        Ok(StepOutput::new(
            Gpt::loss(&self.model.forward(&x)?, &y)?,
            tokens,
        ))
    }
    fn evaluate(&mut self) -> ferrograd_train::Result<Vec<(String, f64)>> {
        let tl = self.estimate(false)?;
        let vl = self.estimate(true)?;
        Ok(vec![("train_loss".into(), tl), ("val_loss".into(), vl)])
    }
    fn state(&self) -> Value {
        serde_json::json!(self.eval_rng.state())
    }
    fn load_state(&mut self, v: &Value) -> ferrograd_train::Result<()> {
        self.eval_rng = Rng::from_state(rng_state(v)?);
        Ok(())
    }
}

/// The settings that fix a run (all but the output paths and `--max-steps`).
fn settings(a: &GptTrainArgs, seed: u64) -> Vec<Setting> {
    let mut s = vec![
        Setting::fixed("--data", a.data.display()),
        Setting::fixed("--tokenizer", &a.tokenizer),
        Setting::fixed("--vocab-size", a.vocab_size),
        Setting::fixed("--n-layer", a.n_layer),
        Setting::fixed("--n-head", a.n_head),
        Setting::fixed("--n-embd", a.n_embd),
        Setting::fixed("--block-size", a.block_size),
        Setting::fixed("--batch-size", a.batch_size),
        Setting::fixed("--grad-accum", a.grad_accum),
        Setting::fixed("--max-iters", a.max_iters),
        Setting::fixed("--lr", a.lr),
        Setting::fixed("--min-lr", a.min_lr),
        Setting::fixed("--warmup-iters", a.warmup_iters),
        Setting::fixed("--weight-decay", a.weight_decay),
        Setting::fixed("--dropout", a.dropout),
        Setting::fixed("--eval-interval", a.eval_interval),
        Setting::fixed("--eval-iters", a.eval_iters),
        Setting::fixed("--seed", seed),
        Setting::changeable("--log-every", a.log_every),
    ];
    s.extend(a.common.settings());
    s
}

fn train(a: &GptTrainArgs) -> ferrograd_train::Result<()> {
    let c = &a.common;
    if a.grad_accum == 0
        || a.batch_size == 0
        || a.eval_iters == 0
        || a.eval_interval == 0
        || a.log_every == 0
    {
        return Err(TrainError::config(
            "--grad-accum, --batch-size, --eval-iters, --eval-interval and --log-every must be positive",
        ));
    }
    let out = c
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("gpt.safetensors"));
    c.outputs(Some(&out))
        .input("--data", Some(&a.data))
        .check()?;
    let seed = c.seed_or(1337);
    let text = read_corpus(&a.data)?;
    let tok = match a.tokenizer.as_str() {
        "char" => TextTokenizer::Char(CharTokenizer::fit(&text)?),
        "bpe" => {
            // merges learned from the training part only, so validation text stays unseen
            let cut = text
                .char_indices()
                .nth(text.chars().count() * 9 / 10)
                .map_or(text.len(), |(i, _)| i);
            TextTokenizer::Bpe(Box::new(SubwordTokenizer::train_byte_level_bpe(
                &text[..cut],
                a.vocab_size,
            )?))
        }
        other => {
            return Err(TrainError::config(format!(
                "--tokenizer must be char or bpe, got {other:?}"
            )))
        }
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
    // one generator initialises the weights and then draws the training blocks
    let mut rng = Rng::new(seed);
    let model = Gpt::new(config, &mut rng)?;
    // decay on the linear layers' weights only (not embeddings, layer norms or biases)
    let groups = decay_groups(&model, a.lr, a.weight_decay, |n| {
        n.ends_with("weight") && !n.contains("wte") && !n.contains("wpe") && !n.contains(".ln_")
    });
    let mut opt = Box::new(AdamW::with_groups(groups, (0.9, 0.95), 1e-8, false)?);
    let sched = LrScheduler::new(nanogpt_schedule(a), opt.as_mut())?;
    println!(
        "GPT: {} parameters, {}, {} train / {} val tokens",
        ferrograd_nn::num_parameters(&model),
        tok.describe(),
        split.train.len(),
        split.val.len()
    );
    let mut data = RandomBlocks {
        data: Arc::new(split.train.clone()),
        batch: a.batch_size,
        block: a.block_size,
        rng,
    };
    let mut step = GptStep {
        model,
        split,
        eval_rng: Rng::new(seed ^ 0x5eed),
        batch: a.batch_size,
        block: a.block_size,
        eval_iters: a.eval_iters,
    };
    let mut tc = TrainConfig {
        total_steps: Some(a.max_iters),
        grad_accum: a.grad_accum,
        clip_grad_norm: Some(1.0),
        schedule_per_batch: true,
        log_every: a.log_every,
        eval_every: Some(a.eval_interval),
        eval_at_start_and_end: true,
        workload: "gpt".into(),
        settings: settings(a, seed),
        ..TrainConfig::default()
    };
    c.configure(&mut tc);
    let mut trainer = Trainer::new(tc, opt, Some(sched));
    let resume = match &c.resume {
        Some(p) => {
            let (changed, point) = trainer.restore(p, &mut step, &mut data)?;
            println!("resumed from {} at iteration {}", p.display(), point.step);
            if !changed.is_empty() {
                println!("changed on resume: {}", changed.join(", "));
            }
            Some(point)
        }
        None => None,
    };
    let console = Console::default();
    trainer.add_callback(Box::new(ProgressBar::new(&console, "tokens")));
    trainer.add_callback(Box::new(LogLines::new(&console).eval_line(Box::new(
        |e: &EvalEnd<'_>| {
            let get = |k: &str| {
                e.metrics
                    .iter()
                    .find(|(n, _)| n == k)
                    .map_or(f64::NAN, |(_, v)| *v)
            };
            format!(
                "step {}: train loss {:.4}, val loss {:.4} ({:.0} tokens/s)",
                e.step,
                get("train_loss"),
                get("val_loss"),
                e.samples_per_s
            )
        },
    ))));
    c.add_callbacks(
        &mut trainer,
        (
            vec![
                Column::Step("iter"),
                Column::Fixed("train_loss", "train_loss", 6),
                Column::Fixed("val_loss", "val_loss", 6),
                Column::Exp("lr", "lr"),
            ],
            &[RecordKind::Eval],
        ),
    );
    let summary = trainer.fit(&mut step, &mut data, resume)?;
    if summary.stopped_at_max_steps {
        match &c.checkpoint {
            Some(p) => println!(
                "stopped at iteration {}; --resume {} continues",
                summary.steps,
                p.display()
            ),
            None => println!(
                "stopped at iteration {} (no --checkpoint to resume from)",
                summary.steps
            ),
        }
        return Ok(());
    }
    let mut md = HashMap::new();
    let (k, v) = tok.metadata()?;
    md.insert(k, v);
    md.insert(
        "config".to_string(),
        serde_json::json!({"n_layer": a.n_layer, "n_head": a.n_head, "n_embd": a.n_embd, "block_size": a.block_size, "vocab_size": tok.vocab_size(), "bias": true}).to_string(),
    );
    save_tensors(&out, &state_dict(&step.model), Some(md))?;
    println!("Saved weights to {}", out.display());
    if let Some(p) = &c.plot {
        let curve = |key: &str| -> Vec<(f64, f64)> {
            summary
                .history
                .iter()
                .filter(|r| r.kind == RecordKind::Eval)
                .filter_map(|r| Some((r.step as f64, r.get(key)?)))
                .collect()
        };
        plot_curves(
            p,
            "GPT training",
            ("iteration", "loss"),
            &[("train", curve("train_loss")), ("val", curve("val_loss"))],
        )?;
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
        let pick = sample_top_k(&last, a.temperature, a.top_k, &mut rng).map_err(err)?;
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
