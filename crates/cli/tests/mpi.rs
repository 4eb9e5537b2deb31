//! `ferrograd ... --distributed` under a real `mpirun` (Open MPI or MPICH): N ranks at batch b
//! give one process's weights at batch N*b, the same bits when repeated; rank 0 alone prints
//! and writes; a rank killed with SIGKILL, or one that hits an error, ends the job non-zero
//! within 30 s, and the last checkpoint resumes on 2 ranks or on 1.
//!
//! Needs the feature (`cargo test -p ferrograd-cli --features mpi --test mpi`) and mpirun.

#![cfg(feature = "mpi")]

mod common;

use common::{ok, root, tmp};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mpirun(ranks: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["-n", &ranks.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_ferrograd"));
    c
}

fn mpi_ok(ranks: usize, args: &[&str]) -> String {
    let o = mpirun(ranks).args(args).output().expect("mpirun runs");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "mpirun -n {ranks} {args:?} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn weights(p: &Path) -> Vec<(String, Vec<f64>)> {
    let (t, _) = ferrograd_nn::serialize::load_tensors(p).expect("weights load");
    t.into_iter().map(|(k, v)| (k, v.to_vec_f64())).collect()
}

/// The largest difference relative to the tensor's largest value, over all tensors.
fn worst_relative(a: &Path, b: &Path) -> f64 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f64;
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        let scale = vb.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let d = va
            .iter()
            .zip(vb)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        worst = worst.max(d / scale.max(1e-30));
    }
    worst
}

fn mnist_args<'a>(model: &'a str, batch: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        model,
        "--train-subset",
        "640",
        "--epochs",
        "2",
        "--batch-size",
        batch,
        "--out",
        out,
    ]
}

#[test]
fn two_ranks_give_one_process_weights_at_twice_the_batch() {
    let d = tmp("mpi-exact");
    for (model, lr) in [("mlp", "0.1"), ("lenet5", "0.05")] {
        let one = d.join(format!("{model}-1.safetensors"));
        let two = d.join(format!("{model}-2.safetensors"));
        let again = d.join(format!("{model}-2b.safetensors"));
        let mut single = mnist_args(model, "64", one.to_str().unwrap());
        single.extend(["--lr", lr]);
        ok(&single);
        for p in [&two, &again] {
            let mut a = mnist_args(model, "32", p.to_str().unwrap());
            a.extend(["--lr", lr, "--distributed"]);
            let out = mpi_ok(2, &a);
            // rank 0 alone prints
            assert_eq!(out.matches("Test Accuracy").count(), 1, "{out}");
            assert!(
                out.contains("per rank on 2 ranks (64 in all)")
                    && out.contains("Data-parallel on 2 ranks"),
                "{out}"
            );
        }
        // 640 images, 64 a step, 2 epochs: 20 steps
        let worst = worst_relative(&two, &one);
        eprintln!("{model}: 2 ranks at 32 against 1 process at 64: {worst:e}");
        assert!(
            worst <= 1e-6,
            "{model}: 2 ranks at 32 against 1 process at 64: worst relative difference {worst:e}"
        );
        assert_eq!(
            std::fs::read(&two).unwrap(),
            std::fs::read(&again).unwrap(),
            "{model}: the same 2-rank run twice gave other bits"
        );
    }
}

#[test]
fn gpt_on_two_ranks_draws_the_blocks_of_one_process_at_twice_the_batch() {
    let d = tmp("mpi-gpt");
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(200);
    let corpus = d.join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let args = |batch: &'static str, out: &Path| -> Vec<String> {
        [
            "gpt",
            "train",
            "--data",
            corpus.to_str().unwrap(),
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
            "--block-size",
            "16",
            "--max-iters",
            "20",
            "--eval-interval",
            "10",
            "--eval-iters",
            "2",
            "--batch-size",
            batch,
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (one, two) = (d.join("one.safetensors"), d.join("two.safetensors"));
    let a1 = args("8", &one);
    ok(&a1.iter().map(String::as_str).collect::<Vec<_>>());
    let mut a2 = args("4", &two);
    a2.push("--distributed".into());
    mpi_ok(2, &a2.iter().map(String::as_str).collect::<Vec<_>>());
    // AdamW divides each update by the gradient's own scale, so the sum's rounding shows more
    // than with SGD (the thread-replica tests measure the same, 2.4e-5 on MNIST)
    let worst = worst_relative(&two, &one);
    eprintln!("GPT: 2 ranks at 4 against 1 process at 8: {worst:e}");
    assert!(worst <= 1e-4, "GPT, 2 ranks against 1: {worst:e}");
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The pid of the process of rank `rank` running with `marker` on its command line.
fn rank_pid(marker: &str, rank: usize) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(marker)
            || !String::from_utf8_lossy(&cmdline).contains("ferrograd")
        {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env);
        let r = env
            .split('\0')
            .find_map(|kv| {
                kv.strip_prefix("OMPI_COMM_WORLD_RANK=")
                    .or_else(|| kv.strip_prefix("PMI_RANK="))
            })
            .and_then(|v| v.parse::<usize>().ok());
        if r == Some(rank) {
            return Some(pid);
        }
    }
    None
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running then.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("{what}: the job still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut err);
    }
    Output {
        status: child.wait().unwrap(),
        stdout: out,
        stderr: err,
    }
}

#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_resumes_on_two_ranks_or_one() {
    let d = tmp("mpi-kill");
    let ck = d.join("run.ckpt");
    let ck_s = ck.to_str().unwrap().to_string();
    // long enough to be killed mid-epoch: 6,400 images a epoch, 40 epochs
    let mut child = mpirun(2)
        .args([
            "train",
            "--train-subset",
            "6400",
            "--epochs",
            "40",
            "--batch-size",
            "16",
            "--distributed",
            "--checkpoint",
            &ck_s,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    // the first checkpoint is written at the end of the first epoch
    let t = Instant::now();
    while !ck.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no checkpoint after 120 s"
        );
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // into the next epoch, then SIGKILL rank 1
    std::thread::sleep(Duration::from_millis(300));
    let pid = rank_pid(&ck_s, 1).expect("rank 1 is running");
    let before = std::fs::read(&ck).unwrap();
    // SAFETY: kill(2) on a pid we found running our binary
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let o = wait_within(&mut child, Duration::from_secs(30), "rank 1 killed");
    assert!(
        !o.status.success(),
        "the job succeeded with a rank killed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    eprintln!(
        "the job ended {:?} after rank 1 was killed",
        killed.elapsed()
    );
    assert!(killed.elapsed() < Duration::from_secs(30));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("signal 9") || err.contains("Killed") || err.contains("KILLED"),
        "mpirun says which rank died and how: {err}"
    );
    // no rank is left: nothing with our checkpoint path on its command line runs
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rank_pid(&ck_s, 0), None, "rank 0 was left running");
    // the checkpoint is a whole one (written by rename): it loads, from 2 ranks
    let meta = ferrograd_train::Checkpoint::load(&ck)
        .expect("the checkpoint loads")
        .meta;
    assert_eq!(meta.world_size, 2);
    assert!(!before.is_empty());
    // one more epoch than the checkpoint holds, resumed on 2 ranks and on 1; the 2-rank one
    // gives the bits of a 2-rank run that was never stopped
    let epochs = (meta.epoch + 1).to_string();
    let args = |out: &Path, resume: bool| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--train-subset",
            "6400",
            "--epochs",
            &epochs,
            "--batch-size",
            "16",
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if resume {
            v.extend(["--resume".to_string(), ck_s.clone()]);
        }
        v
    };
    let (resumed2, whole2, resumed1) = (
        d.join("resumed2.safetensors"),
        d.join("whole2.safetensors"),
        d.join("resumed1.safetensors"),
    );
    let mut a = args(&resumed2, true);
    a.push("--distributed".into());
    let out = mpi_ok(2, &strs(&a));
    assert!(
        out.contains("Resumed from") && out.contains(&format!("Epoch [{epochs}/{epochs}]")),
        "{out}"
    );
    let mut a = args(&whole2, false);
    a.push("--distributed".into());
    mpi_ok(2, &strs(&a));
    assert_eq!(
        std::fs::read(&resumed2).unwrap(),
        std::fs::read(&whole2).unwrap(),
        "resumed on 2 ranks, the run is not the one that was never stopped"
    );
    let out = ok(&strs(&args(&resumed1, true)));
    assert!(
        out.contains("Resumed from") && out.contains("Test Accuracy"),
        "{out}"
    );
}

#[test]
fn a_rank_that_fails_ends_the_job_with_its_error() {
    // rank 1 alone is given a folder without MNIST: it fails while rank 0 waits for it in the
    // broadcast of the weights
    let d = tmp("mpi-fail");
    let o = Command::new("mpirun")
        .current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_ferrograd"))
        .args(["train", "--distributed", "--train-subset", "640"])
        .args([":", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_ferrograd"))
        .args([
            "train",
            "--distributed",
            "--train-subset",
            "640",
            "--data-dir",
        ])
        .arg(&d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let mut child = o;
    let o = wait_within(&mut child, Duration::from_secs(30), "rank 1 failed");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error on rank 1 of 2:") && err.contains(d.to_str().unwrap()),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn ranks_with_other_models_are_refused_on_every_rank() {
    let o = Command::new("mpirun")
        .current_dir(root())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_ferrograd"))
        .args([
            "train",
            "--distributed",
            "--train-subset",
            "640",
            "--model",
            "mlp",
        ])
        .args([":", "-n", "1"])
        .arg(env!("CARGO_BIN_EXE_ferrograd"))
        .args([
            "train",
            "--distributed",
            "--train-subset",
            "640",
            "--model",
            "lenet5",
        ])
        .output()
        .expect("mpirun runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rank 1 built a model with other parameters than rank 0"),
        "{err}"
    );
}

/// Whether this machine lets us make network namespaces (root, iproute2).
fn can_make_namespaces() -> bool {
    let name = format!("fgprobe{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &name])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
    made
}

#[test]
fn two_hosts_in_network_namespaces_over_tcp_give_the_bits_of_two_local_ranks() {
    if !can_make_namespaces() {
        eprintln!("skipped: this machine does not let us make network namespaces (needs root)");
        return;
    }
    let d = tmp("mpi-netns");
    let (hosts, local) = (d.join("hosts.safetensors"), d.join("local.safetensors"));
    let train = |out: &Path| -> Vec<String> {
        mnist_args("mlp", "32", out.to_str().unwrap())
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let o = Command::new("bash")
        .current_dir(root())
        .arg("scripts/mpi-netns.sh")
        .args(["--bin", env!("CARGO_BIN_EXE_ferrograd"), "--"])
        .args(train(&hosts))
        .output()
        .expect("the script runs");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    let hosts_line = out.lines().find(|l| l.starts_with("hosts: ")).unwrap_or("");
    let addr = |rank: usize| {
        err.lines()
            .find_map(|l| l.strip_prefix(&format!("rank {rank} on ")))
            .map(|a| a.split('/').next().unwrap_or("").to_string())
    };
    let (a0, a1) = (
        addr(0).expect("rank 0's address"),
        addr(1).expect("rank 1's address"),
    );
    assert!(
        a0 != a1 && hosts_line.contains(&a0) && hosts_line.contains(&a1),
        "the ranks ran on {a0} and {a1}; {hosts_line}"
    );
    let mut a = train(&local);
    a.push("--distributed".into());
    mpi_ok(2, &strs(&a));
    assert_eq!(
        std::fs::read(&hosts).unwrap(),
        std::fs::read(&local).unwrap(),
        "two hosts over TCP and two local ranks trained other weights"
    );
}

#[test]
fn federated_clients_over_two_ranks_give_the_numbers_of_one_process() {
    let d = tmp("mpi-federated");
    let args = |name: &str| -> Vec<String> {
        [
            "federated",
            "--model",
            "2nn",
            "--clients",
            "10",
            "--fraction",
            "0.3",
            "--local-epochs",
            "1",
            "--local-batch",
            "50",
            "--rounds",
            "2",
            "--partition",
            "noniid",
            "--mu",
            "0.01",
            "--out",
            d.join(format!("{name}.safetensors")).to_str().unwrap(),
            "--metrics",
            d.join(format!("{name}.csv")).to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    ok(&strs(&args("one")));
    let mut a = args("two");
    a.push("--distributed".into());
    let out = mpi_ok(2, &strs(&a));
    assert!(out.contains("clients spread over 2 ranks"), "{out}");
    assert_eq!(out.matches("Round 2/2").count(), 1, "{out}");
    assert_eq!(
        std::fs::read(d.join("one.safetensors")).unwrap(),
        std::fs::read(d.join("two.safetensors")).unwrap(),
        "2 ranks and 1 process averaged to other weights"
    );
    // every column but the seconds
    let cols = |name: &str| -> Vec<String> {
        std::fs::read_to_string(d.join(format!("{name}.csv")))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(cols("one"), cols("two"));
}

#[test]
fn recommendation_with_sparse_gradients_on_two_ranks_gives_one_process_weights() {
    let data = root().join("data/movielens-100k");
    if !data.join("ml-100k.inter").is_file() {
        eprintln!(
            "skipped: MovieLens-100k is not in data/movielens-100k (scripts/fetch-movielens.sh)"
        );
        return;
    }
    let d = tmp("mpi-recommend");
    let args = |batch: &str, out: &Path| -> Vec<String> {
        [
            "recommend",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--batch-size",
            batch,
            "--out",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (one, two) = (d.join("one.safetensors"), d.join("two.safetensors"));
    ok(&strs(&args("256", &one)));
    let mut a = args("128", &two);
    a.push("--distributed".into());
    mpi_ok(2, &strs(&a));
    // SparseAdam on row-sparse embedding gradients, summed over the union of the ranks' rows
    let worst = worst_relative(&two, &one);
    eprintln!("MF, 2 ranks at 128 against 1 process at 256: {worst:e}");
    assert!(worst <= 1e-5, "MF: {worst:e}");
}
