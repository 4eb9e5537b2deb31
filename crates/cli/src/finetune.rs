//! `ferrograd finetune`: a classification head on a pretrained sentence Transformer, trained in
//! one of three ways: full fine-tuning, a linear probe on the frozen encoder (`--freeze-encoder`),
//! or LoRA adapters on chosen linear layers (`--lora-rank`). AdamW (decay 0.01, none on biases
//! and LayerNorm weights), linear warmup then linear decay to 0 (Hugging Face's
//! `get_linear_schedule_with_warmup`), gradient clipping, dropout; accuracy and macro-F1 on a
//! held-out split after each epoch, and the best epoch's weights kept.
//!
//! `ferrograd classify` runs a saved classifier on new text.

use crate::embed::DEFAULT_MODEL;
use clap::Args;
use ferrograd_data::subword::pad_batch;
use ferrograd_data::{read_labelled, LabelledText, SubwordTokenizer};
use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::Bert;
use ferrograd_nn::clip::clip_grad_norm;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::serialize::{load_tensors, save_tensors, write_atomic};
use ferrograd_nn::{state_dict, trainable_parameters, AdamW, Module, Optimizer, ParamGroup};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Best epoch's weights: the whole model, or only the head (and adapters) when the encoder
    /// is frozen or LoRA is used (the base stays in --model)
    #[arg(long, default_value = "finetuned.safetensors")]
    pub out: PathBuf,
    /// With LoRA: also write the whole model with the adapters merged into the base weights
    #[arg(long)]
    pub export_merged: Option<PathBuf>,
    /// Per-epoch metrics (CSV)
    #[arg(long)]
    pub metrics: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct ClassifyArgs {
    /// Texts to classify
    pub texts: Vec<String>,
    /// The weights `ferrograd finetune` wrote
    #[arg(long)]
    pub weights: PathBuf,
    /// The pretrained model folder the classifier was trained from
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Peak resident memory of this process, MB (VmHWM); None off Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Accuracy and macro-F1 (the unweighted mean over classes of `2 P R / (P + R)`, 0 for a class
/// never predicted nor present).
pub fn accuracy_and_macro_f1(pred: &[usize], truth: &[usize], classes: usize) -> (f64, f64) {
    let mut tp = vec![0usize; classes];
    let mut fp = vec![0usize; classes];
    let mut fnn = vec![0usize; classes];
    for (&p, &t) in pred.iter().zip(truth) {
        if p == t {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fnn[t] += 1;
        }
    }
    let correct: usize = tp.iter().sum();
    let f1: f64 = (0..classes)
        .map(|c| {
            let d = 2 * tp[c] + fp[c] + fnn[c];
            if d == 0 {
                0.0
            } else {
                2.0 * tp[c] as f64 / d as f64
            }
        })
        .sum::<f64>()
        / classes as f64;
    (correct as f64 / pred.len().max(1) as f64, f1)
}

/// Hugging Face's linear schedule: `step / warmup` while warming up, then down to 0 at `total`.
fn lr_factor(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        ((total - step.min(total)) as f64 / (total - warmup).max(1) as f64).max(0.0)
    }
}

fn parse_pooling(s: &str) -> Result<Pooling, String> {
    match s {
        "mean" => Ok(Pooling::Mean),
        "cls" => Ok(Pooling::Cls),
        _ => Err(format!("--pooling must be mean or cls, got {s:?}")),
    }
}

/// Predicted classes of `ids` (token id lists), in batches sorted by length.
fn predict(model: &BertClassifier, ids: &[Vec<u32>], batch: usize) -> Result<Vec<usize>, String> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![0usize; ids.len()];
    for chunk in order.chunks(batch.max(1)) {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let b = pad_batch(&seqs, 0).map_err(err)?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask)).map_err(err)?;
        let am = logits
            .argmax(-1, false)
            .map_err(err)?
            .to_vec::<i64>()
            .map_err(err)?;
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = am[row] as usize;
        }
    }
    Ok(out)
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

pub fn run(a: &FinetuneArgs) -> Result<(), String> {
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 {
        return Err("--epochs, --batch-size and --log-every must be positive".into());
    }
    if !(a.lr.is_finite() && a.lr > 0.0 && (0.0..1.0).contains(&a.warmup_ratio)) {
        return Err(format!(
            "--lr must be positive and --warmup-ratio in [0, 1), got {} and {}",
            a.lr, a.warmup_ratio
        ));
    }
    if a.freeze_encoder && a.lora_rank.is_some() {
        return Err("--freeze-encoder and --lora-rank exclude each other".into());
    }
    if a.export_merged.is_some() && a.lora_rank.is_none() {
        return Err("--export-merged needs --lora-rank".into());
    }
    let pooling = parse_pooling(&a.pooling)?;
    let fields: Vec<String> = a
        .text_field
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let data = read_labelled(&a.data, &fields, &a.label_field).map_err(err)?;
    let (mut train, mut val) = data.split(a.val_fraction, a.seed).map_err(err)?;
    if let Some(n) = a.max_train {
        train = train.select(&(0..n.min(train.len())).collect::<Vec<_>>());
    }
    if let Some(n) = a.max_val {
        val = val.select(&(0..n.min(val.len())).collect::<Vec<_>>());
    }

    crate::embed::require_weights(&a.model)?;
    let tok =
        SubwordTokenizer::from_file(a.model.join("tokenizer.json"), a.max_len).map_err(err)?;
    let tokenize = |d: &LabelledText| -> Result<Vec<Vec<u32>>, String> {
        d.texts.iter().map(|t| tok.encode(t).map_err(err)).collect()
    };
    let (train_ids, val_ids) = (tokenize(&train)?, tokenize(&val)?);

    let mut rng = Rng::new(a.seed);
    let mut bert = Bert::from_pretrained(&a.model).map_err(err)?;
    let mode = if let Some(r) = a.lora_rank {
        let targets: Vec<String> = a
            .lora_targets
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        let adapted = bert
            .attach_lora(&targets, r, a.lora_alpha, &mut rng)
            .map_err(err)?;
        println!(
            "LoRA rank {r}, alpha {} on {} layers",
            a.lora_alpha,
            adapted.len()
        );
        "lora"
    } else if a.freeze_encoder {
        bert.freeze().map_err(err)?;
        "linear-probe"
    } else {
        "full"
    };
    let mut model =
        BertClassifier::new(bert, data.classes.len(), pooling, a.dropout, &mut rng).map_err(err)?;
    model.seed_dropout(a.seed);
    let trainable = trainable_parameters(&model);
    let n_trainable: usize = trainable.iter().map(|(_, t)| t.numel()).sum();
    let n_total = ferrograd_nn::num_parameters(&model);
    println!(
        "{}: {} train / {} held-out examples, classes {:?} (train counts {:?}); {mode}: {n_trainable} of {n_total} parameters trained",
        a.data.display(),
        train.len(),
        val.len(),
        data.classes,
        train.class_counts()
    );
    let no_decay = |n: &str| n.ends_with(".bias") || n.contains("LayerNorm");
    let pick = |decay: bool| -> Vec<Tensor> {
        trainable
            .iter()
            .filter(|(n, _)| no_decay(n) != decay)
            .map(|(_, t)| t.clone())
            .collect()
    };
    let params: Vec<Tensor> = trainable.iter().map(|(_, t)| t.clone()).collect();
    let mut opt = AdamW::with_groups(
        vec![
            ParamGroup::new(pick(true), a.lr, a.weight_decay),
            ParamGroup::new(pick(false), a.lr, 0.0),
        ],
        (0.9, 0.999),
        1e-8,
        false,
    )
    .map_err(err)?;

    let steps_per_epoch = train.len().div_ceil(a.batch_size);
    let total = steps_per_epoch * a.epochs;
    let warmup = (a.warmup_ratio * total as f64).round() as usize;
    let mut csv = String::from("epoch,train_loss,val_accuracy,val_macro_f1,seconds\n");
    let mut best: Option<(usize, f64, f64)> = None;
    let mut step = 0usize;
    for epoch in 1..=a.epochs {
        model.train();
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::new(a.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(&mut order);
        let pb = progress_bar(steps_per_epoch as u64);
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        for (i, chunk) in order.chunks(a.batch_size).enumerate() {
            let lr = a.lr * lr_factor(step, warmup, total);
            for g in opt.groups_mut() {
                g.lr = lr;
            }
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&j| train_ids[j].clone()).collect();
            let b = pad_batch(&seqs, 0).map_err(err)?;
            let y: Vec<i64> = chunk.iter().map(|&j| train.labels[j] as i64).collect();
            let y = Tensor::from_vec(y, [chunk.len()]).map_err(err)?;
            opt.zero_grad();
            let logits = model.logits(&b.ids, &b.mask).map_err(err)?;
            let loss = cross_entropy(&logits, &y, &ClassLossOptions::default()).map_err(err)?;
            let l = loss.item().map_err(err)?;
            if !l.is_finite() {
                return Err(format!(
                    "loss is {l} at epoch {epoch}, step {}: training diverged (lower --lr); {} was not overwritten",
                    i + 1,
                    a.out.display()
                ));
            }
            loss.backward().map_err(err)?;
            if a.clip > 0.0 {
                clip_grad_norm(&params, a.clip).map_err(err)?;
            }
            opt.step().map_err(err)?;
            step += 1;
            loss_sum += l;
            loss_n += 1;
            if (i + 1) % a.log_every == 0 || i + 1 == steps_per_epoch {
                let line = format!(
                    "Epoch [{epoch}/{}], Step [{}/{steps_per_epoch}], Loss: {:.4}",
                    a.epochs,
                    i + 1,
                    loss_sum / loss_n as f64
                );
                match &pb {
                    Some(p) => p.println(line),
                    None => println!("{line}"),
                }
            }
            if let Some(p) = &pb {
                p.inc(1);
            }
        }
        if let Some(p) = pb {
            p.finish_and_clear();
        }
        let train_secs = t0.elapsed().as_secs_f64();
        model.eval();
        let pred = predict(&model, &val_ids, 64)?;
        let (acc, f1) = accuracy_and_macro_f1(&pred, &val.labels, data.classes.len());
        let correct = pred.iter().zip(&val.labels).filter(|(p, t)| p == t).count();
        let improved = best.is_none_or(|(_, _, bf)| f1 > bf);
        println!(
            "Epoch [{epoch}/{}] train loss {:.4}, held-out accuracy {:.2}% ({correct}/{}), macro-F1 {:.4}, {:.1} s{}",
            a.epochs,
            loss_sum / loss_n.max(1) as f64,
            100.0 * acc,
            val.len(),
            f1,
            train_secs,
            if improved { ", best so far: saved" } else { "" }
        );
        csv.push_str(&format!(
            "{epoch},{:.6},{acc:.6},{f1:.6},{train_secs:.2}\n",
            loss_sum / loss_n.max(1) as f64
        ));
        if improved {
            best = Some((epoch, acc, f1));
            save_tensors(
                &a.out,
                &tensors_to_save(&model, mode == "full"),
                Some(metadata(a, &data.classes, mode)),
            )
            .map_err(err)?;
        }
    }
    if let Some(p) = &a.metrics {
        write_atomic(p, csv.as_bytes()).map_err(err)?;
    }
    if let Some((e, acc, f1)) = best {
        println!(
            "Best epoch {e}: held-out accuracy {:.2}%, macro-F1 {f1:.4}; weights in {} ({n_trainable} trained parameters, peak memory {:.0} MB)",
            100.0 * acc,
            a.out.display(),
            peak_rss_mb().unwrap_or(f64::NAN)
        );
    }
    if let Some(p) = &a.export_merged {
        // the best epoch's adapters, folded into the base weights
        let (saved, _) = load_tensors(&a.out).map_err(err)?;
        load_partial(&model, &saved)?;
        model.bert.merge_lora().map_err(err)?;
        let mut meta = metadata(a, &data.classes, "full");
        meta.remove("ferrograd.lora_rank");
        save_tensors(p, &state_dict(&model), Some(meta)).map_err(err)?;
        println!("merged model written to {}", p.display());
    }
    Ok(())
}

/// Copies the tensors of `saved` into the model's tensors of the same names; every saved tensor
/// must exist in the model with its shape.
fn load_partial(model: &dyn Module, saved: &BTreeMap<String, Tensor>) -> Result<(), String> {
    let own = state_dict(model);
    let mut problems = Vec::new();
    for (k, v) in saved {
        match own.get(k) {
            None => problems.push(format!("unexpected tensor {k}")),
            Some(t) if t.dims() != v.dims() => problems.push(format!(
                "{k}: expected shape {:?}, got {:?}",
                t.dims(),
                v.dims()
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    for (k, v) in saved {
        let v = if v.dtype() != own[k].dtype() {
            v.to_dtype(own[k].dtype()).map_err(err)?
        } else {
            v.clone()
        };
        own[k].copy_from(&v).map_err(err)?;
    }
    Ok(())
}

/// Rebuilds a classifier from `ferrograd finetune` output: the base model, adapters when the
/// file has them, then the saved tensors.
pub fn load_classifier(
    base: &Path,
    weights: &Path,
) -> Result<(BertClassifier, Vec<String>, usize), String> {
    let (saved, meta) = load_tensors(weights).map_err(err)?;
    let get = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| {
            format!(
                "{}: not a ferrograd classifier (no {k} in its metadata)",
                weights.display()
            )
        })
    };
    let classes: Vec<String> = serde_json::from_str(&get("ferrograd.classes")?)
        .map_err(|e| format!("{}: bad class list: {e}", weights.display()))?;
    let pooling = parse_pooling(&get("ferrograd.pooling")?)?;
    let max_len: usize = get("ferrograd.max_len")?.parse().map_err(err)?;
    let mut bert = Bert::from_pretrained(base).map_err(err)?;
    if let Some(r) = meta.get("ferrograd.lora_rank") {
        let r: usize = r.parse().map_err(err)?;
        let alpha: f64 = get("ferrograd.lora_alpha")?.parse().map_err(err)?;
        let targets: Vec<String> = get("ferrograd.lora_targets")?
            .split(',')
            .map(str::to_string)
            .collect();
        bert.attach_lora(&targets, r, alpha, &mut Rng::new(0))
            .map_err(err)?;
    }
    let mut model =
        BertClassifier::new(bert, classes.len(), pooling, 0.0, &mut Rng::new(0)).map_err(err)?;
    load_partial(&model, &saved).map_err(|e| format!("{}: {e}", weights.display()))?;
    model.eval();
    Ok((model, classes, max_len))
}

pub fn run_classify(a: &ClassifyArgs) -> Result<(), String> {
    if a.texts.is_empty() {
        return Err("no texts to classify".into());
    }
    let (model, classes, max_len) = load_classifier(&a.model, &a.weights)?;
    let tok = SubwordTokenizer::from_file(a.model.join("tokenizer.json"), max_len).map_err(err)?;
    for t in &a.texts {
        let b = tok.encode_batch(&[t]).map_err(err)?;
        let logits = no_grad(|| model.logits(&b.ids, &b.mask)).map_err(err)?;
        let p = logits.softmax(-1).map_err(err)?;
        let p = p
            .to_dtype(DType::F64)
            .map_err(err)?
            .to_vec::<f64>()
            .map_err(err)?;
        let (best, prob) =
            p.iter()
                .enumerate()
                .fold((0, f64::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
        println!("{}\t{:.4}\t{t}", classes[best], prob);
    }
    Ok(())
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    pb.set_style(style);
    Some(pb)
}
