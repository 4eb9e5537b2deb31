//! `ferrograd finetune`: a classification head on a pretrained sentence Transformer, trained by
//! the Trainer in one of three ways: full fine-tuning, a linear probe on the frozen encoder
//! (`--freeze-encoder`), or LoRA adapters on chosen linear layers (`--lora-rank`). AdamW (decay
//! 0.01, none on biases and LayerNorm weights), linear warmup then linear decay to 0 (Hugging
//! Face's `get_linear_schedule_with_warmup`, as a sequence of two linear schedules), gradient
//! clipping, dropout; accuracy and macro-F1 on a held-out split after each epoch, and the best
//! epoch's weights kept.

use crate::finetune_args::{info, settings, FinetuneArgs};
use ferrograd_data::{read_labelled, LabelledText, SubwordTokenizer};
use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::Bert;
use ferrograd_nn::optim::decay_groups;
use ferrograd_nn::serialize::save_tensors;
use ferrograd_nn::{state_dict, trainable_parameters, AdamW, LrScheduler};
use ferrograd_tensor::{Rng, Tensor};
use ferrograd_train::callbacks::{Column, EpochEnd, LogLines, LossShown, ProgressBar};
use ferrograd_train::tasks::text_classification::{
    warmup_linear_decay, Examples, TextClassifierStep,
};
use ferrograd_train::{Console, Goal, RecordKind, Result, TrainConfig, TrainError, Trainer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

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
    let place = crate::distributed::place(c.distributed)?;
    // each rank drops out its own units (the same masks everywhere would be one rank's noise)
    model.seed_dropout(seed ^ (place.rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
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
    let steps_per_epoch = train.len().div_ceil(place.world).div_ceil(a.batch_size);
    let total = steps_per_epoch.checked_mul(a.epochs).ok_or_else(|| {
        TrainError::config(format!(
            "--epochs {} of {steps_per_epoch} steps each overflow a step count",
            a.epochs
        ))
    })?;
    let warmup = (a.warmup_ratio * total as f64).round() as usize;
    let sched = LrScheduler::new(warmup_linear_decay(warmup, total), opt.as_mut())?;
    let mut examples = Examples {
        ids: Arc::new(train_ids),
        labels: Arc::new(train.labels.clone()),
        batch: a.batch_size,
        seed,
        shard: (place.world > 1).then_some((place.rank, place.world)),
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
    crate::distributed::attach(c.distributed, &mut trainer)?;
    let resume = c.resume(&mut trainer, &mut step, &mut examples, |p, point| {
        format!(
            "Resumed from {} at epoch {}, step {}",
            p.display(),
            point.epoch + 1,
            point.step
        )
    })?;
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
    if let Some(r) = trainer.strategy_report() {
        println!("{r}");
    }
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
        return Ok(());
    }
    if !trainer.is_leader() {
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
