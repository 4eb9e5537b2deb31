//! The flags of `ferrograd finetune` and what they fix: the run's settings (compared on
//! resume) and what the weights file records.

use crate::common::{opt, CommonArgs};
use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_models::bert::Pooling;
use ferrograd_models::text_classifier::{ClassifierInfo, LoraSettings};
use ferrograd_train::Setting;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct FinetuneArgs {
    /// Pretrained model folder (config.json, model.safetensors, tokenizer.json)
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Labelled examples: JSON lines (.jsonl, .jsonl.gz) or CSV with a header (.csv)
    #[arg(long)]
    pub data: PathBuf,
    /// Field(s) holding the text; several, comma-separated, are joined by a newline
    #[arg(long, default_value = "text")]
    pub text_field: String,
    #[arg(long, default_value = "label")]
    pub label_field: String,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Tokens kept per example, special tokens included
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Fraction of the steps spent warming the learning rate up from 0
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// Largest gradient norm (0: no clipping)
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Dropout before the head (the encoder uses its config's dropout)
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// Train only the head: a linear probe on the frozen encoder
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Train LoRA adapters of this rank (and the head) with the encoder frozen
    #[arg(long)]
    pub lora_rank: Option<usize>,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Layers that get adapters, by name suffix: query, key, value, attention.output.dense,
    /// intermediate.dense, output.dense
    #[arg(long, default_value = "query,value")]
    pub lora_targets: String,
    /// Sentence vector for the head: mean (over tokens) or cls (BERT's pooler)
    #[arg(long, default_value = "mean")]
    pub pooling: String,
    /// Fraction of the examples held out for evaluation
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Use at most this many training examples (after the split)
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Use at most this many held-out examples
    #[arg(long)]
    pub max_val: Option<usize>,
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// With LoRA: also write the whole model with the adapters merged into the base weights
    #[arg(long)]
    pub export_merged: Option<PathBuf>,
    /// The best epoch's weights go to --out [default: finetuned.safetensors]: the whole model,
    /// or only the head (and adapters) when the encoder is frozen or LoRA is used (the base
    /// stays in --model)
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What the weights file records besides its tensors (`mode`: what they cover).
pub fn info(a: &FinetuneArgs, classes: &[String], pooling: Pooling, mode: &str) -> ClassifierInfo {
    ClassifierInfo {
        classes: classes.to_vec(),
        pooling,
        max_len: a.max_len,
        mode: mode.into(),
        lora: a.lora_rank.map(|rank| LoraSettings {
            rank,
            alpha: a.lora_alpha,
            targets: a
                .lora_targets
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
        }),
    }
}

/// The run's settings: all fix it except `--log-every` and `--max-steps`.
pub fn settings(a: &FinetuneArgs, seed: u64) -> Vec<Setting> {
    let mut s = vec![
        Setting::fixed("--model", a.model.display()),
        Setting::fixed("--data", a.data.display()),
        Setting::fixed("--text-field", &a.text_field),
        Setting::fixed("--label-field", &a.label_field),
        Setting::fixed("--lr", a.lr),
        Setting::fixed("--batch-size", a.batch_size),
        Setting::fixed("--max-len", a.max_len),
        Setting::fixed("--weight-decay", a.weight_decay),
        Setting::fixed("--warmup-ratio", a.warmup_ratio),
        Setting::fixed("--clip", a.clip),
        Setting::fixed("--dropout", a.dropout),
        Setting::fixed("--freeze-encoder", a.freeze_encoder),
        Setting::fixed("--lora-rank", opt(a.lora_rank)),
        Setting::fixed("--lora-alpha", a.lora_alpha),
        Setting::fixed("--lora-targets", &a.lora_targets),
        Setting::fixed("--pooling", &a.pooling),
        Setting::fixed("--val-fraction", a.val_fraction),
        Setting::fixed("--max-train", opt(a.max_train)),
        Setting::fixed("--max-val", opt(a.max_val)),
        Setting::fixed("--seed", seed),
        // the schedule's length is fixed by the epochs
        Setting::fixed("--epochs", a.epochs),
        Setting::changeable("--log-every", a.log_every),
    ];
    s.extend(a.common.settings());
    s
}
