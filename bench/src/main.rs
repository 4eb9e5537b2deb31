//! ferrograd benchmarks, side by side with the reference in one run.
//!
//! `cargo run --release -p ferrograd-bench -- tensor [--threads N] [--reps R] [--python PY]`
//! `cargo run --release -p ferrograd-bench -- train [--threads N] [--rounds R] [--python PY] [--install-torch]`
//! `cargo run --release -p ferrograd-bench -- transformer [--threads N] [--rounds R] [--python PY]`
//!
//! Rows: sgemm 256..2048 against numpy (alternating rounds, same thread count), elementwise ops
//! on 1M f32 against numpy and against a plain memory copy (the bandwidth bound), and the
//! autograd engine's cost per node on a 1,000-op chain of tiny tensors. Prints a table of
//! medians and ratios and writes bench/results-tensor.json.

mod recommend;
mod recurrent;
mod train;
mod transformer;

use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use serde_json::json;
use std::process::Command;
use std::time::Instant;

struct Opts {
    threads: usize,
    reps: usize,
    rounds: usize,
    python: String,
    install_torch: bool,
    /// The workload of the `worker` subcommand.
    work: String,
}

fn parse() -> Result<(String, Opts), String> {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "tensor".into());
    let mut o = Opts {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reps: 5,
        rounds: 3,
        python: std::env::var("FERROGRAD_PYTHON").unwrap_or_else(|_| "python3".into()),
        install_torch: false,
        work: String::new(),
    };
    if what == "worker" {
        o.work = args.next().unwrap_or_default();
    }
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--threads" => {
                o.threads = val("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--reps" => o.reps = val("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?,
            "--rounds" => {
                o.rounds = val("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--python" => o.python = val("--python")?,
            "--install-torch" => o.install_torch = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok((what, o))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Times `reps` calls after a warm-up of at least 3 calls and 0.3 s (allocator, caches and clock
/// settle; the numpy side does the same).
fn time_reps(reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    let t = Instant::now();
    let mut calls = 0;
    while calls < 3 || t.elapsed().as_secs_f64() < 0.3 {
        f();
        calls += 1;
    }
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// Runs the numpy reference; None (with a note) when numpy is not importable.
fn numpy(o: &Opts, kind: &str, n: usize) -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/numpy_ref.py");
    let out = Command::new(&o.python)
        .args([script, kind, &n.to_string(), &o.reps.to_string()])
        .env("OPENBLAS_NUM_THREADS", o.threads.to_string())
        .env("OMP_NUM_THREADS", o.threads.to_string())
        .env("MKL_NUM_THREADS", o.threads.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "numpy reference unavailable: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn times_of(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default()
}

fn bench_tensor(o: &Opts) -> Result<serde_json::Value, String> {
    let e = |e: ferrograd_tensor::Error| e.to_string();
    let mut rows = Vec::new();
    println!(
        "ferrograd tensor benchmarks: {} threads, {} reps x {} rounds, release build",
        o.threads, o.reps, o.rounds
    );
    println!(
        "\n{:<28} {:>14} {:>14} {:>9}",
        "sgemm f32 (GFLOP/s)", "ferrograd", "numpy", "ratio"
    );
    let mut rng = Rng::new(0);
    for n in [256usize, 512, 1024, 2048] {
        let a = Tensor::randn([n, n], DType::F32, &mut rng).map_err(e)?;
        let b = Tensor::randn([n, n], DType::F32, &mut rng).map_err(e)?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut have_numpy = true;
        for _ in 0..o.rounds {
            ours.extend(time_reps(o.reps, || {
                let _ = a.matmul(&b);
            }));
            match numpy(o, "gemm", n) {
                Some(v) => theirs.extend(times_of(&v["times"])),
                None => have_numpy = false,
            }
        }
        let flop = 2.0 * (n as f64).powi(3);
        let g_ours = flop / median(&mut ours) / 1e9;
        let g_np = (have_numpy && !theirs.is_empty()).then(|| flop / median(&mut theirs) / 1e9);
        let ratio = g_np.map(|g| g_ours / g);
        println!(
            "{:<28} {:>14.1} {:>14} {:>9}",
            format!("{n} x {n} x {n}"),
            g_ours,
            g_np.map_or("n/a".into(), |g| format!("{g:.1}")),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}"))
        );
        rows.push(json!({"row": format!("sgemm {n}"), "ferrograd_gflops": g_ours, "numpy_gflops": g_np, "ratio": ratio}));
    }

    let n = 1 << 20;
    let a = Tensor::randn([n], DType::F32, &mut rng).map_err(e)?;
    let b = Tensor::randn([n], DType::F32, &mut rng).map_err(e)?;
    let src: Vec<f32> = a.to_vec().map_err(e)?;
    let mut dst = vec![0f32; n];
    let mut copy = time_reps(o.reps * o.rounds, || {
        dst.copy_from_slice(&src);
        std::hint::black_box(&dst);
    });
    let copy_gbs = 2.0 * 4.0 * n as f64 / median(&mut copy) / 1e9;
    let np = numpy(o, "elementwise", n);
    println!(
        "\n{:<28} {:>14} {:>14} {:>9}",
        "elementwise, 1M f32 (GB/s)", "ferrograd", "numpy", "ratio"
    );
    println!(
        "{:<28} {:>14.1} {:>14} {:>9}",
        "memcpy (bandwidth bound)", copy_gbs, "", ""
    );
    type Op = fn(&Tensor, &Tensor) -> ferrograd_tensor::Result<Tensor>;
    let ops: [(&str, Op, f64); 4] = [
        ("add", |a, b| a.add(b), 3.0),
        ("mul", |a, b| a.mul(b), 3.0),
        ("exp", |a, _| a.exp(), 2.0),
        ("relu", |a, _| a.relu(), 2.0),
    ];
    for (name, f, arrays) in ops {
        let mut t = no_grad(|| {
            time_reps(o.reps * o.rounds, || {
                let _ = f(&a, &b);
            })
        });
        let gbs = arrays * 4.0 * n as f64 / median(&mut t) / 1e9;
        let np_gbs = np
            .as_ref()
            .map(|v| arrays * 4.0 * n as f64 / median(&mut times_of(&v["times"][name])) / 1e9);
        println!(
            "{:<28} {:>14.1} {:>14} {:>9}",
            name,
            gbs,
            np_gbs.map_or("n/a".into(), |g| format!("{g:.1}")),
            np_gbs.map_or("n/a".into(), |g| format!("{:.2}", gbs / g))
        );
        rows.push(json!({"row": format!("elementwise {name} 1M"), "ferrograd_gbs": gbs, "numpy_gbs": np_gbs, "memcpy_gbs": copy_gbs}));
    }

    // graph overhead: forward + backward of a chain of 1,000 tiny ops
    let nodes = 1000;
    let x = Tensor::randn([4], DType::F32, &mut rng)
        .map_err(e)?
        .requires_grad_(true)
        .map_err(e)?;
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    for _ in 0..(o.reps * o.rounds * 4) {
        let t = Instant::now();
        let mut y = x.clone();
        for _ in 0..nodes {
            y = y.mul_scalar(1.0001).map_err(e)?;
        }
        let s = y.sum_all().map_err(e)?;
        fwd.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        s.backward().map_err(e)?;
        bwd.push(t.elapsed().as_secs_f64());
        x.zero_grad();
    }
    let per_b = median(&mut bwd) / (nodes + 1) as f64 * 1e6;
    let per_f = median(&mut fwd) / (nodes + 1) as f64 * 1e6;
    println!("\n{:<28} {:>14}", "autograd, 1,000-op chain", "us per node");
    println!("{:<28} {:>14.2}", "forward (records nodes)", per_f);
    println!("{:<28} {:>14.2}", "backward", per_b);
    rows.push(json!({"row": "graph chain 1000", "forward_us_per_node": per_f, "backward_us_per_node": per_b}));
    Ok(json!({"threads": o.threads, "rows": rows}))
}

fn main() {
    // as the ferrograd command does
    ferrograd_tensor::cpu::allocator::keep_freed_memory();
    let (what, o) = match parse() {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("ferrograd-bench: {msg}");
            std::process::exit(2);
        }
    };
    if let Err(msg) = ferrograd_tensor::set_num_threads(o.threads) {
        eprintln!("ferrograd-bench: {msg}");
        std::process::exit(1);
    }
    let result = match what.as_str() {
        "tensor" => bench_tensor(&o),
        "worker" => {
            let work = o.work.clone();
            if let Err(msg) = ferrograd_tensor::run_on_pool(move || train::worker(&work)) {
                eprintln!("ferrograd-bench worker: {msg}");
                std::process::exit(1);
            }
            return;
        }
        "train" | "transformer" | "recurrent" | "recommend" => {
            let py = if o.install_torch {
                match train::install_torch() {
                    Ok(p) => Some(p),
                    Err(msg) => {
                        eprintln!("ferrograd-bench: {msg}");
                        std::process::exit(1);
                    }
                }
            } else {
                Some(o.python.clone())
            };
            if what == "train" {
                train::compare(
                    &train::WORKLOADS,
                    "MNIST",
                    o.threads,
                    o.rounds,
                    py.as_deref(),
                )
            } else if what == "recommend" {
                train::compare(
                    &recommend::WORKLOADS,
                    "Recommendation (MovieLens-100k, MF dim 64)",
                    o.threads,
                    o.rounds,
                    py.as_deref(),
                )
            } else if what == "recurrent" {
                train::compare(
                    &recurrent::WORKLOADS,
                    "Recurrent (2 layers, input 40, hidden 128, batch 32, 100 steps)",
                    o.threads,
                    o.rounds,
                    py.as_deref(),
                )
            } else {
                train::compare(
                    &transformer::WORKLOADS,
                    "Transformer (all-MiniLM-L6-v2 size)",
                    o.threads,
                    o.rounds,
                    py.as_deref(),
                )
            }
        }
        other => Err(format!(
            "unknown benchmark {other} (known: tensor, train, transformer, recurrent, recommend)"
        )),
    };
    match result {
        Ok(v) => {
            let path = if what == "train" {
                concat!(env!("CARGO_MANIFEST_DIR"), "/results.json")
            } else if what == "transformer" {
                concat!(env!("CARGO_MANIFEST_DIR"), "/results-transformer.json")
            } else if what == "recurrent" {
                concat!(env!("CARGO_MANIFEST_DIR"), "/results-recurrent.json")
            } else if what == "recommend" {
                concat!(env!("CARGO_MANIFEST_DIR"), "/results-recommend.json")
            } else {
                concat!(env!("CARGO_MANIFEST_DIR"), "/results-tensor.json")
            };
            let tmp = format!("{path}.tmp");
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            if let Err(err) = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)) {
                eprintln!("ferrograd-bench: cannot write {path}: {err}");
                std::process::exit(1);
            }
            println!("\nwrote {path}");
        }
        Err(msg) => {
            eprintln!("ferrograd-bench: {msg}");
            std::process::exit(1);
        }
    }
}
