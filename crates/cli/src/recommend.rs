//! `ferrograd recommend`: recommendation from (user, item, rating) interactions (MovieLens).
//! `train` fits biased MF, SVD++ (ratings: RMSE, MAE) or NeuMF (implicit feedback: HR@10,
//! NDCG@10 with the NCF protocol) on the Trainer; `top` lists a user's best unseen items;
//! `similar` the items nearest to one by embedding.

use crate::common::CommonArgs;
use crate::config::{self, SchedulerKind};
use clap::{Args, Subcommand};
use ferrograd_data::interactions::{
    find_catalog, find_interactions, k_fold, leave_last_out, random_split, read_catalog,
    read_interactions, Interactions, ItemInfo, RatingScale,
};
use ferrograd_models::recommend::{RecArch, RecConfig, Recommender, MAX_DIM};
use ferrograd_nn::optim::{Adagrad, Adam, Optimizer, Sgd, SparseAdam};

use ferrograd_nn::serialize::{load_module, load_tensors, require_finite, save_tensors};
use ferrograd_nn::{load_state_dict, parameters, state_dict, LrScheduler, ParamGroup};
use ferrograd_tensor::Rng;
use ferrograd_train::callbacks::{Column, LogLines, LossShown, ProgressBar};
use ferrograd_train::tasks::recommend::{
    full_ranking, seen_items, Candidates, ImplicitBatches, ImplicitLoss, ImplicitStep, RatingStep,
    RowBatches,
};
use ferrograd_train::{
    Batches, Console, RecordKind, Result, Setting, TrainConfig, TrainError, TrainStep, Trainer,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand, Clone, Debug)]
pub enum RecommendCommand {
    /// Train a recommender on a MovieLens folder (u.data, a RecBole .inter file or ratings.csv)
    Train(Box<RecommendTrainArgs>),
    /// A user's best unseen items, with titles and predicted ratings
    Top(RecommendTopArgs),
    /// The items nearest to one by embedding (cosine similarity)
    Similar(RecommendSimilarArgs),
}

#[derive(Args, Clone, Debug)]
pub struct RecommendTrainArgs {
    /// An interactions file, or a folder holding one (scripts/fetch-movielens.sh puts
    /// MovieLens-100k in data/movielens-100k)
    #[arg(long, default_value = "data/movielens-100k")]
    pub data: PathBuf,
    /// mf (biased matrix factorisation), svdpp or neumf
    #[arg(long, default_value = "mf")]
    pub model: String,
    /// Embedding dimension (NeuMF: predictive factors)
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Cross-validate over this many seeded random folds (rating models)
    #[arg(long, conflicts_with = "split")]
    pub folds: Option<usize>,
    /// 80/20 (a seeded random split) or last (each user's latest interaction held out)
    /// [default: 80/20 for mf and svdpp, last for neumf]
    #[arg(long)]
    pub split: Option<String>,
    /// [default: 20; 12 for svdpp]
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// sparse-adam, adam, adagrad or sgd
    #[arg(long, default_value = "sparse-adam")]
    pub optimizer: String,
    /// Learning rate [default: 3e-3 for mf, 4e-3 for svdpp, 1e-3 for neumf]
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 per rating on the looked-up factors (rating models)
    #[arg(long, default_value_t = 0.1)]
    pub reg: f64,
    /// L2 per rating on the looked-up biases (rating models)
    #[arg(long, default_value_t = 0.01)]
    pub bias_reg: f64,
    /// The optimizer's weight decay, applied to the rows a batch touched
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// The learning rate over the run: none (constant) or cosine (annealed to 0 over the
    /// epochs) [default: cosine for mf and svdpp, none for neumf]
    #[arg(long)]
    pub scheduler: Option<String>,
    /// SVD++: the optimizer's weight decay on the implicit-feedback rows a batch touched
    #[arg(long, default_value_t = 0.01)]
    pub implicit_decay: f64,
    /// Standard deviation of the initial factors (rating models)
    #[arg(long, default_value_t = 0.1)]
    pub init_std: f64,
    /// Start from these weights instead of a random draw: a safetensors file with the model's
    /// parameter names and shapes (a PyTorch state_dict saved with safetensors.torch.save_file
    /// loads), read strictly; every fold starts from it
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// NeuMF: bce (sampled negatives labelled 0) or bpr
    #[arg(long, default_value = "bce")]
    pub loss: String,
    /// NeuMF: negatives sampled per positive each epoch
    #[arg(long, default_value_t = 4)]
    pub negatives: usize,
    /// Ratings must lie in MIN:MAX [default: 1:5 for u.data and .inter, 0.5:5 for CSV]
    #[arg(long)]
    pub scale: Option<String>,
    /// Print a line every this many batches
    #[arg(long, default_value_t = 100)]
    pub log_every: usize,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Clone, Debug)]
pub struct RecommendTopArgs {
    /// Weights written by `recommend train --out`
    #[arg(long)]
    pub weights: PathBuf,
    /// The user's id, as in the interactions file
    #[arg(long)]
    pub user: String,
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// The interactions (the user's rated items are left out) and, beside them, the titles
    #[arg(long, default_value = "data/movielens-100k")]
    pub data: PathBuf,
}

#[derive(Args, Clone, Debug)]
pub struct RecommendSimilarArgs {
    #[arg(long)]
    pub weights: PathBuf,
    /// The item's id, as in the interactions file
    #[arg(long)]
    pub item: String,
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// The folder (or interactions file) whose catalog gives the titles
    #[arg(long, default_value = "data/movielens-100k")]
    pub data: PathBuf,
}

pub fn run(c: &RecommendCommand) -> Result<()> {
    match c {
        RecommendCommand::Train(a) => train(a),
        RecommendCommand::Top(a) => top(a),
        RecommendCommand::Similar(a) => similar(a),
    }
}

/// How the interactions are divided.
enum Plan {
    Folds(usize),
    Random,
    Last,
}

/// The optimizer over `groups`, PyTorch's defaults for its other settings.
fn make_optimizer(name: &str, groups: Vec<ParamGroup>) -> Result<Box<dyn Optimizer>> {
    Ok(match name {
        "sparse-adam" => Box::new(SparseAdam::with_groups(groups, (0.9, 0.999), 1e-8)?),
        "adam" => Box::new(Adam::with_groups(groups, (0.9, 0.999), 1e-8, false)?),
        "adagrad" => Box::new(Adagrad::with_groups(groups, 0.0, 0.0, 1e-10)?),
        "sgd" => Box::new(Sgd::with_groups(groups, 0.0, 0.0, false)?),
        other => {
            return Err(TrainError::config(format!(
                "--optimizer {other}: expected sparse-adam, adam, adagrad or sgd"
            )))
        }
    })
}

/// Two groups: SVD++'s implicit table with its own weight decay, and everything else.
fn groups(model: &Recommender, lr: f64, wd: f64, implicit_wd: f64) -> Vec<ParamGroup> {
    let implicit = model.implicit.as_ref().map(|e| e.weight.id());
    let (imp, rest): (Vec<_>, Vec<_>) = parameters(model)
        .into_iter()
        .partition(|p| Some(p.id()) == implicit);
    let mut g = vec![ParamGroup::new(rest, lr, wd)];
    if !imp.is_empty() {
        g.push(ParamGroup::new(imp, lr, implicit_wd));
    }
    g
}

fn train(a: &RecommendTrainArgs) -> Result<()> {
    let arch = RecArch::from_name(&a.model).ok_or_else(|| {
        TrainError::config(format!("--model {}: expected mf, svdpp or neumf", a.model))
    })?;
    let ranking = !arch.predicts_ratings();
    let epochs = a
        .epochs
        .unwrap_or(if arch == RecArch::SvdPlusPlus { 12 } else { 20 });
    let lr = a.lr.unwrap_or(match arch {
        RecArch::Mf => 3e-3,
        RecArch::SvdPlusPlus => 4e-3,
        RecArch::NeuMf => 1e-3,
    });
    let scheduler_name = a
        .scheduler
        .clone()
        .unwrap_or_else(|| if ranking { "none" } else { "cosine" }.to_string());
    if epochs == 0 || a.batch_size == 0 || a.log_every == 0 || a.dim == 0 || a.dim > MAX_DIM {
        return Err(TrainError::config(format!(
            "--epochs, --batch-size and --log-every must be positive and --dim in 1..={MAX_DIM}, got {epochs}, {}, {} and {}",
            a.batch_size, a.log_every, a.dim
        )));
    }
    for (flag, v) in [
        ("--lr", lr),
        ("--reg", a.reg),
        ("--bias-reg", a.bias_reg),
        ("--weight-decay", a.weight_decay),
        ("--init-std", a.init_std),
    ] {
        if !(v.is_finite() && v >= 0.0) || (flag == "--lr" && v == 0.0) {
            return Err(TrainError::config(format!(
                "{flag} {v}: must be finite and {}",
                if flag == "--lr" {
                    "positive"
                } else {
                    "at least 0"
                }
            )));
        }
    }
    let scheduler = match scheduler_name.as_str() {
        "none" => SchedulerKind::None,
        "cosine" => SchedulerKind::Cosine,
        o => {
            return Err(TrainError::config(format!(
                "--scheduler {o}: expected none or cosine"
            )))
        }
    };
    let loss = match a.loss.as_str() {
        "bce" => ImplicitLoss::Bce,
        "bpr" => ImplicitLoss::Bpr,
        o => {
            return Err(TrainError::config(format!(
                "--loss {o}: expected bce or bpr"
            )))
        }
    };
    if ranking && (a.negatives == 0 || a.negatives > 1000) {
        return Err(TrainError::config(format!(
            "--negatives {}: must be in 1..=1000",
            a.negatives
        )));
    }
    let plan = match (a.folds, a.split.as_deref()) {
        (Some(k), _) if ranking => {
            return Err(TrainError::config(format!(
                "--folds {k}: NeuMF is ranked with --split last (the NCF protocol)"
            )))
        }
        (Some(k), _) if !(2..=100).contains(&k) => {
            return Err(TrainError::config(format!(
                "--folds {k}: must be in 2..=100"
            )))
        }
        (Some(k), _) => Plan::Folds(k),
        (None, Some("80/20")) if ranking => {
            return Err(TrainError::config(
                "--split 80/20: NeuMF is ranked with --split last (the NCF protocol)",
            ))
        }
        (None, Some("80/20")) => Plan::Random,
        (None, Some("last")) => Plan::Last,
        (None, Some(o)) => {
            return Err(TrainError::config(format!(
                "--split {o}: expected 80/20 or last"
            )))
        }
        (None, None) if ranking => Plan::Last,
        (None, None) => Plan::Random,
    };
    let c = &a.common;
    if let Plan::Folds(_) = plan {
        for (flag, given) in [
            ("--out", c.out.is_some()),
            ("--checkpoint", c.checkpoint.is_some()),
            ("--resume", c.resume.is_some()),
        ] {
            if given {
                return Err(TrainError::config(format!(
                    "{flag}: a --folds run trains one model per fold; use --split 80/20 to train one model to save or resume"
                )));
            }
        }
    }
    // check the optimizer's name before reading anything
    make_optimizer(&a.optimizer, vec![ParamGroup::new(Vec::new(), lr, 0.0)])?;
    let scale = a.scale.as_deref().map(RatingScale::parse).transpose()?;
    let seed = c.seed_or(0);
    c.outputs(c.out.as_deref())
        .input("--data", Some(&a.data))
        .input("--init", a.init.as_deref())
        .check()?;
    let file = find_interactions(&a.data)?;
    let data = Arc::new(read_interactions(&file, scale)?);
    println!(
        "Read {} interactions of {} users and {} items from {} (ratings {})",
        data.len(),
        data.num_users(),
        data.num_items(),
        file.display(),
        data.scale
    );
    let splits: Vec<(Vec<usize>, Vec<usize>)> = match plan {
        Plan::Folds(k) => k_fold(data.len(), k, seed)?,
        Plan::Random => vec![random_split(data.len(), 0.2, seed)?],
        Plan::Last => vec![leave_last_out(&data)],
    };
    let settings = |fold: usize| {
        let mut s = vec![
            Setting::fixed("--model", arch.name()),
            Setting::fixed("--dim", a.dim),
            Setting::fixed("--split", a.split.clone().unwrap_or_default()),
            Setting::fixed("--fold", fold),
            Setting::fixed("--batch-size", a.batch_size),
            Setting::fixed("--optimizer", &a.optimizer),
            Setting::fixed("--lr", lr),
            Setting::fixed("--scheduler", &scheduler_name),
            Setting::fixed("--reg", a.reg),
            Setting::fixed("--bias-reg", a.bias_reg),
            Setting::fixed("--weight-decay", a.weight_decay),
            Setting::fixed("--implicit-decay", a.implicit_decay),
            Setting::fixed("--loss", &a.loss),
            Setting::fixed("--negatives", a.negatives),
            Setting::fixed("--seed", seed),
            Setting::changeable("--epochs", epochs),
            Setting::changeable("--log-every", a.log_every),
            Setting::changeable("--data", a.data.display()),
        ];
        s.extend(c.settings());
        s
    };
    let folds = splits.len();
    let mut results: Vec<(f64, f64)> = Vec::new();
    let place = crate::distributed::place(c.distributed)?;
    for (f, (train_rows, test_rows)) in splits.into_iter().enumerate() {
        let config = RecConfig {
            arch,
            dim: a.dim,
            user_ids: data.user_ids.clone(),
            item_ids: data.item_ids.clone(),
            scale: (data.scale.min, data.scale.max),
            implicit_len: 0,
        };
        let rated = data.items_by_user(&train_rows);
        let mut rng = Rng::new(seed.wrapping_add(f as u64));
        let model = Recommender::new(
            config,
            data.mean_rating(&train_rows),
            Some(&rated),
            a.init_std,
            &mut rng,
        )?;
        if let Some(p) = &a.init {
            load_module(&model, p).map_err(|e| TrainError::config(format!("--init: {e}")))?;
            if f == 0 {
                println!("Initial weights from {}", p.display());
            }
        }
        let what = if folds > 1 {
            format!("fold {}/{folds}: ", f + 1)
        } else {
            String::new()
        };
        println!(
            "Training {} ({} parameters, dim {}) {what}{} training and {} test interactions, {} lr {lr}, batch {}, {epochs} epochs",
            arch.name(),
            ferrograd_nn::num_parameters(&model),
            a.dim,
            train_rows.len(),
            test_rows.len(),
            a.optimizer,
            a.batch_size
        );
        let opt = make_optimizer(
            &a.optimizer,
            groups(&model, lr, a.weight_decay, a.implicit_decay),
        )?;
        let fold_seed = seed.wrapping_add(f as u64);
        let model = if ranking {
            let seen = Arc::new(seen_items(&data, &train_rows));
            let candidates = Candidates::sample(&data, &test_rows, 99, fold_seed)?;
            let mut batches = ImplicitBatches {
                positives: train_rows
                    .iter()
                    .map(|&k| (data.users[k], data.items[k]))
                    .collect(),
                seen: seen.clone(),
                items: data.num_items(),
                negatives: a.negatives,
                batch_size: a.batch_size,
                loss,
                seed: fold_seed,
                shard: (place.world > 1).then_some((place.rank, place.world)),
            };
            let mut step = ImplicitStep {
                model,
                loss,
                candidates,
                k: 10,
            };
            let m = fit(
                &mut step,
                &mut batches,
                opt,
                (epochs, scheduler, lr),
                a.log_every,
                settings(f),
                c,
                true,
            )?;
            let (hr, ndcg) = m;
            println!("HR@10 {hr:.4}, NDCG@10 {ndcg:.4}");
            let mut relevant = vec![Vec::new(); data.num_users()];
            for &k in &test_rows {
                relevant[data.users[k] as usize].push(data.items[k]);
            }
            let (recall, fndcg) = full_ranking(&step.model, &seen, &relevant, 10)?;
            println!("Full ranking: Recall@10 {recall:.4}, NDCG@10 {fndcg:.4}");
            results.push((hr, ndcg));
            step.model
        } else {
            let mut batches = RowBatches {
                rows: train_rows,
                batch_size: a.batch_size,
                seed: fold_seed,
                shard: (place.world > 1).then_some((place.rank, place.world)),
            };
            let mut step = RatingStep {
                model,
                data: data.clone(),
                reg: a.reg,
                bias_reg: a.bias_reg,
                test_rows,
            };
            let (rmse, mae) = fit(
                &mut step,
                &mut batches,
                opt,
                (epochs, scheduler, lr),
                a.log_every,
                settings(f),
                c,
                false,
            )?;
            if folds > 1 {
                println!("Fold {}: RMSE {rmse:.4}, MAE {mae:.4}", f + 1);
            } else {
                println!("RMSE {rmse:.4}, MAE {mae:.4}");
            }
            results.push((rmse, mae));
            step.model
        };
        if let (Some(p), 0) = (&c.out, place.rank) {
            save_tensors(p, &state_dict(&model), Some(model.config.to_metadata()))?;
            println!("Saved weights to {}", p.display());
        }
    }
    if folds > 1 {
        let n = results.len() as f64;
        let (r, m) = results
            .iter()
            .fold((0.0, 0.0), |acc, x| (acc.0 + x.0, acc.1 + x.1));
        println!(
            "Mean over {folds} folds: RMSE {:.4}, MAE {:.4}",
            r / n,
            m / n
        );
    }
    Ok(())
}

/// Runs the Trainer with the progress bar, log lines, checkpoints, CSV and TensorBoard; returns
/// the last evaluation's two metrics (RMSE and MAE, or HR@10 and NDCG@10).
#[allow(clippy::too_many_arguments)]
fn fit<S: TrainStep, D: Batches<Batch = S::Batch>>(
    step: &mut S,
    batches: &mut D,
    mut opt: Box<dyn Optimizer>,
    (epochs, scheduler, lr): (usize, SchedulerKind, f64),
    log_every: usize,
    settings: Vec<Setting>,
    c: &CommonArgs,
    ranking: bool,
) -> Result<(f64, f64)> {
    let per_epoch = batches.batches_per_epoch().unwrap_or(1);
    let (schedule, per_batch) = config::make_schedule(scheduler, lr, epochs, per_epoch);
    let sched = LrScheduler::new(schedule, opt.as_mut())?;
    let mut tc = TrainConfig {
        schedule_per_batch: per_batch,
        epochs,
        log_every,
        eval_each_epoch: true,
        workload: "recommend".into(),
        settings,
        ..TrainConfig::default()
    };
    c.configure(&mut tc);
    let mut trainer = Trainer::new(tc, opt, Some(sched));
    crate::distributed::attach(c.distributed, &mut trainer)?;
    let resume = c.resume(&mut trainer, step, batches, |p, point| {
        format!(
            "Resumed from {} at epoch {}, step {}",
            p.display(),
            point.epoch + 1,
            point.step
        )
    })?;
    let console = Console::default();
    let keys = if ranking {
        ("test_hr", "test_ndcg")
    } else {
        ("test_rmse", "test_mae")
    };
    trainer.add_callback(Box::new(ProgressBar::new(&console, "samples")));
    trainer.add_callback(Box::new(
        LogLines::new(&console)
            .step_lines(LossShown::Last, false)
            .epoch_line(Box::new(move |e| {
                let find = |k: &str| {
                    e.eval
                        .unwrap_or(&[])
                        .iter()
                        .find(|(n, _)| n == k)
                        .map_or(f64::NAN, |(_, v)| *v)
                };
                let metrics = if ranking {
                    format!(
                        "HR@10 {:.4}, NDCG@10 {:.4}",
                        find("test_hr"),
                        find("test_ndcg")
                    )
                } else {
                    format!(
                        "train RMSE {:.4}, test RMSE {:.4}, MAE {:.4}",
                        e.means
                            .iter()
                            .find(|(n, _)| n == "train_mse")
                            .map_or(f64::NAN, |(_, v)| v.sqrt()),
                        find("test_rmse"),
                        find("test_mae")
                    )
                };
                format!(
                    "Epoch [{}/{}] loss {:.4}, {metrics}, {:.1} s, {:.0} samples/s",
                    e.epoch + 1,
                    e.epochs.unwrap_or(0),
                    e.loss,
                    e.seconds,
                    e.samples as f64 / e.seconds.max(1e-9)
                )
            })),
    ));
    c.add_callbacks(
        &mut trainer,
        (
            vec![
                Column::Kind("kind"),
                Column::Epoch("epoch"),
                Column::Step("step"),
                Column::Fixed("loss", "loss", 6),
                Column::Fixed(keys.0, keys.0, 6),
                Column::Fixed(keys.1, keys.1, 6),
                Column::Fixed("samples_per_s", "samples_per_s", 1),
            ],
            &[RecordKind::Step, RecordKind::Epoch],
        ),
    );
    let summary = trainer.fit(step, batches, resume)?;
    if let Some(r) = trainer.strategy_report() {
        println!("{r}");
    }
    if summary.stopped_at_max_steps {
        println!("Stopped after {} steps (--max-steps)", summary.steps);
    }
    let ev = match summary.last_eval {
        Some(ev) => ev,
        None => step.evaluate()?,
    };
    let get = |k: &str| {
        ev.iter()
            .find(|(n, _)| n == k)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    Ok((get(keys.0), get(keys.1)))
}

/// A recommender and its configuration from a weights file written by `recommend train`.
fn load_model(path: &Path) -> Result<Recommender> {
    let (tensors, md) = load_tensors(path)?;
    let config = RecConfig::from_metadata(&md).map_err(|e| TrainError::file(path, e))?;
    require_finite(path, &tensors)?;
    let model = Recommender::for_loading(config)?;
    load_state_dict(&model, &tensors).map_err(|e| TrainError::file(path, e))?;
    Ok(model)
}

/// The catalog beside the interactions at `data`, if there is one.
fn catalog(data: &Path) -> Result<HashMap<String, ItemInfo>> {
    let file = find_interactions(data)?;
    Ok(match find_catalog(&file) {
        Some(c) => read_catalog(&c)?,
        None => HashMap::new(),
    })
}

fn describe(cat: &HashMap<String, ItemInfo>, id: &str) -> String {
    match cat.get(id) {
        Some(info) if info.genres.is_empty() => info.title.clone(),
        Some(info) => format!("{} ({})", info.title, info.genres.join(", ")),
        None => format!("item {id}"),
    }
}

fn check_k(k: usize, n: usize) -> Result<()> {
    if k == 0 || k > n {
        return Err(TrainError::config(format!("-k {k}: must be in 1..={n}")));
    }
    Ok(())
}

fn top(a: &RecommendTopArgs) -> Result<()> {
    let model = load_model(&a.weights)?;
    let cfg = &model.config;
    let u = cfg
        .user_ids
        .iter()
        .position(|x| x == &a.user)
        .ok_or_else(|| {
            TrainError::config(format!(
                "--user {}: no such user in {} ({} users, ids {} to {})",
                a.user,
                a.weights.display(),
                cfg.users(),
                cfg.user_ids[0],
                cfg.user_ids[cfg.users() - 1]
            ))
        })?;
    check_k(a.k, cfg.items())?;
    let file = find_interactions(&a.data)?;
    let data: Interactions = read_interactions(&file, None)?;
    // the file's ids for this user's rated items, mapped to the model's indices
    let item_index: HashMap<&str, usize> = cfg
        .item_ids
        .iter()
        .enumerate()
        .map(|(k, s)| (s.as_str(), k))
        .collect();
    let mut seen = vec![false; cfg.items()];
    for k in 0..data.len() {
        if data.user_ids[data.users[k] as usize] == a.user {
            if let Some(&j) = item_index.get(data.item_ids[data.items[k] as usize].as_str()) {
                seen[j] = true;
            }
        }
    }
    let scores = model.score_all_items(u as u32)?;
    let mut order: Vec<usize> = (0..scores.len()).filter(|&j| !seen[j]).collect();
    order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]).then(x.cmp(&y)));
    let cat = catalog(&a.data)?;
    let what = if cfg.arch.predicts_ratings() {
        "predicted rating"
    } else {
        "score"
    };
    println!(
        "Top {} unseen items for user {} ({} rated), {what}:",
        a.k.min(order.len()),
        a.user,
        seen.iter().filter(|&&s| s).count()
    );
    for (r, &j) in order.iter().take(a.k).enumerate() {
        println!(
            "{:>3}. {:.2}  {}",
            r + 1,
            scores[j],
            describe(&cat, &cfg.item_ids[j])
        );
    }
    Ok(())
}

fn similar(a: &RecommendSimilarArgs) -> Result<()> {
    let model = load_model(&a.weights)?;
    let cfg = &model.config;
    let i = cfg
        .item_ids
        .iter()
        .position(|x| x == &a.item)
        .ok_or_else(|| {
            TrainError::config(format!(
                "--item {}: no such item in {} ({} items)",
                a.item,
                a.weights.display(),
                cfg.items()
            ))
        })?;
    check_k(a.k, cfg.items().saturating_sub(1).max(1))?;
    let v = model.item_vectors().to_vec::<f32>()?;
    let d = cfg.dim;
    let norm = |j: usize| {
        v[j * d..(j + 1) * d]
            .iter()
            .map(|x| (x * x) as f64)
            .sum::<f64>()
            .sqrt()
    };
    let ni = norm(i).max(1e-12);
    let sims: Vec<f64> = (0..cfg.items())
        .map(|j| {
            let dot: f64 = (0..d).map(|c| (v[i * d + c] * v[j * d + c]) as f64).sum();
            dot / (ni * norm(j).max(1e-12))
        })
        .collect();
    let mut order: Vec<usize> = (0..cfg.items()).filter(|&j| j != i).collect();
    order.sort_by(|&x, &y| sims[y].total_cmp(&sims[x]).then(x.cmp(&y)));
    let cat = if a.data.exists() {
        catalog(&a.data)?
    } else {
        HashMap::new()
    };
    println!(
        "Items nearest to {} (cosine similarity):",
        describe(&cat, &a.item)
    );
    for (r, &j) in order.iter().take(a.k).enumerate() {
        println!(
            "{:>3}. {:.3}  {}",
            r + 1,
            sims[j],
            describe(&cat, &cfg.item_ids[j])
        );
    }
    Ok(())
}
