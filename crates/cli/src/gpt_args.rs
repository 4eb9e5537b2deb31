//! The flags of `ferrograd gpt train` and the run's settings (compared on resume).

use crate::common::CommonArgs;
use clap::{Args, Subcommand};
use ferrograd_train::Setting;
use std::path::PathBuf;

#[derive(Subcommand, Clone, Debug)]
pub enum GptCommand {
    /// Train a character-level GPT on a text file
    Train(Box<GptTrainArgs>),
    /// Generate text from trained weights
    Sample(crate::gpt_sample::GptSampleArgs),
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

/// The settings that fix a run (all but the output paths and `--max-steps`).
pub fn settings(a: &GptTrainArgs, seed: u64) -> Vec<Setting> {
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
