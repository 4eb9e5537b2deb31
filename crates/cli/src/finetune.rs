//! `ferrograd finetune`: a classification head on a pretrained sentence Transformer, trained by
//! the Trainer in one of three ways: full fine-tuning, a linear probe on the frozen encoder
//! (`--freeze-encoder`), or LoRA adapters on chosen linear layers (`--lora-rank`). AdamW (decay
//! 0.01, none on biases and LayerNorm weights), linear warmup then linear decay to 0 (Hugging
//! Face's `get_linear_schedule_with_warmup`, as a sequence of two linear schedules), gradient
//! clipping, dropout; accuracy and macro-F1 on a held-out split after each epoch, and the best
//! epoch's weights kept.

use crate::classify::parse_pooling;
use crate::common::{opt, CommonArgs};
use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_data::subword::pad_batch;
use ferrograd_data::{read_labelled, LabelledText, SubwordTokenizer};
use ferrograd_models::bert::BertClassifier;
use ferrograd_models::Bert;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::optim::decay_groups;
use ferrograd_nn::serialize::save_tensors;
use ferrograd_nn::{state_dict, trainable_parameters, AdamW, LrScheduler, Module, Schedule};
use ferrograd_tensor::{no_grad, Rng, Tensor};
use ferrograd_train::callbacks::{Column, EpochEnd, LogLines, LossShown, ProgressBar};
use ferrograd_train::metrics::accuracy_and_macro_f1;
use ferrograd_train::{
    Batches, Console, Goal, RecordKind, Result, Setting, StepOutput, TrainConfig, TrainError,
    TrainStep, Trainer,
};
use std::collections::{BTreeMap, HashMap};
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

/// What a saved classifier needs besides its tensors, kept in the safetensors metadata.
fn metadata(a: &FinetuneArgs, classes: &[String], mode: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("format".into(), "pt".into());
    m.insert("ferrograd.task".into(), "sequence-classification".into());
    m.insert("ferrograd.mode".into(), mode.into());
    m.insert(
        "ferrograd.classes".into(),
        serde_json::json!(classes).to_string(),
    );
    m.insert("ferrograd.pooling".into(), a.pooling.clone());
    m.insert("ferrograd.max_len".into(), a.max_len.to_string());
    m.insert("ferrograd.base".into(), a.model.display().to_string());
    if let Some(r) = a.lora_rank {
        m.insert("ferrograd.lora_rank".into(), r.to_string());
        m.insert("ferrograd.lora_alpha".into(), a.lora_alpha.to_string());
        m.insert("ferrograd.lora_targets".into(), a.lora_targets.clone());
    }
    m
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

/// Hugging Face's linear schedule as a composition: from 0 up to the rate over `warmup` steps,
/// then down to 0 at `total`.
pub fn warmup_linear_decay(warmup: usize, total: usize) -> Schedule {
    let decay = Schedule::Linear {
        start_factor: 1.0,
        end_factor: 0.0,
        total_iters: (total - warmup.min(total)).max(1),
    };
    if warmup == 0 {
        return decay;
    }
    Schedule::Sequential {
        schedules: vec![
            Schedule::Linear {
                start_factor: 0.0,
                end_factor: 1.0,
                total_iters: warmup,
            },
            decay,
        ],
        milestones: vec![warmup],
    }
}

/// Predicted classes of `ids` (token id lists), in batches sorted by length.
fn predict(model: &BertClassifier, ids: &[Vec<u32>], batch: usize) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![0usize; ids.len()];
    for chunk in order.chunks(batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let b = pad_batch(&seqs, 0)?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask))?;
        let am = logits.argmax(-1, false)?.to_vec::<i64>()?;
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = am[row] as usize;
        }
    }
    Ok(out)
}

/// A padded batch of token ids, its mask and its labels.
struct TextBatch {
    ids: Tensor,
    mask: Tensor,
    labels: Tensor,
}

/// The training examples in a fresh order each epoch, from `(seed, epoch)`.
struct Examples {
    ids: Arc<Vec<Vec<u32>>>,
    labels: Arc<Vec<usize>>,
    batch: usize,
    seed: u64,
}

impl Batches for Examples {
    type Batch = TextBatch;
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(self.ids.len().div_ceil(self.batch))
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<TextBatch>> + '_>> {
        let mut order: Vec<usize> = (0..self.ids.len()).collect();
        let e = epoch as u64 + 1;
        Rng::new(self.seed ^ e.wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch).map(<[usize]>::to_vec).collect();
        let (ids, labels) = (self.ids.clone(), self.labels.clone());
        Ok(Box::new(chunks.into_iter().skip(start).map(move |c| {
            let seqs: Vec<Vec<u32>> = c.iter().map(|&j| ids[j].clone()).collect();
            let b = pad_batch(&seqs, 0)?;
            let y: Vec<i64> = c.iter().map(|&j| labels[j] as i64).collect();
            Ok(TextBatch {
                ids: b.ids,
                mask: b.mask,
                labels: Tensor::from_vec(y, [c.len()])?,
            })
        })))
    }
}

/// Cross-entropy of the classifier's logits; the evaluation is the held-out split's accuracy
/// and macro-F1.
struct ClassifierStep {
    model: BertClassifier,
    val_ids: Vec<Vec<u32>>,
    val_labels: Vec<usize>,
    classes: usize,
}

impl TrainStep for ClassifierStep {
    type Batch = TextBatch;
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, b: TextBatch) -> Result<StepOutput> {
        let n = b.labels.numel();
        let logits = self.model.logits(&b.ids, &b.mask)?;
        let loss = cross_entropy(&logits, &b.labels, &ClassLossOptions::default())?;
        Ok(StepOutput::new(loss, n))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let pred = predict(&self.model, &self.val_ids, 64)?;
        let (acc, f1) = accuracy_and_macro_f1(&pred, &self.val_labels, self.classes)?;
        let correct = pred
            .iter()
            .zip(&self.val_labels)
            .filter(|(p, t)| p == t)
            .count();
        Ok(vec![
            ("val_accuracy".into(), acc),
            ("val_macro_f1".into(), f1),
            ("val_correct".into(), correct as f64),
            ("val_total".into(), pred.len() as f64),
        ])
    }
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
    let pooling = parse_pooling(&a.pooling)?;
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
    let mut step = ClassifierStep {
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
        Some(metadata(a, &data.classes, mode)),
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
        let mut meta = metadata(a, &data.classes, "full");
        meta.remove("ferrograd.lora_rank");
        save_tensors(p, &state_dict(&step.model), Some(meta))?;
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
