//! `ferrograd speech`: spoken digits from raw audio (a folder of `{digit}_{speaker}_{take}.wav`,
//! FSDD's layout). `train` fits an LSTM, GRU or CNN on the Trainer; `eval` gives per-digit
//! accuracy and the confusion matrix; `predict` the top three digits of one clip; `adapt`
//! fine-tunes a model trained without one speaker on a few of that speaker's takes.

use crate::common::{opt, CommonArgs};
use crate::config::{self, SchedulerKind};
use clap::{Args, Subcommand};
use ferrograd_data::speech::{
    frames_for_seconds, parse_clip_name, read_folder, read_utterance, FeatureKind, SpeechSet,
    SpeechSplit, Utterance,
};
use ferrograd_data::{DataLoader, Dataset};
use ferrograd_models::speech::{SpeechArch, SpeechConfig, SpeechModel, MAX_FRAMES};
use ferrograd_nn::serialize::{load_tensors, require_finite, save_tensors};
use ferrograd_nn::{load_state_dict, parameters, state_dict, Adam, Forward, LrScheduler, Module};
use ferrograd_tensor::{no_grad, Rng};
use ferrograd_train::callbacks::{Column, LogLines, LossShown, ProgressBar};
use ferrograd_train::tasks::classify::{evaluate, ClassifyStep, Objective};
use ferrograd_train::{Console, RecordKind, Result, Setting, TrainConfig, TrainError, Trainer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand, Clone, Debug)]
pub enum SpeechCommand {
    /// Train a spoken-digit classifier on a folder of WAV clips
    Train(Box<SpeechTrainArgs>),
    /// Accuracy per digit and the confusion matrix of saved weights on a folder's test clips
    Eval(SpeechEvalArgs),
    /// The three most likely digits of one WAV clip
    Predict(SpeechPredictArgs),
    /// Fine-tune a model trained without one speaker on a few takes of that speaker
    Adapt(Box<SpeechAdaptArgs>),
}

#[derive(Args, Clone, Debug)]
pub struct SpeechTrainArgs {
    /// Folder of `{digit}_{speaker}_{take}.wav` clips (scripts/fetch-fsdd.sh puts FSDD in data/fsdd/recordings)
    #[arg(long, default_value = "data/fsdd/recordings")]
    pub data: PathBuf,
    /// lstm, gru or cnn
    #[arg(long, default_value = "lstm")]
    pub model: String,
    /// mfcc (13 coefficients, their deltas and delta-deltas) or logmel (40 bands, the PyTorch
    /// reference's features)
    #[arg(long, default_value = "mfcc")]
    pub features: String,
    /// official (takes 0-4 test) or speaker:NAME (that speaker's clips test)
    #[arg(long, default_value = "official")]
    pub split: String,
    /// Frames per clip (10 ms each): longer clips are cut around their middle [default: 64
    /// for the CNN, the longest clip's (at most 3 s) for the recurrent models]
    #[arg(long)]
    pub frames: Option<usize>,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Adam's learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// The learning rate over the run: cosine (annealed to 0 over the epochs: the last epochs
    /// settle instead of ending on one of Adam's spikes) or none (constant, the PyTorch
    /// reference's recipe)
    #[arg(long, default_value = "cosine")]
    pub scheduler: String,
    /// Dropout between the recurrent layers
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Print a line every this many batches
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Clone, Debug)]
pub struct SpeechEvalArgs {
    /// Weights written by `ferrograd speech train` or `adapt`
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long, default_value = "data/fsdd/recordings")]
    pub data: PathBuf,
    /// Which clips are evaluated: official (takes 0-4), speaker:NAME, or all
    #[arg(long, default_value = "official")]
    pub split: String,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Clone, Debug)]
pub struct SpeechPredictArgs {
    #[arg(long)]
    pub weights: PathBuf,
    /// A WAV clip (any rate, mono or stereo, PCM or float)
    pub clip: PathBuf,
}

#[derive(Args, Clone, Debug)]
pub struct SpeechAdaptArgs {
    /// Weights of a model trained with the speaker held out (`speech train --split speaker:NAME`)
    #[arg(long)]
    pub weights: PathBuf,
    #[arg(long, default_value = "data/fsdd/recordings")]
    pub data: PathBuf,
    /// The new speaker
    #[arg(long)]
    pub speaker: String,
    /// Takes per digit to adapt on (takes 0..shots); the speaker's other takes test
    #[arg(long, default_value_t = 5)]
    pub shots: u32,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 10)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub log_every: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(c: &SpeechCommand) -> Result<()> {
    match c {
        SpeechCommand::Train(a) => train(a),
        SpeechCommand::Eval(a) => eval(a),
        SpeechCommand::Predict(a) => predict(a),
        SpeechCommand::Adapt(a) => adapt(a),
    }
}

/// The longest clip the recurrent models' default frame count covers, in seconds.
const MAX_DEFAULT_SECONDS: f64 = 3.0;

fn feature_kind(s: &str) -> Result<FeatureKind> {
    FeatureKind::from_name(s)
        .ok_or_else(|| TrainError::config(format!("--features {s}: expected logmel or mfcc")))
}

/// `Test Accuracy of the model on the 300 test clips: 98.33% (295/300)`.
fn accuracy_line(correct: usize, total: usize) -> String {
    crate::evaluate::accuracy_line_of(correct, total, "clips")
}

fn split_clips(utts: Vec<Utterance>, split: &SpeechSplit) -> (Vec<Utterance>, Vec<Utterance>) {
    utts.into_iter().partition(|u| !split.is_test(&u.name))
}

fn speakers(utts: &[Utterance]) -> Vec<String> {
    let mut s: Vec<String> = utts.iter().map(|u| u.name.speaker.clone()).collect();
    s.sort();
    s.dedup();
    s
}

fn train(a: &SpeechTrainArgs) -> Result<()> {
    if a.epochs == 0 || a.batch_size == 0 || a.log_every == 0 || a.hidden == 0 || a.layers == 0 {
        return Err(TrainError::config(format!(
            "--epochs, --batch-size, --log-every, --hidden and --layers must be positive, got {}, {}, {}, {} and {}",
            a.epochs, a.batch_size, a.log_every, a.hidden, a.layers
        )));
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(TrainError::config(format!(
            "--lr {}: must be positive",
            a.lr
        )));
    }
    let arch = SpeechArch::from_name(&a.model).ok_or_else(|| {
        TrainError::config(format!("--model {}: expected lstm, gru or cnn", a.model))
    })?;
    let kind = feature_kind(&a.features)?;
    let split = SpeechSplit::parse(&a.split)?;
    let scheduler = match a.scheduler.as_str() {
        "none" => SchedulerKind::None,
        "cosine" => SchedulerKind::Cosine,
        other => {
            return Err(TrainError::config(format!(
                "--scheduler {other}: expected none or cosine"
            )))
        }
    };
    if !(0.0..1.0).contains(&a.dropout) {
        return Err(TrainError::config(format!(
            "--dropout {}: must be in [0, 1)",
            a.dropout
        )));
    }
    let c = &a.common;
    let seed = c.seed_or(0);
    c.outputs(c.out.as_deref())
        .input("--data", Some(&a.data))
        .check()?;
    let utts = read_folder(&a.data, kind)?;
    if let SpeechSplit::Speaker(s) = &split {
        if !utts.iter().any(|u| &u.name.speaker == s) {
            return Err(TrainError::config(format!(
                "--split speaker:{s}: no clip of that speaker in {} (speakers: {})",
                a.data.display(),
                speakers(&utts).join(", ")
            )));
        }
    }
    let longest = utts.iter().map(|u| u.features.len()).max().unwrap_or(1);
    let frames = match (a.frames, arch) {
        (Some(f), _) if f == 0 || f > MAX_FRAMES => {
            return Err(TrainError::config(format!(
                "--frames {f}: must be in 1..={MAX_FRAMES} (10 s, the longest clip read)"
            )))
        }
        (Some(f), _) => f,
        (None, SpeechArch::Cnn) => 64,
        (None, _) => longest.min(frames_for_seconds(MAX_DEFAULT_SECONDS)),
    };
    let (train_u, test_u) = split_clips(utts, &split);
    if train_u.is_empty() || test_u.is_empty() {
        return Err(TrainError::config(format!(
            "--split {}: {} training and {} test clips in {}; both must be non-empty",
            a.split,
            train_u.len(),
            test_u.len(),
            a.data.display()
        )));
    }
    let cfg = SpeechConfig {
        arch,
        features: kind.dim(),
        feature_kind: kind.name().into(),
        frames,
        hidden: a.hidden,
        layers: a.layers,
        dropout: a.dropout,
        classes: 10,
    };
    let train_set = SpeechSet::new(&train_u, frames)?;
    let test_set = SpeechSet::new(&test_u, frames)?;
    let mut rng = Rng::new(seed);
    let model = SpeechModel::new(&cfg, &mut rng)?;
    let place = crate::distributed::place(c.distributed)?;
    let mut loader = DataLoader::new(Arc::new(train_set), a.batch_size, true, seed)?
        .with_shard(place.rank, place.world)?;
    let settings = vec![
        Setting::fixed("--model", arch.name()),
        Setting::fixed("--features", kind.name()),
        Setting::fixed("--split", &a.split),
        Setting::fixed("--frames", frames),
        Setting::fixed("--hidden", a.hidden),
        Setting::fixed("--layers", a.layers),
        Setting::fixed("--batch-size", a.batch_size),
        Setting::fixed("--lr", a.lr),
        Setting::fixed("--scheduler", &a.scheduler),
        Setting::fixed("--dropout", a.dropout),
        Setting::fixed("--seed", seed),
        Setting::changeable("--epochs", a.epochs),
        Setting::changeable("--log-every", a.log_every),
        Setting::changeable("--data", a.data.display()),
        Setting::changeable("--max-steps", opt(c.max_steps)),
    ];
    println!(
        "Training the {} ({} parameters) on {} clips ({} test) of {} speakers: {} features, {frames} frames, Adam lr {}, batch {}{}, {} epochs",
        arch.name(),
        ferrograd_nn::num_parameters(&model),
        train_u.len(),
        test_u.len(),
        speakers(&train_u).len(),
        kind.name(),
        a.lr,
        a.batch_size,
        place.batch_note(a.batch_size),
        a.epochs
    );
    let (model, summary) = fit(
        Box::new(model),
        &mut loader,
        Arc::new(test_set),
        FitOptions {
            epochs: a.epochs,
            lr: a.lr,
            log_every: a.log_every,
            workload: "speech",
            settings,
            scheduler,
        },
        c,
    )?;
    if let Some(m) = &summary {
        println!("{}", accuracy_line(m.0, m.1));
    }
    if place.rank > 0 {
        return Ok(());
    }
    if let Some(p) = &c.out {
        save_tensors(p, &state_dict(model.as_ref()), Some(cfg.to_metadata()))?;
        println!("Saved weights to {}", p.display());
    }
    Ok(())
}

/// The trained model and its last evaluation's (correct, total).
type Fitted = (Box<dyn Forward>, Option<(usize, usize)>);

struct FitOptions {
    epochs: usize,
    lr: f64,
    log_every: usize,
    workload: &'static str,
    settings: Vec<Setting>,
    scheduler: SchedulerKind,
}

/// Adam on the Trainer with its progress bar, log lines, checkpoints, CSV and TensorBoard;
/// returns the model and the last evaluation's (correct, total).
fn fit(
    model: Box<dyn Forward>,
    loader: &mut DataLoader,
    held_out: Arc<dyn Dataset>,
    o: FitOptions,
    c: &CommonArgs,
) -> Result<Fitted> {
    let mut opt: Box<dyn ferrograd_nn::Optimizer> =
        Box::new(Adam::new(parameters(model.as_ref()), o.lr, 0.0)?);
    let (schedule, per_batch) =
        config::make_schedule(o.scheduler, o.lr, o.epochs, loader.num_batches());
    let sched = LrScheduler::new(schedule, opt.as_mut())?;
    let mut tc = TrainConfig {
        schedule_per_batch: per_batch,
        epochs: o.epochs,
        log_every: o.log_every,
        eval_each_epoch: true,
        workload: o.workload.into(),
        settings: o.settings,
        ..TrainConfig::default()
    };
    c.configure(&mut tc);
    let mut trainer = Trainer::new(tc, opt, Some(sched));
    crate::distributed::attach(c.distributed, &mut trainer)?;
    let mut step = ClassifyStep {
        model,
        objective: Objective::CrossEntropy,
        classes: 10,
        held_out: Some(held_out),
        eval_batch: 100,
    };
    let resume = c.resume(&mut trainer, &mut step, loader, |p, point| {
        format!(
            "Resumed from {} at epoch {}, step {}",
            p.display(),
            point.epoch + 1,
            point.step
        )
    })?;
    let console = Console::default();
    trainer.add_callback(Box::new(ProgressBar::new(&console, "clips")));
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::Last, false)
            .epoch_line(Box::new(|e| crate::train::epoch_line_of(e, "clips"))),
    ));
    c.add_callbacks(
        &mut trainer,
        (
            vec![
                Column::Kind("kind"),
                Column::Epoch("epoch"),
                Column::Step("step"),
                Column::Fixed("loss", "loss", 6),
                Column::Fixed("train_acc", "train_acc", 6),
                Column::Fixed("test_acc", "test_acc", 6),
                Column::Fixed("samples_per_s", "samples_per_s", 1),
            ],
            &[RecordKind::Step, RecordKind::Epoch],
        ),
    );
    let summary = trainer.fit(&mut step, loader, resume)?;
    if let Some(r) = trainer.strategy_report() {
        println!("{r}");
    }
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
    }
    let result = summary.last_eval.as_ref().map(|m| {
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map_or(0.0, |(_, v)| *v) as usize;
        (get("test_correct"), get("test_total"))
    });
    Ok((step.model, result))
}

/// A model and its configuration from a weights file written by `speech train` / `adapt`.
fn load_model(path: &Path) -> Result<(SpeechModel, SpeechConfig)> {
    let (tensors, md) = load_tensors(path)?;
    let cfg = SpeechConfig::from_metadata(&md)
        .map_err(|e| TrainError::config(format!("{}: {e}", path.display())))?;
    require_finite(path, &tensors)?;
    let mut model = SpeechModel::new(&cfg, &mut Rng::new(0))?;
    load_state_dict(&model, &tensors)
        .map_err(|e| TrainError::config(format!("{}: {e}", path.display())))?;
    model.eval();
    Ok((model, cfg))
}

fn feature_kind_of(cfg: &SpeechConfig, path: &Path) -> Result<FeatureKind> {
    FeatureKind::from_name(&cfg.feature_kind).ok_or_else(|| {
        TrainError::config(format!(
            "{}: unknown feature kind {} in the metadata",
            path.display(),
            cfg.feature_kind
        ))
    })
}

fn eval(a: &SpeechEvalArgs) -> Result<()> {
    let (model, cfg) = load_model(&a.weights)?;
    let kind = feature_kind_of(&cfg, &a.weights)?;
    let utts = read_folder(&a.data, kind)?;
    let test: Vec<Utterance> = if a.split == "all" {
        utts
    } else {
        let split = SpeechSplit::parse(&a.split)?;
        utts.into_iter()
            .filter(|u| split.is_test(&u.name))
            .collect()
    };
    if test.is_empty() {
        return Err(TrainError::config(format!(
            "--split {}: no test clip in {}",
            a.split,
            a.data.display()
        )));
    }
    let set = SpeechSet::new(&test, cfg.frames)?;
    let ev = evaluate(&model, &set, Objective::CrossEntropy, cfg.classes, 100)?;
    println!("{}", accuracy_line(ev.correct(), ev.total()));
    crate::evaluate::print_confusion(&ev, "digit", &|c| c.to_string());
    Ok(())
}

fn predict(a: &SpeechPredictArgs) -> Result<()> {
    let (model, cfg) = load_model(&a.weights)?;
    let kind = feature_kind_of(&cfg, &a.weights)?;
    // the name need not follow the dataset's pattern: a user's own recording
    let name = parse_clip_name(&a.clip).unwrap_or(ferrograd_data::speech::ClipName {
        digit: 0,
        speaker: String::new(),
        take: 0,
    });
    let u = read_utterance(&a.clip, name, kind)?;
    let set = SpeechSet::new(&[u], cfg.frames)?;
    let (x, _) = set.batch(&[0])?;
    let probs =
        no_grad(|| -> Result<Vec<f64>> { Ok(model.forward(&x)?.softmax(1)?.to_vec_f64()) })?;
    let mut ranked: Vec<(usize, f64)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("{}:", a.clip.display());
    for (digit, p) in ranked.iter().take(3) {
        println!("  {digit:>4}  {:6.2}%", 100.0 * p);
    }
    Ok(())
}

fn adapt(a: &SpeechAdaptArgs) -> Result<()> {
    if a.epochs == 0 || a.batch_size == 0 || a.shots == 0 || a.log_every == 0 {
        return Err(TrainError::config(format!(
            "--epochs, --batch-size, --shots and --log-every must be positive, got {}, {}, {} and {}",
            a.epochs, a.batch_size, a.shots, a.log_every
        )));
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(TrainError::config(format!(
            "--lr {}: must be positive",
            a.lr
        )));
    }
    let c = &a.common;
    c.outputs(c.out.as_deref())
        .input("--data", Some(&a.data))
        .input("--weights", Some(&a.weights))
        .check()?;
    let (model, cfg) = load_model(&a.weights)?;
    let kind = feature_kind_of(&cfg, &a.weights)?;
    let utts = read_folder(&a.data, kind)?;
    let all = speakers(&utts);
    let (mine, _): (Vec<Utterance>, Vec<Utterance>) =
        utts.into_iter().partition(|u| u.name.speaker == a.speaker);
    if mine.is_empty() {
        return Err(TrainError::config(format!(
            "--speaker {}: no clip of that speaker in {} (speakers: {})",
            a.speaker,
            a.data.display(),
            all.join(", ")
        )));
    }
    let (shots, rest): (Vec<Utterance>, Vec<Utterance>) =
        mine.into_iter().partition(|u| u.name.take < a.shots);
    if shots.is_empty() || rest.is_empty() {
        return Err(TrainError::config(format!(
            "--shots {}: {} adaptation and {} test clips of {}; both must be non-empty",
            a.shots,
            shots.len(),
            rest.len(),
            a.speaker
        )));
    }
    let test = Arc::new(SpeechSet::new(&rest, cfg.frames)?);
    let before = evaluate(
        &model,
        test.as_ref(),
        Objective::CrossEntropy,
        cfg.classes,
        100,
    )?;
    println!(
        "Adapting to {} on {} clips (takes 0-{}), testing on their other {} clips",
        a.speaker,
        shots.len(),
        a.shots - 1,
        rest.len()
    );
    println!(
        "Before adaptation: {:.2}% ({}/{})",
        100.0 * before.accuracy(),
        before.correct(),
        before.total()
    );
    let seed = c.seed_or(0);
    let place = crate::distributed::place(c.distributed)?;
    let mut loader = DataLoader::new(
        Arc::new(SpeechSet::new(&shots, cfg.frames)?),
        a.batch_size,
        true,
        seed,
    )?
    .with_shard(place.rank, place.world)?;
    let settings = vec![
        Setting::fixed("--weights", a.weights.display()),
        Setting::fixed("--speaker", &a.speaker),
        Setting::fixed("--shots", a.shots),
        Setting::fixed("--lr", a.lr),
        Setting::fixed("--batch-size", a.batch_size),
        Setting::fixed("--seed", seed),
        Setting::changeable("--epochs", a.epochs),
        Setting::changeable("--log-every", a.log_every),
        Setting::changeable("--data", a.data.display()),
        Setting::changeable("--max-steps", opt(c.max_steps)),
    ];
    let mut model: Box<dyn Forward> = Box::new(model);
    model.train();
    let (model, after) = fit(
        model,
        &mut loader,
        test,
        FitOptions {
            epochs: a.epochs,
            lr: a.lr,
            log_every: a.log_every,
            workload: "speech-adapt",
            settings,
            scheduler: SchedulerKind::None,
        },
        c,
    )?;
    if let Some((correct, total)) = after {
        println!(
            "After adaptation: {:.2}% ({correct}/{total}); before: {:.2}%",
            100.0 * correct as f64 / total.max(1) as f64,
            100.0 * before.accuracy()
        );
    }
    if place.rank > 0 {
        return Ok(());
    }
    if let Some(p) = &c.out {
        save_tensors(p, &state_dict(model.as_ref()), Some(cfg.to_metadata()))?;
        println!("Saved weights to {}", p.display());
    }
    Ok(())
}
