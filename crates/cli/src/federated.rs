//! `ferrograd federated`: federated averaging over MNIST split among simulated clients (in this
//! process, or spread over the ranks of an MPI job with `--distributed`, with the same numbers),
//! the paper's CNN or 2NN; per round the test accuracy, the clients chosen and the bytes that
//! would cross the network, as lines, CSV, TensorBoard scalars and a plot.

use crate::evaluate::load_split;
use clap::{Args, ValueEnum};
use ferrograd_data::{Dataset, Mnist, Split};
use ferrograd_dist::federated::{partition, FedAvg, FedConfig, Partition, RoundReport};
use ferrograd_dist::Collective;
use ferrograd_models::ModelKind;
use ferrograd_tensor::Rng;
use ferrograd_train::callbacks::plot_curves;
use ferrograd_train::tensorboard::EventWriter;
use ferrograd_train::{OutputPlan, Result, TrainError};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FedModel {
    /// The paper's CNN: 5x5 conv 32, pool, 5x5 conv 64, pool, fc 512, 10 (1,663,370 parameters)
    Cnn,
    /// The paper's 2NN: 784-200-200-10 (199,210 parameters)
    #[value(name = "2nn")]
    TwoNn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FedPartition {
    /// 600 random images per client (for 100 clients)
    Iid,
    /// Sorted by label, 200 shards of 300, two shards per client (for 100 clients)
    Noniid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// Local epochs of SGD, then the weighted average of the clients' weights
    Fedavg,
    /// The paper's baseline: one gradient step on each client's whole set (E = 1, B = inf)
    Fedsgd,
}

#[derive(Args, Clone, Debug)]
pub struct FederatedArgs {
    /// Directory with the MNIST IDX files (optionally .gz)
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
    #[arg(long, value_enum, default_value = "cnn")]
    pub model: FedModel,
    /// K: clients the training set is split among
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// C: the fraction of clients chosen each round (at least one)
    #[arg(long, default_value_t = 0.1)]
    pub fraction: f64,
    /// E: local epochs per round (fedavg)
    #[arg(long, default_value_t = 5)]
    pub local_epochs: usize,
    /// B: local batch size, or `inf` for a client's whole set in one batch (fedavg)
    #[arg(long, default_value = "10")]
    pub local_batch: String,
    #[arg(long, value_enum, default_value = "iid")]
    pub partition: FedPartition,
    #[arg(long, value_enum, default_value = "fedavg")]
    pub algorithm: Algorithm,
    /// Rounds of communication
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// The clients' SGD learning rate
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// FedProx: the weight mu of the proximal term mu/2 |w - w_global|^2 (0: FedAvg)
    #[arg(long, default_value_t = 0.0)]
    pub mu: f64,
    /// Report the first round whose test accuracy reaches this (a fraction, e.g. 0.99)
    #[arg(long)]
    pub target: Option<f64>,
    /// Standardise the pixels with MNIST's mean and standard deviation (0.1307, 0.3081) instead
    /// of scaling them to [0, 1]
    #[arg(long)]
    pub normalize: bool,
    /// Seed of the initial weights, the split, the clients chosen and their data order
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the kernels (0: one per core); results do not depend on it
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Spread each round's clients over the ranks of an MPI job (mpirun; a build with
    /// --features mpi): the same numbers as in one process
    #[arg(long)]
    pub distributed: bool,
    /// Write each round (accuracy, loss, clients, bytes, seconds) as CSV here
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Write TensorBoard event files into this directory
    #[arg(long)]
    pub tensorboard: Option<PathBuf>,
    /// Draw the test accuracy per round as a PNG here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write the final global model (safetensors) here
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn local_batch(s: &str) -> Result<Option<usize>> {
    if s.eq_ignore_ascii_case("inf") {
        return Ok(None);
    }
    match s.parse::<usize>() {
        Ok(b) if b > 0 => Ok(Some(b)),
        _ => Err(TrainError::config(format!(
            "--local-batch must be a positive number or inf, got {s:?}"
        ))),
    }
}

pub fn run(a: &FederatedArgs) -> Result<()> {
    let (epochs, batch) = match a.algorithm {
        Algorithm::Fedavg => (a.local_epochs, local_batch(&a.local_batch)?),
        Algorithm::Fedsgd => (1, None),
    };
    if a.rounds == 0 {
        return Err(TrainError::config("--rounds must be positive"));
    }
    if let Some(t) = a.target.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(TrainError::config(format!(
            "--target is a fraction in [0, 1], got {t}"
        )));
    }
    let cfg = FedConfig {
        clients: a.clients,
        fraction: a.fraction,
        local_epochs: epochs,
        local_batch: batch,
        lr: a.lr,
        mu: a.mu,
        seed: a.seed,
        eval_batch: 1000,
    };
    cfg.check()?;
    let plan = OutputPlan::default()
        .file("--out", a.out.as_deref())
        .file("--metrics", a.metrics.as_deref())
        .file("--plot", a.plot.as_deref())
        .dir("--tensorboard", a.tensorboard.as_deref());
    crate::evaluate::with_mnist_inputs(plan, &a.data_dir).check()?;
    let place = crate::distributed::place(a.distributed)?;
    let leader = place.rank == 0;
    let normalize = a.normalize.then_some(ferrograd_data::Normalize::MNIST);
    let train = Mnist::load(&a.data_dir, Split::Train)?.with_normalize(normalize);
    let labels: Vec<u8> = (0..train.len()).filter_map(|i| train.digit(i)).collect();
    let test = load_split(
        &a.data_dir,
        Split::Test,
        crate::config::Task::Digits,
        normalize,
    )?;
    let kind = match a.model {
        FedModel::Cnn => ModelKind::FedCnn,
        FedModel::TwoNn => ModelKind::TwoNn,
    };
    let model = ferrograd_models::build(kind, 10, &mut Rng::new(a.seed))?;
    let part_kind = match a.partition {
        FedPartition::Iid => Partition::Iid,
        FedPartition::Noniid => Partition::NonIid,
    };
    let parts = partition(&labels, a.clients, part_kind, a.seed)?;
    let mut comm = if a.distributed {
        Some(crate::distributed::collective()?)
    } else {
        None
    };
    let comm_ref: Option<&mut dyn Collective> = match comm.as_mut() {
        Some(c) => Some(c.as_mut()),
        None => None,
    };
    let mut fed = FedAvg::new(
        cfg.clone(),
        model,
        Arc::new(train),
        Arc::new(test),
        parts,
        comm_ref,
    )?;
    println!(
        "{} of the {} ({} parameters) on {} clients ({} split), {} a round (C = {}), E = {epochs}, B = {}, lr {}{}, {} rounds{}",
        match a.algorithm {
            Algorithm::Fedavg if a.mu > 0.0 => "FedProx",
            Algorithm::Fedavg => "Federated averaging",
            Algorithm::Fedsgd => "Federated SGD",
        },
        kind.name(),
        fed.num_values(),
        a.clients,
        match a.partition {
            FedPartition::Iid => "IID",
            FedPartition::Noniid => "non-IID",
        },
        cfg.per_round(),
        a.fraction,
        batch.map_or("inf".to_string(), |b| b.to_string()),
        a.lr,
        if a.mu > 0.0 { format!(", mu {}", a.mu) } else { String::new() },
        a.rounds,
        if place.world > 1 {
            format!(", clients spread over {} ranks", place.world)
        } else {
            String::new()
        }
    );
    let mut tb = match (&a.tensorboard, leader) {
        (Some(d), true) => Some(EventWriter::create(d)?),
        _ => None,
    };
    let mut csv = String::from("round,test_acc,train_loss,clients,samples,bytes,seconds\n");
    let mut reports: Vec<RoundReport> = Vec::new();
    let mut reached: Option<usize> = None;
    for r in 0..a.rounds {
        let rep = fed.round(r)?;
        if !leader {
            continue;
        }
        println!(
            "Round {}/{}: test accuracy {:.2}% ({}/{}), train loss {:.4}, clients {:?}, {:.1} MB over the network, {:.1} s",
            rep.round,
            a.rounds,
            100.0 * rep.test_acc,
            rep.test_correct,
            rep.test_total,
            rep.train_loss,
            rep.clients,
            rep.bytes as f64 / 1e6,
            rep.seconds
        );
        if let (Some(t), None) = (a.target, reached) {
            if rep.test_acc >= t {
                reached = Some(rep.round);
            }
        }
        csv.push_str(&format!(
            "{},{:.6},{:.6},{},{},{},{:.3}\n",
            rep.round,
            rep.test_acc,
            rep.train_loss,
            rep.clients
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            rep.samples,
            rep.bytes,
            rep.seconds
        ));
        if let Some(p) = &a.metrics {
            ferrograd_nn::serialize::write_atomic(p, csv.as_bytes())?;
        }
        if let Some(w) = &mut tb {
            let step = rep.round as i64;
            w.scalar("round/test_acc", step, rep.test_acc)?;
            w.scalar("round/train_loss", step, rep.train_loss)?;
            w.scalar("round/bytes", step, rep.bytes as f64)?;
            w.scalar("round/seconds", step, rep.seconds)?;
        }
        reports.push(rep);
    }
    if !leader {
        return Ok(());
    }
    let total_bytes: usize = reports.iter().map(|r| r.bytes).sum();
    let (best_round, best) = reports
        .iter()
        .map(|r| (r.round, r.test_acc))
        .fold((0, f64::MIN), |b, x| if x.1 > b.1 { x } else { b });
    println!(
        "Best test accuracy {:.2}% at round {best_round}; {:.1} MB over the network in all",
        100.0 * best,
        total_bytes as f64 / 1e6
    );
    if let Some(t) = a.target {
        match reached {
            Some(r) => println!("Reached {:.2}% test accuracy at round {r}", 100.0 * t),
            None => println!(
                "Did not reach {:.2}% test accuracy in {} rounds",
                100.0 * t,
                a.rounds
            ),
        }
    }
    if let Some(p) = &a.out {
        ferrograd_nn::serialize::save_module(fed.model(), p)?;
        println!("Saved weights to {}", p.display());
    }
    if let Some(p) = &a.plot {
        let pts: Vec<(f64, f64)> = reports
            .iter()
            .map(|r| (r.round as f64, 100.0 * r.test_acc))
            .collect();
        plot_curves(
            p,
            &format!("Federated {} on MNIST", kind.name()),
            ("round", "test accuracy (%)"),
            &[("test accuracy", pts)],
        )?;
        println!("Saved plot to {}", p.display());
    }
    Ok(())
}
