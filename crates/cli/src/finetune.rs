//! `ferrograd finetune`: a classification head on a pretrained sentence Transformer, trained by
//! the Trainer in one of three ways: full fine-tuning, a linear probe on the frozen encoder
//! (`--freeze-encoder`), or LoRA adapters on chosen linear layers (`--lora-rank`). AdamW (decay
//! 0.01, none on biases and LayerNorm weights), linear warmup then linear decay to 0 (Hugging
//! Face's `get_linear_schedule_with_warmup`, as a sequence of two linear schedules), gradient
//! clipping, dropout; accuracy and macro-F1 on a held-out split after each epoch, and the best
//! epoch's weights kept.

use crate::common::{opt, CommonArgs};
use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_data::{read_labelled, LabelledText, SubwordTokenizer};
use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::text_classifier::{ClassifierInfo, LoraSettings};
use ferrograd_models::Bert;
use ferrograd_nn::optim::decay_groups;
use ferrograd_nn::serialize::save_tensors;
use ferrograd_nn::{state_dict, trainable_parameters, AdamW, LrScheduler};
use ferrograd_tensor::{Rng, Tensor};
use ferrograd_train::callbacks::{Column, EpochEnd, LogLines, LossShown, ProgressBar};
use ferrograd_train::tasks::text_classification::{
    warmup_linear_decay, Examples, TextClassifierStep,
};
use ferrograd_train::{
    Console, Goal, RecordKind, Result, Setting, TrainConfig, TrainError, Trainer,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

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
fn info(a: &FinetuneArgs, classes: &[String], pooling: Pooling, mode: &str) -> ClassifierInfo {
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

/// The tensors to save: everything for full fine-tuning, else only what was trained.
fn tensors_to_save(model: &BertClassifier, full: bool) -> BTreeMap<String, Tensor> {
    if full {
        state_dict(model)
    } else {
        trainable_parameters(model).into_iter().collect()
    }
}

/// Peak resident memory of this process, MB (VmHWM); None off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn settings(a: &FinetuneArgs, seed: u64) -> Vec<Setting> {
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

pub fn run(a: &FinetuneArgs) -> Result<()> {
    let c = &a.common;
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 {
        return Err(TrainError::config(
            "--epochs, --batch-size and --log-every must be positive",
        ));
    }
    if !(a.lr.is_finite() && a.lr > 0.0 && (0.0..1.0).contains(&a.warmup_ratio)) {
        return Err(TrainError::config(format!(
            "--lr must be positive and --warmup-ratio in [0, 1), got {} and {}",
            a.lr, a.warmup_ratio
        )));
    }
    if a.freeze_encoder && a.lora_rank.is_some() {
        return Err(TrainError::config(
            "--freeze-encoder and --lora-rank exclude each other",
        ));
    }
    if a.export_merged.is_some() && a.lora_rank.is_none() {
        return Err(TrainError::config("--export-merged needs --lora-rank"));
    }
    let out = c
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("finetuned.safetensors"));
    c.outputs(Some(&out))
        .file("--export-merged", a.export_merged.as_deref())
        .input("--data", Some(&a.data))
        .input("--model", Some(&a.model.join("model.safetensors")))
        .check()?;
    let seed = c.seed_or(0);
    let pooling = Pooling::parse(&a.pooling)?;
    let fields: Vec<String> = a
        .text_field
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let data = read_labelled(&a.data, &fields, &a.label_field)?;
    let (mut train, mut val) = data.split(a.val_fraction, seed)?;
    if let Some(n) = a.max_train {
        train = train.select(&(0..n.min(train.len())).collect::<Vec<_>>());
    }
    if let Some(n) = a.max_val {
        val = val.select(&(0..n.min(val.len())).collect::<Vec<_>>());
    }
    crate::embed::require_weights(&a.model)?;
    let tok = SubwordTokenizer::from_file(a.model.join("tokenizer.json"), a.max_len)?;
    let tokenize = |d: &LabelledText| -> Result<Vec<Vec<u32>>> {
        d.texts.iter().map(|t| Ok(tok.encode(t)?)).collect()
    };
    let (train_ids, val_ids) = (tokenize(&train)?, tokenize(&val)?);

    let mut rng = Rng::new(seed);
    let mut bert = Bert::from_pretrained(&a.model)?;
    let mode = if let Some(r) = a.lora_rank {
        let targets: Vec<String> = a
            .lora_targets
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        let adapted = bert.attach_lora(&targets, r, a.lora_alpha, &mut rng)?;
        println!(
            "LoRA rank {r}, alpha {} on {} layers",
            a.lora_alpha,
            adapted.len()
        );
        "lora"
    } else if a.freeze_encoder {
        bert.freeze()?;
        "linear-probe"
    } else {
        "full"
    };
    let model = BertClassifier::new(bert, data.classes.len(), pooling, a.dropout, &mut rng)?;
    model.seed_dropout(seed);
    let n_trainable: usize = trainable_parameters(&model)
        .iter()
        .map(|(_, t)| t.numel())
        .sum();
    println!(
        "{}: {} train / {} held-out examples, classes {:?} (train counts {:?}); {mode}: {n_trainable} of {} parameters trained",
        a.data.display(),
        train.len(),
        val.len(),
        data.classes,
        train.class_counts(),
        ferrograd_nn::num_parameters(&model),
    );
    let groups = decay_groups(&model, a.lr, a.weight_decay, |n| {
        !(n.ends_with(".bias") || n.contains("LayerNorm"))
    });
    let mut opt = Box::new(AdamW::with_groups(groups, (0.9, 0.999), 1e-8, false)?);
    let steps_per_epoch = train.len().div_ceil(a.batch_size);
    let total = steps_per_epoch * a.epochs;
    let warmup = (a.warmup_ratio * total as f64).round() as usize;
    let sched = LrScheduler::new(warmup_linear_decay(warmup, total), opt.as_mut())?;
    let mut examples = Examples {
        ids: Arc::new(train_ids),
        labels: Arc::new(train.labels.clone()),
        batch: a.batch_size,
        seed,
    };
    let mut step = TextClassifierStep {
        model,
        val_ids,
        val_labels: val.labels.clone(),
        classes: data.classes.len(),
    };
    let mut tc = TrainConfig {
        epochs: a.epochs,
        clip_grad_norm: (a.clip > 0.0).then_some(a.clip),
        schedule_per_batch: true,
        log_every: a.log_every,
        eval_each_epoch: true,
        best_metric: Some(("val_macro_f1".into(), Goal::Maximize)),
        restore_best: true,
        workload: "finetune".into(),
        settings: settings(a, seed),
        ..TrainConfig::default()
    };
    c.configure(&mut tc);
    let mut trainer = Trainer::new(tc, opt, Some(sched));
    let resume = match &c.resume {
        Some(p) => {
            let (changed, point) = trainer.restore(p, &mut step, &mut examples)?;
            println!(
                "Resumed from {} at epoch {}, step {}",
                p.display(),
                point.epoch + 1,
                point.step
            );
            if !changed.is_empty() {
                println!("Changed on resume: {}", changed.join(", "));
            }
            Some(point)
        }
        None => None,
    };
    let console = Console::default();
    trainer.add_callback(Box::new(ProgressBar::new(&console, "ex")));
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::EpochMean, true)
            .epoch_line(Box::new(epoch_line)),
    ));
    c.add_callbacks(
        &mut trainer,
        (
            vec![
                Column::Epoch("epoch"),
                Column::Fixed("train_loss", "loss", 6),
                Column::Fixed("val_accuracy", "val_accuracy", 6),
                Column::Fixed("val_macro_f1", "val_macro_f1", 6),
                Column::Fixed("seconds", "seconds", 2),
            ],
            &[RecordKind::Epoch],
        ),
    );
    let summary = trainer.fit(&mut step, &mut examples, resume)?;
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
        return Ok(());
    }
    // the model holds the best epoch's weights (the Trainer restored them)
    save_tensors(
        &out,
        &tensors_to_save(&step.model, mode == "full"),
        Some(info(a, &data.classes, pooling, mode).metadata(&a.model)),
    )?;
    if let Some(b) = &summary.best {
        let acc = summary
            .history
            .iter()
            .find(|r| r.kind == RecordKind::Epoch && r.epoch == b.epoch)
            .and_then(|r| r.get("val_accuracy"))
            .unwrap_or(f64::NAN);
        println!(
            "Best epoch {}: held-out accuracy {:.2}%, macro-F1 {:.4}; weights in {} ({n_trainable} trained parameters, peak memory {:.0} MB)",
            b.epoch,
            100.0 * acc,
            b.value,
            out.display(),
            peak_rss_mb().unwrap_or(f64::NAN)
        );
    }
    if let Some(p) = &a.export_merged {
        step.model.bert.merge_lora()?;
        let mut merged = info(a, &data.classes, pooling, "full");
        merged.lora = None;
        save_tensors(p, &state_dict(&step.model), Some(merged.metadata(&a.model)))?;
        println!("merged model written to {}", p.display());
    }
    Ok(())
}

/// `Epoch [e/n] train loss x, held-out accuracy a% (c/t), macro-F1 f, s s[, best so far: saved]`.
fn epoch_line(e: &EpochEnd<'_>) -> String {
    let ev = e.eval.unwrap_or(&[]);
    let get = |k: &str| ev.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v);
    format!(
        "Epoch [{}/{}] train loss {:.4}, held-out accuracy {:.2}% ({}/{}), macro-F1 {:.4}, {:.1} s{}",
        e.epoch + 1,
        e.epochs.unwrap_or(0),
        e.loss,
        100.0 * get("val_accuracy"),
        get("val_correct") as usize,
        get("val_total") as usize,
        get("val_macro_f1"),
        e.seconds,
        if e.is_best { ", best so far: kept" } else { "" }
    )
}
