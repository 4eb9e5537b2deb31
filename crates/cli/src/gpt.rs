//! `ferrograd gpt train`: a character-level (or byte-level BPE) GPT
//! on a text corpus with nanoGPT's recipe (AdamW, decay on the linear layers' weights only,
//! linear warmup then cosine decay as one sequential schedule, gradient clipping at 1.0),
//! trained by the Trainer with train/val estimates every `--eval-interval` iterations.

use crate::gpt_args::{settings, GptCommand, GptTrainArgs};
use ferrograd_data::text::{read_corpus, TokenSplit};
use ferrograd_data::TextTokenizer;
use ferrograd_models::{Gpt, GptConfig};
use ferrograd_nn::optim::decay_groups;
use ferrograd_nn::serialize::save_tensors;
use ferrograd_nn::{state_dict, AdamW, LrScheduler};
use ferrograd_tensor::Rng;
use ferrograd_train::callbacks::{plot_curves, Column, EvalEnd, LogLines, ProgressBar};
use ferrograd_train::tasks::language_model::{warmup_cosine, LanguageModelStep, RandomBlocks};
use ferrograd_train::{Console, RecordKind, TrainConfig, TrainError, Trainer};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn run(c: &GptCommand) -> ferrograd_train::Result<()> {
    match c {
        GptCommand::Train(a) => train(a),
        GptCommand::Sample(a) => crate::gpt_sample::run(a),
    }
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
    if a.block_size == 0 || a.n_head == 0 || a.n_layer == 0 {
        return Err(TrainError::config(
            "--block-size, --n-head and --n-layer must be positive",
        ));
    }
    // one batch of blocks is held as i64 ids, inputs and targets: 2^31 tokens is 32 GiB
    if a.batch_size
        .checked_mul(a.block_size)
        .is_none_or(|n| n > 1 << 31)
    {
        return Err(TrainError::config(format!(
            "--batch-size {} of --block-size {} is more than 2^31 tokens a batch",
            a.batch_size, a.block_size
        )));
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
    // BPE merges are learned from the training part only, so validation text stays unseen
    let cut = text
        .char_indices()
        .nth(text.chars().count() * 9 / 10)
        .map_or(text.len(), |(i, _)| i);
    let tok = TextTokenizer::fit(&a.tokenizer, &text, &text[..cut], a.vocab_size)?;
    let ids = tok.encode(&text)?;
    drop(text);
    let split = TokenSplit::new(ids, 0.9);
    let parts = [
        ("training part (the first 90%)", split.train.len()),
        ("validation part (the last 10%)", split.val.len()),
    ];
    for (part, n) in parts {
        if n <= a.block_size {
            return Err(TrainError::file(
                &a.data,
                format!(
                    "its {part} is {n} tokens, too short for blocks of --block-size {} (the \
                     corpus needs at least {} tokens)",
                    a.block_size,
                    (a.block_size + 1) * 10
                ),
            ));
        }
    }
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
    let schedule = warmup_cosine(a.warmup_iters, a.max_iters, a.min_lr);
    let sched = LrScheduler::new(schedule, opt.as_mut())?;
    let place = crate::distributed::place(c.distributed)?;
    println!(
        "GPT: {} parameters, {}, {} train / {} val tokens, batch {}{}",
        ferrograd_nn::num_parameters(&model),
        tok.describe(),
        split.train.len(),
        split.val.len(),
        a.batch_size,
        place.batch_note(a.batch_size)
    );
    let mut data = RandomBlocks {
        tokens: split.train.clone(),
        batch: a.batch_size,
        block: a.block_size,
        rng,
        shard: (place.world > 1).then_some((place.rank, place.world)),
    };
    let mut step = LanguageModelStep {
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
    crate::distributed::attach(c.distributed, &mut trainer)?;
    let resume = c.resume(&mut trainer, &mut step, &mut data, |p, point| {
        format!("resumed from {} at iteration {}", p.display(), point.step)
    })?;
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
    if let Some(r) = trainer.strategy_report() {
        println!("{r}");
    }
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
    if !trainer.is_leader() {
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
