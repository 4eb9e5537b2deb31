//! `ferrograd embed`, `similarity`, `finetune` and `classify` on the real all-MiniLM-L6-v2
//! (fetched by scripts/fetch-minilm.sh; skipped with a message when it is absent), on a small
//! made-up sentiment set so the suite stays fast.

mod common;
use common::{fails, ok, root, tmp};
use std::path::{Path, PathBuf};

fn have_model() -> bool {
    let ok = root()
        .join("models/all-MiniLM-L6-v2/model.safetensors")
        .exists();
    if !ok {
        eprintln!("SKIPPED: run scripts/fetch-minilm.sh to enable the MiniLM command tests");
    }
    ok
}

#[test]
fn embed_and_similarity() {
    if !have_model() {
        return;
    }
    let out = ok(&[
        "embed",
        "A man is eating food.",
        "A man is eating a piece of bread.",
    ]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["text"], "A man is eating a piece of bread.");
    let e: Vec<f64> = rows[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(e.len(), 384);
    assert!((e.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-5);

    let d = tmp("embed");
    let input = d.join("in.txt");
    std::fs::write(&input, "first line\nsecond line\n").unwrap();
    let st = d.join("e.safetensors");
    ok(&[
        "embed",
        "--input",
        input.to_str().unwrap(),
        "--output",
        st.to_str().unwrap(),
    ]);
    assert!(std::fs::metadata(&st).unwrap().len() > 2 * 384 * 4);

    let sim = |a: &str, b: &str| -> f64 { ok(&["similarity", a, b]).trim().parse().unwrap() };
    let close = sim("A man is eating food.", "A man is eating a piece of bread.");
    let far = sim("A man is eating food.", "The girl is carrying a baby.");
    assert!(close > 0.6 && far < 0.2 && close > far, "{close} {far}");

    let e = fails(&["embed", "--model", d.to_str().unwrap(), "x"]);
    assert!(e.contains("fetch-minilm"), "{e}");
    fails(&["embed"]);
    fails(&["embed", "--max-len", "100000", "x"]);
}

/// A small two-class set anyone can label: praise and complaints.
fn sentiment_csv(dir: &Path) -> PathBuf {
    let good = [
        "I love it",
        "wonderful experience",
        "absolutely fantastic",
        "great job, thank you",
        "this is excellent",
        "what a delight",
        "happy with the result",
        "brilliant work",
        "best purchase ever",
        "really enjoyed it",
        "superb quality",
        "amazing, highly recommend",
    ];
    let bad = [
        "I hate it",
        "terrible experience",
        "absolutely awful",
        "worst service ever",
        "this is horrible",
        "what a disaster",
        "very disappointed",
        "broken on arrival",
        "waste of money",
        "really annoying",
        "poor quality",
        "dreadful, avoid it",
    ];
    let mut s = String::from("review,mood\n");
    for i in 0..2 {
        for (g, b) in good.iter().zip(bad) {
            s.push_str(&format!(
                "\"{g}{}\",good\n\"{b}{}\",bad\n",
                ".".repeat(i),
                "!".repeat(i)
            ));
        }
    }
    let p = dir.join("reviews.csv");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn finetune_with_lora_then_classify_with_adapters_and_merged_weights() {
    if !have_model() {
        return;
    }
    let d = tmp("ft");
    let data = sentiment_csv(&d);
    let out_w = d.join("lora.safetensors");
    let merged = d.join("merged.safetensors");
    let metrics = d.join("m.csv");
    let args = [
        "finetune",
        "--data",
        data.to_str().unwrap(),
        "--text-field",
        "review",
        "--label-field",
        "mood",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-len",
        "16",
        "--lr",
        "1e-3",
        "--lora-rank",
        "4",
        "--val-fraction",
        "0.25",
        "--log-every",
        "2",
        "--out",
        out_w.to_str().unwrap(),
        "--export-merged",
        merged.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ];
    let out = ok(&args);
    assert!(out.contains("Epoch [1/2], Step [2/"), "{out}");
    assert!(out.contains("held-out accuracy"), "{out}");
    assert!(out.contains("LoRA rank 4"), "{out}");
    // the adapters file is small: adapters and head only
    let size = std::fs::metadata(&out_w).unwrap().len();
    assert!(size < 1_000_000, "{size}");
    assert!(std::fs::metadata(&merged).unwrap().len() > 80_000_000);
    let csv = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(
        csv.starts_with("epoch,train_loss,val_accuracy,val_macro_f1,seconds\n"),
        "{csv}"
    );
    // every cell filled: epoch, loss, accuracy, F1 and the epoch's seconds
    for row in csv.lines().skip(1) {
        assert!(row.split(',').all(|c| !c.is_empty()), "{row}");
    }
    // same seed, same numbers (the timings aside)
    let numbers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("Epoch ["))
            .map(|l| l.split(", macro-F1").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(numbers(&ok(&args)), numbers(&out));

    let texts = ["an absolutely wonderful day", "a horrible, awful mess"];
    let a = ok(&[
        "classify",
        "--weights",
        out_w.to_str().unwrap(),
        texts[0],
        texts[1],
    ]);
    let m = ok(&[
        "classify",
        "--weights",
        merged.to_str().unwrap(),
        texts[0],
        texts[1],
    ]);
    let parse = |s: &str| -> Vec<(String, f64)> {
        s.lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[0].to_string(), f[1].parse().unwrap())
            })
            .collect()
    };
    let (a, m) = (parse(&a), parse(&m));
    assert_eq!(a.len(), 2);
    for ((la, pa), (lm, pm)) in a.iter().zip(&m) {
        assert_eq!(la, lm);
        assert!((pa - pm).abs() < 1e-3, "{pa} vs {pm}");
    }
    assert_eq!(a[0].0, "good");
    assert_eq!(a[1].0, "bad");
}

#[test]
fn finetune_bad_input_is_one_line() {
    if !have_model() {
        return;
    }
    let d = tmp("ftbad");
    let data = sentiment_csv(&d);
    let data = data.to_str().unwrap();
    let base = ["finetune", "--data", data, "--label-field", "mood"];
    let e = fails(&[&base[..], &["--text-field", "body"]].concat());
    assert!(e.contains("no column \"body\""), "{e}");
    let e = fails(
        &[
            &base[..],
            &[
                "--text-field",
                "review",
                "--freeze-encoder",
                "--lora-rank",
                "4",
            ],
        ]
        .concat(),
    );
    assert!(e.contains("exclude"), "{e}");
    let e = fails(
        &[
            &base[..],
            &[
                "--text-field",
                "review",
                "--lora-rank",
                "4",
                "--lora-targets",
                "qkv",
            ],
        ]
        .concat(),
    );
    assert!(e.contains("qkv"), "{e}");
    let e = fails(&["finetune", "--data", "/nonexistent.csv"]);
    assert!(e.contains("/nonexistent.csv"), "{e}");
    let e = fails(&["classify", "--weights", data, "x"]);
    assert!(e.contains("reviews.csv"), "{e}");
}

/// Full fine-tuning (dropout on, a per-batch schedule) stopped mid-epoch with --max-steps and
/// resumed from the checkpoint gives the weights of one uninterrupted run, bit for bit.
#[test]
fn finetune_stopped_and_resumed_equals_one_run() {
    if !have_model() {
        return;
    }
    let d = tmp("ft-resume");
    let data = sentiment_csv(&d);
    let (one, two, ck) = (
        d.join("one.safetensors"),
        d.join("two.safetensors"),
        d.join("ck.safetensors"),
    );
    let args = |out: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "finetune",
            "--data",
            data.to_str().unwrap(),
            "--text-field",
            "review",
            "--label-field",
            "mood",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--max-len",
            "12",
            "--lr",
            "1e-4",
            "--val-fraction",
            "0.25",
            "--max-train",
            "24",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    ok(&strs(&args(&one, &[])));
    let first = ok(&strs(&args(
        &two,
        &["--max-steps", "4", "--checkpoint", ck.to_str().unwrap()],
    )));
    assert!(first.contains("Stopped after 4 steps"), "{first}");
    assert!(!two.exists(), "a stopped run wrote its weights");
    let second = ok(&strs(&args(&two, &["--resume", ck.to_str().unwrap()])));
    assert!(
        second.contains("Resumed from") && second.contains("at epoch 2, step 4"),
        "{second}"
    );
    let (a, _) = ferrograd_nn::serialize::load_tensors(&one).unwrap();
    let (b, _) = ferrograd_nn::serialize::load_tensors(&two).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in &a {
        let same = t.to_vec_f64() == b[k].to_vec_f64();
        assert!(same, "{k} differs after resume");
    }
    let mut other = args(&two, &["--resume", ck.to_str().unwrap()]);
    let lr = other.iter().position(|a| a == "--lr").unwrap() + 1;
    other[lr] = "2e-4".into();
    let e = fails(&strs(&other));
    assert!(
        e.contains("--lr is 0.0001 in the checkpoint, 0.0002 now"),
        "{e}"
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
