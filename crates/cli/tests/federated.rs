//! `ferrograd federated`: rounds of federated averaging on the bundled MNIST, their lines, CSV,
//! TensorBoard files, plot and weights; bad settings refused before any work.

mod common;
use common::{fails, ok, tmp};

/// A small run: the 2NN, 10 clients of 6,000 images, 3 a round, one local epoch at batch 50.
pub fn small_run(dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
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
        "--lr",
        "0.1",
        "--target",
        "0.8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, file) in [
        ("--metrics", "rounds.csv"),
        ("--out", "global.safetensors"),
        ("--plot", "rounds.png"),
        ("--tensorboard", "tb"),
    ] {
        v.push(flag.into());
        v.push(dir.join(file).to_str().unwrap().into());
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn rounds_are_reported_and_written() {
    let d = tmp("federated");
    let args = small_run(&d, &[]);
    let out = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.contains("Federated averaging of the 2nn (199210 parameters) on 10 clients (IID split), 3 a round"),
        "{out}"
    );
    let round2 = out
        .lines()
        .find(|l| l.starts_with("Round 2/2: test accuracy "))
        .unwrap_or_else(|| panic!("{out}"));
    // 3 clients of 199,210 values, down and up, 4 bytes each
    assert!(round2.contains("4.8 MB over the network"), "{round2}");
    assert!(
        out.contains("Reached 80.00% test accuracy at round"),
        "{out}"
    );
    let csv = std::fs::read_to_string(d.join("rounds.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "round,test_acc,train_loss,clients,samples,bytes,seconds"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let f: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(f[0], "2");
    assert_eq!(f[3].split(' ').count(), 3, "three clients: {}", f[3]);
    assert_eq!(f[4], "18000");
    assert_eq!(f[5], (2 * 4 * 3 * 199_210).to_string());
    let acc: f64 = f[1].parse().unwrap();
    assert!(acc > 0.8, "{acc}");
    assert!(std::fs::metadata(d.join("rounds.png")).unwrap().len() > 1000);
    assert!(std::fs::read_dir(d.join("tb")).unwrap().count() == 1);
    // the weights are the 2NN's, for `eval --model 2nn`
    let eval = ok(&[
        "eval",
        "--model",
        "2nn",
        "--weights",
        d.join("global.safetensors").to_str().unwrap(),
    ]);
    let pct = format!("{:.2}%", 100.0 * acc);
    assert!(
        eval.contains(&pct),
        "eval gives the last round's {pct}: {eval}"
    );
}

#[test]
fn fedsgd_and_fedprox_run_and_say_so() {
    let d = tmp("federated-kinds");
    let out = ok(&small_run(&d, &["--algorithm", "fedsgd"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(
        out.contains("Federated SGD") && out.contains("E = 1, B = inf"),
        "{out}"
    );
    let out = ok(&small_run(&d, &["--mu", "0.01"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(
        out.contains("FedProx of the 2nn") && out.contains("mu 0.01"),
        "{out}"
    );
}

#[test]
fn bad_settings_are_one_line() {
    for (args, needle) in [
        (vec!["--local-batch", "0"], "--local-batch"),
        (vec!["--local-batch", "ten"], "--local-batch"),
        (vec!["--fraction", "1.5"], "--fraction"),
        (vec!["--clients", "0"], "--clients"),
        (vec!["--rounds", "0"], "--rounds"),
        (vec!["--lr", "0"], "--lr"),
        (vec!["--target", "99"], "--target"),
        (
            vec!["--clients", "40000", "--partition", "noniid"],
            "40000 clients",
        ),
        (vec!["--data-dir", "/nonexistent"], "/nonexistent"),
    ] {
        let mut a = vec!["federated", "--model", "2nn"];
        a.extend(args);
        let err = fails(&a);
        assert!(err.contains(needle), "{a:?}: {err}");
    }
}
