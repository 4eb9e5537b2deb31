//! The `ferrograd` command end to end, on small subsets of the bundled MNIST so the suite stays
//! fast: learning, exact resume, metrics and plots, eval and predict, and every kind of bad input
//! giving one clear line and a non-zero exit.

mod common;
use common::{bin, fails, ok, tmp};
use std::path::{Path, PathBuf};

/// (correct, total) from the final accuracy line, checking the percentage agrees with them.
fn final_accuracy(out: &str) -> (usize, usize) {
    let line = out
        .lines()
        .find(|l| l.starts_with("Test Accuracy of the model on the"))
        .expect("no accuracy line");
    let pct: f64 = line
        .split(": ")
        .nth(1)
        .unwrap()
        .split('%')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let frac = line.split('(').nth(1).unwrap().trim_end_matches(')');
    let (c, t) = frac.split_once('/').unwrap();
    let (c, t): (usize, usize) = (c.parse().unwrap(), t.parse().unwrap());
    assert!(line.contains(&format!("on the {t} test images")));
    assert_eq!(
        format!("{:.2}", 100.0 * c as f64 / t as f64),
        format!("{pct:.2}"),
        "{line}"
    );
    (c, t)
}

#[test]
fn mlp_learns_on_a_subset_and_writes_metrics_plot_and_weights() {
    let d = tmp("learn");
    let (m, p, w) = (d.join("m.csv"), d.join("p.png"), d.join("w.safetensors"));
    let out = ok(&[
        "train",
        "--train-subset",
        "3000",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--log-every",
        "20",
        "--metrics",
        m.to_str().unwrap(),
        "--plot",
        p.to_str().unwrap(),
        "--save",
        w.to_str().unwrap(),
    ]);
    assert!(out.contains("Epoch [1/1], Step [80/94], Loss: "), "{out}");
    let (c, t) = final_accuracy(&out);
    assert_eq!(t, 10_000);
    assert!(c > 8500, "accuracy {c}/{t} after one epoch on 3000 images");
    let csv = std::fs::read_to_string(&m).unwrap();
    assert!(csv.starts_with("kind,epoch,step,loss,lr,train_acc,test_acc,samples_per_s\n"));
    assert_eq!(csv.lines().filter(|l| l.starts_with("step,")).count(), 4);
    assert_eq!(csv.lines().filter(|l| l.starts_with("epoch,")).count(), 1);
    assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG");
    // eval reads the weights back and agrees with the trainer
    let ev = ok(&["eval", "--model", "mlp", "--weights", w.to_str().unwrap()]);
    assert_eq!(final_accuracy(&ev), (c, t));
    assert!(
        ev.contains("Confusion matrix") && ev.contains("Accuracy per class"),
        "{ev}"
    );
}

#[test]
fn parity_task_learns() {
    let out = ok(&[
        "train",
        "--task",
        "parity",
        "--train-subset",
        "2000",
        "--epochs",
        "1",
    ]);
    let (c, t) = final_accuracy(&out);
    assert!(c as f64 / t as f64 > 0.85, "{c}/{t}");
}

#[test]
fn lenet5_trains_on_a_subset() {
    let out = ok(&[
        "train",
        "--model",
        "lenet5",
        "--train-subset",
        "2000",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
        "--scheduler",
        "none",
    ]);
    let (c, _) = final_accuracy(&out);
    assert!(c > 7500, "{c}");
}

#[test]
fn two_epochs_plus_a_resumed_third_equal_three_epochs() {
    let d = tmp("resume");
    let ck = d.join("ck.safetensors");
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    let common = [
        "train",
        "--train-subset",
        "640",
        "--batch-size",
        "32",
        "--threads",
        "2",
    ];
    let args = |extra: &[&str]| {
        common
            .iter()
            .chain(extra)
            .copied()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let o = bin()
        .args(args(&["--epochs", "3", "--save", a.to_str().unwrap()]))
        .output()
        .unwrap();
    assert!(o.status.success());
    ok(
        &args(&["--epochs", "2", "--checkpoint", ck.to_str().unwrap()])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let out = ok(&args(&[
        "--epochs",
        "3",
        "--resume",
        ck.to_str().unwrap(),
        "--save",
        b.to_str().unwrap(),
    ])
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    assert!(
        out.contains("Resumed from") && out.contains("Epoch [3/3]") && !out.contains("Epoch [1/3]"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "resumed weights differ"
    );
    // the same with a per-batch schedule, stopping mid-epoch with --max-steps
    let (c1, c2) = (d.join("c1.safetensors"), d.join("c2.safetensors"));
    let sched = [
        "--model",
        "mlp",
        "--scheduler",
        "onecycle",
        "--optimizer",
        "adamw",
        "--lr",
        "0.003",
        "--epochs",
        "2",
    ];
    let full = args(&[&sched[..], &["--save", c1.to_str().unwrap()]].concat());
    ok(&full.iter().map(String::as_str).collect::<Vec<_>>());
    let part = args(
        &[
            &sched[..],
            &["--max-steps", "25", "--checkpoint", ck.to_str().unwrap()],
        ]
        .concat(),
    );
    ok(&part.iter().map(String::as_str).collect::<Vec<_>>());
    let rest = args(
        &[
            &sched[..],
            &[
                "--resume",
                ck.to_str().unwrap(),
                "--save",
                c2.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    ok(&rest.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(&c1).unwrap(),
        std::fs::read(&c2).unwrap(),
        "mid-epoch resume differs"
    );
    // resuming with settings that change the data order is refused
    let e = fails(
        &args(&[
            "--epochs",
            "3",
            "--seed",
            "9",
            "--resume",
            ck.to_str().unwrap(),
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(e.contains("cannot resume") && e.contains("--seed"), "{e}");
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_checkpoint() {
    let d = tmp("nan");
    let ck = d.join("ck.safetensors");
    ok(&[
        "train",
        "--train-subset",
        "256",
        "--epochs",
        "1",
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    let before = std::fs::read(&ck).unwrap();
    let e = fails(&[
        "train",
        "--train-subset",
        "3200",
        "--epochs",
        "1",
        "--lr",
        "1e6",
        "--checkpoint",
        ck.to_str().unwrap(),
    ]);
    assert!(
        e.contains("step ") && e.contains("the loss is") && e.contains("diverged"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        before,
        "checkpoint overwritten"
    );
}

#[test]
fn bad_flags_are_errors() {
    for (flag, v) in [
        ("--log-every", "0"),
        ("--batch-size", "0"),
        ("--epochs", "0"),
        ("--max-steps", "0"),
    ] {
        let e = fails(&["train", flag, v]);
        assert!(e.contains("must be positive"), "{flag}: {e}");
    }
}

#[test]
fn bad_data_gives_one_line_naming_the_file() {
    let e = fails(&["train", "--data-dir", "/nonexistent/mnist"]);
    assert!(
        e.contains("/nonexistent/mnist") && e.contains("not found"),
        "{e}"
    );
    // truncated, corrupt and wrongly typed IDX files
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    type Mangle = fn(Vec<u8>) -> Vec<u8>;
    let cases: [(&str, Mangle, &str); 3] = [
        ("truncated", |b| b[..b.len() / 3].to_vec(), "gzip"),
        (
            "corrupt",
            |mut b| {
                let n = b.len();
                for v in &mut b[n / 2..n / 2 + 64] {
                    *v ^= 0x5a;
                }
                b
            },
            "gzip",
        ),
        (
            "float-typed",
            |_| {
                let mut raw = vec![0u8, 0, 0x0D, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
                raw.extend(vec![0u8; 4 * 784]);
                raw
            },
            "not supported",
        ),
    ];
    for (name, mangle, needle) in cases {
        let d = tmp(name);
        for f in [
            "t10k-labels-idx1-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
        ] {
            std::fs::copy(src.join(f), d.join(f)).unwrap();
        }
        let bytes = std::fs::read(src.join("t10k-images-idx3-ubyte.gz")).unwrap();
        let target = if name == "float-typed" {
            "t10k-images-idx3-ubyte"
        } else {
            "t10k-images-idx3-ubyte.gz"
        };
        std::fs::write(d.join(target), mangle(bytes)).unwrap();
        let e = fails(&[
            "eval",
            "--model",
            "mlp",
            "--weights",
            "none.safetensors",
            "--data-dir",
            d.to_str().unwrap(),
        ]);
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains(needle),
            "{name}: {e}"
        );
    }
}

#[test]
fn bad_weights_files_are_reported() {
    let d = tmp("weights");
    let w = d.join("w.safetensors");
    ok(&[
        "train",
        "--train-subset",
        "64",
        "--epochs",
        "1",
        "--save",
        w.to_str().unwrap(),
    ]);
    // weights of another architecture: missing and unexpected tensors are listed
    let e = fails(&[
        "eval",
        "--model",
        "lenet5",
        "--weights",
        w.to_str().unwrap(),
    ]);
    assert!(
        e.contains("missing tensors")
            && e.contains("conv1.weight")
            && e.contains("fc1.weight: expected shape [120, 400], got [500, 784]"),
        "{e}"
    );
    // a digits model loaded for the parity task: mis-shaped tensors are named
    let e = fails(&[
        "train",
        "--task",
        "parity",
        "--init",
        w.to_str().unwrap(),
        "--train-subset",
        "64",
    ]);
    assert!(
        e.contains("fc2.weight: expected shape [1, 500], got [10, 500]"),
        "{e}"
    );
    // a truncated file
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(d.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&[
        "eval",
        "--model",
        "mlp",
        "--weights",
        d.join("cut.safetensors").to_str().unwrap(),
    ]);
    assert!(
        e.contains("cut.safetensors") && e.contains("not a valid safetensors file"),
        "{e}"
    );
    let e = fails(&[
        "eval",
        "--model",
        "mlp",
        "--weights",
        d.join("absent.safetensors").to_str().unwrap(),
    ]);
    assert!(
        e.contains("absent.safetensors") && e.contains("cannot read"),
        "{e}"
    );
    // a weights file is not a checkpoint
    let e = fails(&[
        "train",
        "--resume",
        w.to_str().unwrap(),
        "--train-subset",
        "64",
    ]);
    assert!(e.contains("not a ferrograd checkpoint"), "{e}");
}

#[test]
fn init_from_pytorch_weights_and_predict_a_png() {
    let d = tmp("predict");
    let torch =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch_lenet5.safetensors");
    let w = d.join("lenet.safetensors");
    let out = ok(&[
        "train",
        "--model",
        "lenet5",
        "--init",
        torch.to_str().unwrap(),
        "--train-subset",
        "512",
        "--epochs",
        "1",
        "--save",
        w.to_str().unwrap(),
    ]);
    assert!(out.contains("Initialised weights from"), "{out}");
    // a digit drawn as a PNG: an MNIST test image (a 7), dark on light to exercise the inversion
    let mnist = ferrograd_png_digit(&d);
    let out = ok(&[
        "predict",
        "--model",
        "lenet5",
        "--weights",
        w.to_str().unwrap(),
        mnist.to_str().unwrap(),
    ]);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let probs: Vec<f64> = lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches('%')
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        probs[0] >= probs[1] && probs[1] >= probs[2] && probs.iter().sum::<f64>() <= 100.01,
        "{out}"
    );
    let e = fails(&[
        "predict",
        "--model",
        "lenet5",
        "--weights",
        w.to_str().unwrap(),
        "Cargo.toml",
    ]);
    assert!(e.contains("Cargo.toml") && e.contains("PNG"), "{e}");
}

/// Writes the first MNIST test image (a 7) as an inverted 56x56 greyscale PNG.
fn ferrograd_png_digit(dir: &Path) -> PathBuf {
    use flate2::read::GzDecoder;
    use std::io::Read;
    let gz = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist/t10k-images-idx3-ubyte.gz"),
    )
    .unwrap();
    let mut raw = Vec::new();
    GzDecoder::new(&gz[..]).read_to_end(&mut raw).unwrap();
    let img = &raw[16..16 + 784];
    let mut big = vec![0u8; 56 * 56];
    for y in 0..56 {
        for x in 0..56 {
            big[y * 56 + x] = 255 - img[(y / 2) * 28 + x / 2];
        }
    }
    let path = dir.join("seven.png");
    let f = std::fs::File::create(&path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 56, 56);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&big).unwrap();
    path
}

#[test]
fn help_documents_the_defaults_of_each_model() {
    let out = ok(&["train", "--help"]);
    for needle in [
        "lenet5-classic",
        "lr 0.1, momentum 0.9",
        "one-cycle",
        "--max-steps",
        "--resume",
        "[default: 64]",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
}

#[test]
fn gpt_trains_samples_and_rejects_bad_input() {
    let d = tmp("gpt");
    let corpus = d.join("corpus.txt");
    std::fs::write(
        &corpus,
        "to be or not to be, that is the question. ".repeat(40),
    )
    .unwrap();
    let w = d.join("gpt.safetensors");
    let tiny_args = tiny_gpt_args(&corpus, &w);
    let tiny = strs(&tiny_args);
    let out = ok(&tiny);
    let losses: Vec<f64> = out
        .lines()
        .filter(|l| l.starts_with("step "))
        .map(|l| {
            l.split("val loss ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 4, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("step 10: train loss ")),
        "{out}"
    );
    assert!(losses[3] < losses[0], "val loss did not fall: {losses:?}");
    let s = ok(&[
        "gpt",
        "sample",
        "--weights",
        w.to_str().unwrap(),
        "--prompt",
        "to be",
        "--tokens",
        "20",
        "--seed",
        "3",
    ]);
    assert!(
        s.starts_with("to be") && s.trim_end().chars().count() >= 25,
        "{s}"
    );
    assert_eq!(
        s,
        ok(&[
            "gpt",
            "sample",
            "--weights",
            w.to_str().unwrap(),
            "--prompt",
            "to be",
            "--tokens",
            "20",
            "--seed",
            "3"
        ])
    );
    let e = fails(&[
        "gpt",
        "sample",
        "--weights",
        w.to_str().unwrap(),
        "--prompt",
        "ROMEO",
    ]);
    assert!(
        e.contains("--prompt") && e.contains("'R'") && e.contains("not in the vocabulary"),
        "{e}"
    );
    std::fs::write(d.join("empty.txt"), "").unwrap();
    let e = fails(&[
        "gpt",
        "train",
        "--data",
        d.join("empty.txt").to_str().unwrap(),
    ]);
    assert!(e.contains("empty.txt") && e.contains("empty"), "{e}");
    std::fs::write(d.join("bin.dat"), [0u8, 159, 146, 150]).unwrap();
    let e = fails(&[
        "gpt",
        "train",
        "--data",
        d.join("bin.dat").to_str().unwrap(),
    ]);
    assert!(e.contains("bin.dat") && e.contains("binary"), "{e}");
    // gradient accumulation and metrics
    let m = d.join("gpt.csv");
    let mut acc: Vec<&str> = tiny.to_vec();
    let png = d.join("gpt.png");
    acc.extend([
        "--grad-accum",
        "2",
        "--metrics",
        m.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    ok(&acc);
    let csv = std::fs::read_to_string(&m).unwrap();
    assert!(
        csv.starts_with("iter,train_loss,val_loss,lr\n0,") && csv.lines().count() == 5,
        "{csv}"
    );
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    // MNIST weights are not a GPT
    let m = d.join("mlp.safetensors");
    ok(&[
        "train",
        "--train-subset",
        "64",
        "--epochs",
        "1",
        "--save",
        m.to_str().unwrap(),
    ]);
    let e = fails(&["gpt", "sample", "--weights", m.to_str().unwrap()]);
    assert!(e.contains("not written by ferrograd gpt train"), "{e}");
}

#[test]
fn gpt_with_a_byte_level_bpe_tokenizer() {
    let d = tmp("gptbpe");
    let corpus = d.join("corpus.txt");
    std::fs::write(
        &corpus,
        "to be or not to be, that is the question. whether 'tis nobler in the mind\n".repeat(30),
    )
    .unwrap();
    let w = d.join("gpt.safetensors");
    let out = ok(&[
        "gpt",
        "train",
        "--data",
        corpus.to_str().unwrap(),
        "--tokenizer",
        "bpe",
        "--vocab-size",
        "300",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--block-size",
        "8",
        "--batch-size",
        "4",
        "--max-iters",
        "20",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "2",
        "--lr",
        "0.01",
        "--out",
        w.to_str().unwrap(),
    ]);
    // at most 300: merges stop early when pairs run out in a small corpus
    let vocab: usize = out
        .split("byte-level BPE vocabulary ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("vocabulary size");
    assert!((257..=300).contains(&vocab), "{out}");
    // merges shorten the text: far fewer tokens than bytes
    let train_tokens: usize = out
        .split(", ")
        .find(|p| p.contains(" train / "))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("token count");
    assert!(train_tokens < 30 * 75 / 3, "{train_tokens} tokens: {out}");
    // any prompt encodes (bytes), the sample is reproducible and valid UTF-8
    let args = [
        "gpt",
        "sample",
        "--weights",
        w.to_str().unwrap(),
        "--prompt",
        "Ünïcode to be",
        "--tokens",
        "15",
        "--seed",
        "2",
    ];
    let s = ok(&args);
    assert!(s.starts_with("Ünïcode to be"), "{s}");
    assert_eq!(s, ok(&args));
    let e = fails(&[
        "gpt",
        "train",
        "--data",
        corpus.to_str().unwrap(),
        "--tokenizer",
        "bpe",
        "--vocab-size",
        "100",
        "--out",
        w.to_str().unwrap(),
    ]);
    assert!(e.contains("at least 257"), "{e}");
    let e = fails(&[
        "gpt",
        "train",
        "--data",
        corpus.to_str().unwrap(),
        "--tokenizer",
        "words",
    ]);
    assert!(e.contains("char or bpe"), "{e}");
}

#[test]
fn gpt_stopped_and_resumed_equals_one_run() {
    gpt_resume("gptresume", "0");
}

/// With dropout the attention layers' generators are in the checkpoint too.
#[test]
fn gpt_with_dropout_stopped_and_resumed_equals_one_run() {
    gpt_resume("gptresume-dropout", "0.1");
}

fn gpt_resume(name: &str, dropout: &str) {
    let d = tmp(name);
    let corpus = d.join("corpus.txt");
    std::fs::write(
        &corpus,
        "all the world's a stage, and all the men and women merely players. ".repeat(30),
    )
    .unwrap();
    let (full, part, ck) = (
        d.join("full.safetensors"),
        d.join("part.safetensors"),
        d.join("ck.safetensors"),
    );
    let args = |out: &std::path::Path| {
        let mut v = tiny_gpt_args(&corpus, out);
        v.extend(["--dropout".to_string(), dropout.to_string()]);
        v
    };
    let a = args(&full);
    let one = ok(&strs(&a));
    let mut b = args(&part);
    b.extend(["--checkpoint", ck.to_str().unwrap(), "--max-steps", "20"].map(String::from));
    let first = ok(&strs(&b));
    assert!(first.contains("stopped at iteration 20"), "{first}");
    assert!(!part.exists());
    let mut c = args(&part);
    c.extend(
        [
            "--checkpoint",
            ck.to_str().unwrap(),
            "--resume",
            ck.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let second = ok(&strs(&c));
    assert!(second.contains("resumed from"), "{second}");
    // the same tensors, bit for bit, and the same metadata (the file bytes may differ only in the
    // order the safetensors header lists its metadata keys, a hash map's order)
    let (tf, mf) = ferrograd_nn::serialize::load_tensors(&full).unwrap();
    let (tp, mp) = ferrograd_nn::serialize::load_tensors(&part).unwrap();
    assert_eq!(mf, mp);
    assert_eq!(tf.keys().collect::<Vec<_>>(), tp.keys().collect::<Vec<_>>());
    for (k, a) in &tf {
        let (a, b) = (a.to_vec::<f32>().unwrap(), tp[k].to_vec::<f32>().unwrap());
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same && a.len() == b.len(), "{k} differs after resume");
    }
    // the evaluation lines of both parts are those of the single run
    let evals = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("step "))
            .map(|l| l.split(" (").next().unwrap().to_string())
            .collect()
    };
    let mut joined = evals(&first);
    joined.extend(evals(&second));
    assert_eq!(joined, evals(&one));
    // other settings are refused
    let mut e = args(&part);
    let lr_at = e.iter().position(|x| x == "--lr").unwrap() + 1;
    e[lr_at] = "0.02".into();
    e.extend(["--resume", ck.to_str().unwrap()].map(String::from));
    let err = fails(&strs(&e));
    assert!(
        err.contains("cannot resume") && err.contains("--lr is 0.01 in the checkpoint, 0.02 now"),
        "{err}"
    );
}

/// `gpt train` of a one-layer, 16-wide model for 30 iterations on `corpus`, saved to `out`.
fn tiny_gpt_args(corpus: &std::path::Path, out: &std::path::Path) -> Vec<String> {
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
        "8",
        "--batch-size",
        "4",
        "--max-iters",
        "30",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--warmup-iters",
        "5",
        "--lr",
        "0.01",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// SIGTERM during training: the run stops at the next step, writes its checkpoint, exits
/// non-zero with a line saying how to resume; resuming gives the weights of a run that was never
/// stopped.
#[test]
fn sigterm_checkpoints_at_a_step_boundary_and_the_run_resumes_exactly() {
    use std::io::{BufRead, BufReader};
    let d = tmp("sigterm");
    let (ck, a, b) = (
        d.join("ck.safetensors"),
        d.join("a.safetensors"),
        d.join("b.safetensors"),
    );
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--train-subset",
            "4000",
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--log-every",
            "5",
            "--threads",
            "1",
        ]
        .map(String::from)
        .to_vec();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let mut child = bin()
        .args(args(&[
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
        ]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // wait for the first logged step, then ask it to stop
    let first = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l.contains("Step [5/"));
    assert!(first.is_some(), "no step line");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{rest:?}");
    assert!(
        err.contains("interrupted at step") && err.contains(&format!("--resume {}", ck.display())),
        "{err}"
    );
    assert!(
        ck.exists() && !b.exists(),
        "checkpoint written, weights not"
    );
    assert!(
        rest.iter().all(|l| !l.contains("Step [1000/")),
        "the run did not stop early: {rest:?}"
    );
    ok(&strs(&args(&[
        "--resume",
        ck.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
    ])));
    ok(&strs(&args(&["--out", a.to_str().unwrap()])));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "resumed weights differ"
    );
}

/// Output paths are checked before anything runs: a missing directory, an output equal to an
/// input and two equal outputs are refused with one line each, and nothing is written.
#[test]
fn bad_output_paths_are_refused_before_the_first_step() {
    let d = tmp("outputs");
    let w = d.join("w.safetensors");
    let e = fails(&[
        "train",
        "--out",
        d.join("missing/w.safetensors").to_str().unwrap(),
    ]);
    assert!(e.contains("--out") && e.contains("does not exist"), "{e}");
    let e = fails(&[
        "train",
        "--checkpoint",
        w.to_str().unwrap(),
        "--save",
        w.to_str().unwrap(),
    ]);
    assert!(e.contains("are the same path"), "{e}");
    let corpus = d.join("corpus.txt");
    std::fs::write(&corpus, "some text to learn from. ".repeat(20)).unwrap();
    let e = fails(&[
        "gpt",
        "train",
        "--data",
        corpus.to_str().unwrap(),
        "--out",
        corpus.to_str().unwrap(),
    ]);
    assert!(e.contains("is also the input --data"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&corpus).unwrap(),
        "some text to learn from. ".repeat(20)
    );
    let e = fails(&["train", "--out", "data/mnist/t10k-labels-idx1-ubyte.gz"]);
    assert!(e.contains("is also the input --data-dir"), "{e}");
    let e = fails(&["train", "--tensorboard", corpus.to_str().unwrap()]);
    assert!(e.contains("not a directory"), "{e}");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
}

/// NAdam, RAdam, Adamax and Adadelta, selected by name, train the MLP (2 epochs of 2,000
/// images; 79-88% measured, 10% is chance); without --lr each starts from PyTorch's default.
#[test]
fn the_added_optimizers_train_the_mlp() {
    for (opt, lr) in [
        ("nadam", "3e-3"),
        ("radam", "3e-3"),
        ("adamax", "3e-3"),
        ("adadelta", "1.0"),
    ] {
        let out = ok(&[
            "train",
            "--train-subset",
            "2000",
            "--epochs",
            "2",
            "--optimizer",
            opt,
            "--lr",
            lr,
        ]);
        let (c, t) = final_accuracy(&out);
        assert!(c as f64 / t as f64 > 0.75, "{opt}: {c}/{t}");
    }
}

/// Without --lr, another optimizer than the model's starts from its PyTorch default rate, and
/// the banner says which.
#[test]
fn another_optimizer_starts_from_its_pytorch_learning_rate() {
    let out = ok(&[
        "train",
        "--train-subset",
        "640",
        "--epochs",
        "1",
        "--optimizer",
        "adam",
    ]);
    assert!(out.contains("Adam, lr 0.001,"), "{out}");
    let out = ok(&[
        "train",
        "--train-subset",
        "640",
        "--epochs",
        "1",
        "--optimizer",
        "sgd",
    ]);
    assert!(out.contains("Sgd, lr 0.1,"), "{out}");
}
