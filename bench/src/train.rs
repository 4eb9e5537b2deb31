//! `ferrograd-bench train`: MNIST training and inference, ferrograd against PyTorch, side by
//! side. Each workload runs in a fresh process on each side (so each reports its own peak RSS),
//! alternating ferrograd and PyTorch for `--rounds` rounds, with the same thread count and the
//! data in memory; the end-to-end row times whole processes, from reading the .gz files to the
//! accuracy line. A row's ratio is the median of the rounds' ratios (ferrograd's time over
//! PyTorch's in the same round, run back to back), so that a slow spell of the machine meets both
//! sides of a pair; results.json keeps each round's ratio and the ratio of the two medians.

use ferrograd_data::{DataLoader, Dataset, Mnist, Split};
use ferrograd_models::ModelKind;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{parameters, Optimizer, Sgd};
use ferrograd_tensor::{no_grad, Rng};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

pub const WORKLOADS: [&str; 5] = [
    "mlp_train_64",
    "mlp_train_128",
    "lenet_train_64",
    "mlp_infer",
    "lenet_infer",
];

/// Passes over the test set per inference measurement; the fastest one counts (as on the
/// PyTorch side, `INFER_PASSES` in torch_ref.py). A pass is 50-90 ms, about as long as the
/// VM's stalls (another tenant taking a core for a while): with 4 passes one binary gave 0.051
/// to 0.070 s in nine consecutive processes, and the MLP row's ratio ranged 0.68-0.84 between
/// runs of the same code; with 10, nine pairs gave ratios of 0.66-0.87, median 0.76.
const INFER_PASSES: usize = 10;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// Peak resident set of this process in MB (VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs one workload in this process and prints its JSON line (the `worker` subcommand).
pub fn worker(work: &str) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    if work.starts_with("lstm") || work.starts_with("gru") {
        let mut out = crate::recurrent::worker(work)?;
        out["peak_rss_mb"] = json!(peak_rss_mb());
        println!("{out}");
        return Ok(());
    }
    if work.starts_with("mf_") {
        let mut out = crate::recommend::worker(work)?;
        out["peak_rss_mb"] = json!(peak_rss_mb());
        println!("{out}");
        return Ok(());
    }
    if work.starts_with("bert") || work.starts_with("gpt") {
        let mut out = crate::transformer::worker(work)?;
        out["peak_rss_mb"] = json!(peak_rss_mb());
        println!("{out}");
        return Ok(());
    }
    let kind = if work.starts_with("mlp") {
        ModelKind::Mlp
    } else {
        ModelKind::LeNet5
    };
    let mut model = ferrograd_models::build(kind, 10, &mut Rng::new(0)).map_err(|x| e(&x))?;
    let mut out = json!({});
    if let Some(b) = work
        .strip_prefix("mlp_train_")
        .or_else(|| work.strip_prefix("lenet_train_"))
    {
        let batch: usize = b.parse().map_err(|x| e(&x))?;
        let lr = if kind == ModelKind::Mlp { 0.1 } else { 0.01 };
        let train = Arc::new(Mnist::load(data_dir(), Split::Train).map_err(|x| e(&x))?);
        let loader = DataLoader::new(train.clone(), batch, true, 0).map_err(|x| e(&x))?;
        let mut opt = Sgd::new(parameters(model.as_ref()), lr, 0.9, 0.0).map_err(|x| e(&x))?;
        let mut step =
            |x: &ferrograd_tensor::Tensor, y: &ferrograd_tensor::Tensor| -> Result<(), String> {
                let loss = cross_entropy(
                    &model.forward(x).map_err(|x| e(&x))?,
                    y,
                    &ClassLossOptions::default(),
                )
                .map_err(|x| e(&x))?;
                opt.zero_grad();
                loss.backward().map_err(|x| e(&x))?;
                opt.step().map_err(|x| e(&x))
            };
        for b in loader.epoch(0, 0).take(20) {
            let b = b.map_err(|x| e(&x))?;
            step(&b.inputs, &b.targets)?;
        }
        let t = Instant::now();
        for b in loader.epoch(1, 0) {
            let b = b.map_err(|x| e(&x))?;
            step(&b.inputs, &b.targets)?;
        }
        let s = t.elapsed().as_secs_f64();
        out = json!({"seconds": s, "images_per_s": train.len() as f64 / s});
    } else if work.ends_with("_infer") {
        model.eval();
        let test = Mnist::load(data_dir(), Split::Test).map_err(|x| e(&x))?;
        let batches: Vec<_> = (0..10)
            .map(|i| {
                test.batch(&(i * 1000..(i + 1) * 1000).collect::<Vec<_>>())
                    .map(|(x, _)| x)
            })
            .collect::<Result<_, _>>()
            .map_err(|x| e(&x))?;
        let mut best = f64::MAX;
        for _ in 0..INFER_PASSES {
            let t = Instant::now();
            no_grad(|| -> Result<(), String> {
                for x in &batches {
                    model.forward(x).map_err(|x| e(&x))?;
                }
                Ok(())
            })?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        out = json!({"seconds": best, "images_per_s": 10_000.0 / best});
    } else if work != "nothing" {
        return Err(format!("unknown workload {work}"));
    }
    out["peak_rss_mb"] = json!(peak_rss_mb());
    println!("{out}");
    Ok(())
}

fn last_json(stdout: &[u8]) -> Option<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

struct Side {
    secs: Vec<f64>,
    rss: Vec<f64>,
}

impl Side {
    fn new() -> Self {
        Side {
            secs: Vec::new(),
            rss: Vec::new(),
        }
    }
    /// Records one round's figures; returns its seconds, if it reported them.
    fn push(&mut self, v: &Value) -> Option<f64> {
        if let Some(r) = v["peak_rss_mb"].as_f64() {
            self.rss.push(r);
        }
        let s = v["seconds"].as_f64()?;
        self.secs.push(s);
        Some(s)
    }
    fn summary(&mut self) -> (f64, f64, f64, f64) {
        let min = self.secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.secs.iter().copied().fold(0.0, f64::max);
        (median(&mut self.secs), min, max, median(&mut self.rss))
    }
}

fn fmt_side(med: f64, min: f64, max: f64) -> String {
    if med.is_nan() {
        "n/a".into()
    } else {
        format!("{med:.3} ({min:.3}-{max:.3})")
    }
}

/// Runs the comparison of `workloads` and returns the JSON written to the results file; the
/// MNIST set (`title` "MNIST") also gets the end-to-end row.
pub fn compare(
    workloads: &[&str],
    title: &str,
    threads: usize,
    rounds: usize,
    python: Option<&str>,
) -> Result<Value, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let torch_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("torch_ref.py");
    let data = data_dir();
    let have_torch = python.is_some_and(|py| {
        Command::new(py)
            .args(["-c", "import torch"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !have_torch {
        println!("PyTorch not found (pass --python PY, or --install-torch): ferrograd's figures only; ratios n/a");
    }
    println!("\n{title} workloads, {threads} threads, {rounds} rounds alternating; seconds: median (min-max);");
    println!("ratio: the median over the rounds of ferrograd's time / PyTorch's (the two run back to back)");
    println!(
        "{:<20} {:>24} {:>24} {:>7} {:>10} {:>10}",
        "workload", "ferrograd s", "PyTorch s", "ratio", "RSS f MB", "RSS t MB"
    );
    let mut rows = Vec::new();
    for &work in workloads {
        let (mut ours, mut theirs) = (Side::new(), Side::new());
        // ferrograd time / PyTorch time of each round (the two processes run back to back)
        let mut pairs = Vec::new();
        for _ in 0..rounds {
            let o = Command::new(&me)
                .args(["worker", work, "--threads", &threads.to_string()])
                .output()
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!(
                    "worker {work}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let mine = last_json(&o.stdout).and_then(|v| ours.push(&v));
            if have_torch {
                let o = Command::new(python.unwrap_or("python3"))
                    .arg(&torch_script)
                    .args([
                        work,
                        &threads.to_string(),
                        data.to_str().unwrap_or("data/mnist"),
                    ])
                    .output()
                    .map_err(|e| e.to_string())?;
                let their = last_json(&o.stdout).and_then(|v| theirs.push(&v));
                if let (Some(a), Some(b)) = (mine, their) {
                    pairs.push(a / b);
                }
            }
        }
        let (om, omin, omax, orss) = ours.summary();
        let (tm, tmin, tmax, trss) = theirs.summary();
        let pair_ratios = pairs.clone();
        let ratio = median(&mut pairs);
        println!(
            "{:<20} {:>24} {:>24} {:>7} {:>10.0} {:>10}",
            work,
            fmt_side(om, omin, omax),
            fmt_side(tm, tmin, tmax),
            if ratio.is_finite() {
                format!("{ratio:.2}")
            } else {
                "n/a".into()
            },
            orss,
            if trss.is_nan() {
                "n/a".into()
            } else {
                format!("{trss:.0}")
            }
        );
        rows.push(json!({"workload": work, "ferrograd_s": om, "ferrograd_min": omin, "ferrograd_max": omax,
            "torch_s": tm, "torch_min": tmin, "torch_max": tmax, "ratio": ratio, "pair_ratios": pair_ratios,
            "ratio_of_medians": om / tm, "ferrograd_rss_mb": orss, "torch_rss_mb": trss}));
    }
    // end to end: whole processes, reading the .gz files to the accuracy line
    let cli = me.with_file_name("ferrograd");
    let (mut ours, mut theirs, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
    if title != "MNIST" {
        // no end-to-end row for this set
    } else if cli.is_file() {
        for _ in 0..rounds {
            let t = Instant::now();
            let o = Command::new(&cli)
                .args([
                    "train",
                    "--epochs",
                    "1",
                    "--threads",
                    &threads.to_string(),
                    "--data-dir",
                    data.to_str().unwrap_or(""),
                ])
                .output()
                .map_err(|e| e.to_string())?;
            let mine = o.status.success().then(|| t.elapsed().as_secs_f64());
            ours.extend(mine);
            if have_torch {
                let t = Instant::now();
                let o = Command::new(python.unwrap_or("python3"))
                    .arg(&torch_script)
                    .args(["e2e", &threads.to_string(), data.to_str().unwrap_or("")])
                    .output()
                    .map_err(|e| e.to_string())?;
                if o.status.success() {
                    let their = t.elapsed().as_secs_f64();
                    theirs.push(their);
                    if let Some(a) = mine {
                        pairs.push(a / their);
                    }
                }
            }
        }
        let (om, tm) = (median(&mut ours), median(&mut theirs));
        let pair_ratios = pairs.clone();
        let ratio = median(&mut pairs);
        println!(
            "{:<16} {:>24} {:>24} {:>7}",
            "e2e train 1 ep",
            format!("{om:.2}"),
            if tm.is_nan() {
                "n/a".into()
            } else {
                format!("{tm:.2}")
            },
            if ratio.is_finite() {
                format!("{ratio:.2}")
            } else {
                "n/a".into()
            }
        );
        rows.push(json!({"workload": "e2e_train_1_epoch", "ferrograd_s": om, "torch_s": tm, "ratio": ratio,
            "pair_ratios": pair_ratios, "ratio_of_medians": om / tm}));
    } else {
        println!(
            "e2e row skipped: build the command first (cargo build --release -p ferrograd-cli)"
        );
    }
    Ok(json!({"threads": threads, "rounds": rounds, "rows": rows}))
}

/// Creates bench/.venv with PyTorch and numpy (pip), returning its python.
pub fn install_torch() -> Result<String, String> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv");
    let py = venv.join("bin/python");
    if !py.is_file() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .map_err(|e| e.to_string())?;
        if !ok.success() {
            return Err("python3 -m venv failed".into());
        }
    }
    let ok = Command::new(&py)
        .args(["-m", "pip", "install", "-q", "torch", "numpy"])
        .status()
        .map_err(|e| e.to_string())?;
    if !ok.success() {
        return Err("pip install torch numpy failed".into());
    }
    Ok(py.display().to_string())
}
