//! The standing bad-input suite: the real binary handed crafted files, absurd sizes and wrong
//! flags, as a stranger's files or a typo would hand them. Every case must end with exit code
//! 1 and one line on stderr naming the file or flag and what is wrong: no panic, no abort, no
//! signal, a peak resident memory under [`MEMORY_BOUND_KIB`] (measured with `wait4`), and no
//! file that existed before changed.

mod common;
use common::{bin, root, tmp};
use ferrograd_nn::serialize::{load_tensors, save_tensors};
use ferrograd_tensor::Tensor;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The most memory (peak RSS) any refused input may cost: 512 MiB.
const MEMORY_BOUND_KIB: i64 = 512 * 1024;

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    max_rss_kib: i64,
}

/// Runs the binary, reaping it with `wait4` for its own peak resident memory.
fn run_measured(args: &[&str]) -> Outcome {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 is given this child's pid and valid
    // pointers; the child is reaped here and never waited for through `child` again.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    std::mem::forget(child);
    let exited = libc::WIFEXITED(status);
    Outcome {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        stderr: reader.join().unwrap(),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_file() && std::fs::metadata(&p).unwrap().len() < 1 << 20 {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        } else if e.file_type().unwrap().is_file() {
            out.insert(
                p.clone(),
                std::fs::metadata(&p).unwrap().len().to_le_bytes().to_vec(),
            );
        }
    }
    out
}

/// Runs one case in `dir` and checks everything the suite promises; `needles` must all be in
/// the error line.
fn refused(dir: &Path, args: &[&str], needles: &[&str]) {
    let before = snapshot(dir);
    let o = run_measured(args);
    let err = o.stderr.trim();
    assert_eq!(
        o.signal, None,
        "{args:?} was killed by signal {:?}: {err}",
        o.signal
    );
    assert_eq!(o.code, Some(1), "{args:?} exited {:?}: {err}", o.code);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: expected one line, got:\n{err}"
    );
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} is not in: {err}");
    }
    assert!(
        o.max_rss_kib < MEMORY_BOUND_KIB,
        "{args:?} peaked at {} MiB: {err}",
        o.max_rss_kib / 1024
    );
    assert_eq!(
        before,
        snapshot(dir),
        "{args:?} changed files in {}",
        dir.display()
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny GPT weights file as `gpt train` writes it, with its config metadata replaced.
fn gpt_weights(dir: &Path, name: &str, config: &str) -> PathBuf {
    let w = |dims: &[usize]| Tensor::zeros(dims, ferrograd_tensor::DType::F32).unwrap();
    let mut t = BTreeMap::new();
    t.insert("transformer.wte.weight".to_string(), w(&[3, 4]));
    t.insert("transformer.wpe.weight".to_string(), w(&[8, 4]));
    t.insert("transformer.h.0.ln_1.weight".to_string(), w(&[4]));
    let mut md = HashMap::new();
    md.insert("config".to_string(), config.to_string());
    md.insert("vocab".to_string(), "\"ab\\n\"".to_string());
    let p = dir.join(name);
    save_tensors(&p, &t, Some(md)).unwrap();
    p
}

#[test]
fn crafted_gpt_configurations_are_checked_against_the_tensors() {
    let d = tmp("bad-gpt-config");
    let cfg = |l: u64, e: u64, v: u64| {
        format!(r#"{{"n_layer":{l},"n_head":1,"n_embd":{e},"block_size":8,"vocab_size":{v}}}"#)
    };
    let cases = [
        ("embd.safetensors", cfg(1, 1 << 20, 3), "n_embd 1048576"),
        (
            "vocab.safetensors",
            cfg(1, 4, 1 << 40),
            "vocab_size 1099511627776",
        ),
        (
            "layers.safetensors",
            cfg(1 << 30, 4, 3),
            "n_layer 1073741824",
        ),
    ];
    for (name, config, needle) in cases {
        let w = gpt_weights(&d, name, &config);
        refused(
            &d,
            &["gpt", "sample", "--weights", s(&w), "--tokens", "5"],
            &[name, needle],
        );
    }
}

#[test]
fn absurd_sizes_from_flags_are_refused() {
    let d = tmp("bad-sizes");
    let corpus = root().join("data/tiny_shakespeare.txt");
    let out = d.join("existing.safetensors");
    std::fs::write(&out, b"keep me").unwrap();
    let gpt = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["gpt", "train", "--data", s(&corpus), "--out", s(&out)];
        args.extend_from_slice(extra);
        refused(&d, &args, needles);
    };
    gpt(
        &["--batch-size", "2305843009213693952", "--block-size", "2"],
        &["--batch-size"],
    );
    gpt(
        &["--batch-size", "1099511627776"],
        &["--batch-size 1099511627776"],
    );
    gpt(
        &["--n-embd", "1048576", "--n-head", "1"],
        &["n_embd 1048576", "memory"],
    );
    gpt(
        &["--n-layer", "1073741824"],
        &["n_layer 1073741824", "memory"],
    );
    let train = |extra: &[&str], needles: &[&str]| {
        let mut args = vec!["train", "--save", s(&out)];
        args.extend_from_slice(extra);
        refused(&d, &args, needles);
    };
    train(&["--threads", "1024"], &["--threads 1024", "more than the"]);
    train(
        &[
            "--epochs",
            "18446744073709551615",
            "--scheduler",
            "onecycle",
        ],
        &["--epochs 18446744073709551615"],
    );
}

#[test]
fn files_are_checked_before_they_are_read_whole() {
    let d = tmp("bad-files");
    // a sparse gigabyte whose first 8 bytes claim a 2^40-byte safetensors header
    let sparse = d.join("sparse.safetensors");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(1 << 30).unwrap();
    (&f).write_all(&(1u64 << 40).to_le_bytes()).unwrap();
    let eval = |w: &str, needles: &[&str]| {
        refused(&d, &["eval", "--model", "mlp", "--weights", w], needles);
    };
    eval(s(&sparse), &["sparse.safetensors", "header claims"]);
    // a header within the limit but past the end of the file
    let short = d.join("short.safetensors");
    let mut bytes = 5000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&short, &bytes).unwrap();
    eval(s(&short), &["short.safetensors", "truncated"]);
    eval("/dev/zero", &["/dev/zero", "not a regular file"]);
    // a key twice in one header
    let dup = d.join("dup.safetensors");
    let h = br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(h);
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(&dup, &bytes).unwrap();
    eval(s(&dup), &["dup.safetensors", "\"a\" appears twice"]);
    // a sparse gigabyte as a corpus: binary, refused after its first bytes
    let corpus = d.join("sparse.txt");
    std::fs::File::create(&corpus)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    refused(
        &d,
        &["gpt", "train", "--data", s(&corpus)],
        &["sparse.txt", "binary"],
    );
    // one character: no split can hold a block
    let one = d.join("one.txt");
    std::fs::write(&one, "a").unwrap();
    refused(
        &d,
        &["gpt", "train", "--data", s(&one)],
        &["one.txt", "too short"],
    );
}

/// An MNIST folder with the bundled test files and the given training images and labels.
fn mnist_dir(d: &Path, name: &str, images: &[u8], labels: &[u8]) -> PathBuf {
    let m = d.join(name);
    std::fs::create_dir_all(&m).unwrap();
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(root().join("data/mnist").join(f), m.join(f)).unwrap();
    }
    std::fs::write(m.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(m.join("train-labels-idx1-ubyte"), labels).unwrap();
    m
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn bad_datasets_are_refused_naming_the_file() {
    use ferrograd_data::idx::encode_idx;
    let d = tmp("bad-data");
    let labels = encode_idx(&[100], &[3; 100]);
    let small = mnist_dir(
        &d,
        "small",
        &encode_idx(&[100, 10, 10], &[0; 10_000]),
        &labels,
    );
    refused(
        &d,
        &["train", "--data-dir", s(&small)],
        &["train-images", "10 x 10", "28 x 28"],
    );
    // a gzip stream inflating far past what its header declares
    let mut bomb = encode_idx(&[100, 28, 28], &[0; 78_400]);
    bomb.resize(bomb.len() + (200 << 20), 0);
    let m = d.join("bomb");
    mnist_dir(&d, "bomb", &[], &labels);
    std::fs::remove_file(m.join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(m.join("train-images-idx3-ubyte.gz"), gzip(&bomb)).unwrap();
    refused(
        &d,
        &["train", "--data-dir", s(&m)],
        &["train-images", "trailing data"],
    );
    // an empty test set
    let empty = mnist_dir(
        &d,
        "empty",
        &encode_idx(&[100, 28, 28], &[0; 78_400]),
        &labels,
    );
    for f in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::remove_file(empty.join(f)).unwrap();
    }
    std::fs::write(
        empty.join("t10k-images-idx3-ubyte"),
        encode_idx(&[0, 28, 28], &[]),
    )
    .unwrap();
    std::fs::write(empty.join("t10k-labels-idx1-ubyte"), encode_idx(&[0], &[])).unwrap();
    let w = d.join("w.safetensors");
    let o = bin()
        .args([
            "train",
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--train-subset",
            "64",
        ])
        .args(["--save", s(&w)])
        .output()
        .unwrap();
    assert!(o.status.success());
    refused(
        &d,
        &[
            "eval",
            "--model",
            "mlp",
            "--weights",
            s(&w),
            "--data-dir",
            s(&empty),
        ],
        &["t10k-images", "holds no images"],
    );
    // weights full of NaN
    let (mut t, _) = load_tensors(&w).unwrap();
    let nan = Tensor::full(t["fc2.bias"].dims(), f64::NAN, ferrograd_tensor::DType::F32).unwrap();
    t.insert("fc2.bias".into(), nan);
    let bad = d.join("nan.safetensors");
    save_tensors(&bad, &t, None).unwrap();
    refused(
        &d,
        &["eval", "--model", "mlp", "--weights", s(&bad)],
        &["nan.safetensors", "fc2.bias", "NaN"],
    );
}

#[test]
fn bad_flags_of_sampling_and_classifying_are_refused_before_any_work() {
    let d = tmp("bad-flags");
    let w = gpt_weights(&d, "g.safetensors", "{}");
    for t in ["nan", "inf", "-1", "0"] {
        let flag = format!("--temperature={t}");
        refused(
            &d,
            &["gpt", "sample", "--weights", s(&w), &flag],
            &["--temperature"],
        );
    }
    // a classifier whose class list is empty (the head would be indexed out of bounds)
    let mut md = HashMap::new();
    for (k, v) in [
        ("ferrograd.classes", "[]"),
        ("ferrograd.pooling", "mean"),
        ("ferrograd.max_len", "16"),
    ] {
        md.insert(k.to_string(), v.to_string());
    }
    let c = d.join("c.safetensors");
    save_tensors(&c, &BTreeMap::new(), Some(md)).unwrap();
    refused(
        &d,
        &["classify", "--weights", s(&c), "good film"],
        &["c.safetensors", "two or more distinct classes"],
    );
}

#[test]
fn labelled_sets_with_labels_of_the_wrong_kind_are_refused() {
    let d = tmp("bad-labels");
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "object.jsonl",
            "{\"text\":\"a\",\"label\":{\"x\":1}}\n",
            &["line 1", "an object"],
        ),
        (
            "array.jsonl",
            "{\"text\":\"a\",\"label\":[1]}\n",
            &["line 1", "an array"],
        ),
        (
            "null.jsonl",
            "{\"text\":\"a\",\"label\":null}\n",
            &["line 1", "null"],
        ),
        (
            "mixed.jsonl",
            "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":\"1\"}\n",
            &["line 2", "a string", "line 1", "a number"],
        ),
    ];
    for (name, text, needles) in cases {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let mut want = vec![name];
        want.extend_from_slice(needles);
        refused(&d, &["finetune", "--data", s(&f)], &want);
    }
}

/// A real checkpoint with its metadata edited as a crafted one would be.
#[test]
fn crafted_checkpoints_are_refused() {
    let d = tmp("bad-checkpoint");
    let ck = d.join("ck.safetensors");
    let args = [
        "train",
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--train-subset",
        "128",
    ];
    let o = bin()
        .args(args)
        .args(["--checkpoint", s(&ck)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (tensors, md) = load_tensors(&ck).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&md["ferrograd.checkpoint"]).unwrap();
    let edit = |name: &str, f: &dyn Fn(&mut serde_json::Value, &mut BTreeMap<String, Tensor>)| {
        let (mut m, mut t) = (meta.clone(), tensors.clone());
        f(&mut m, &mut t);
        let mut md = HashMap::new();
        md.insert("ferrograd.checkpoint".to_string(), m.to_string());
        let p = d.join(name);
        save_tensors(&p, &t, Some(md)).unwrap();
        p
    };
    let batch = edit("batch.safetensors", &|m, _| {
        m["batch"] = 1_000_000_000.into()
    });
    let eval = edit("eval.safetensors", &|m, _| m["last_eval_step"] = 99.into());
    let lr = edit("lr.safetensors", &|_, t| {
        t.insert("optim.0.lr".into(), Tensor::scalar(f64::INFINITY));
    });
    for (p, needle) in [
        (&batch, "batch 1000000000"),
        (&eval, "step 99"),
        (&lr, "learning rate"),
    ] {
        let mut a = args.to_vec();
        a.extend(["--resume", s(p)]);
        refused(&d, &a, &[p.file_name().unwrap().to_str().unwrap(), needle]);
    }
}

/// A 16-bit mono WAV of `samples` at 8 kHz.
fn wav(path: &Path, samples: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples {
        w.write_sample(((i as f32 * 0.3).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn bad_audio_is_refused_naming_the_file() {
    let base = tmp("bad-speech");
    let case = |name: &str, setup: &dyn Fn(&Path)| {
        let d = base.join(name);
        std::fs::create_dir_all(&d).unwrap();
        wav(&d.join("1_ann_0.wav"), 4000);
        wav(&d.join("2_ann_7.wav"), 4000);
        setup(&d);
        d
    };
    let train = |d: &Path, needles: &[&str]| {
        refused(
            d,
            &["speech", "train", "--data", s(d), "--epochs", "1"],
            needles,
        );
    };
    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    train(&empty, &["holds no .wav files"]);
    let d = case("name", &|d| wav(&d.join("seven.wav"), 100));
    train(&d, &["seven.wav", "{digit}_{speaker}_{take}.wav"]);
    let d = case("riff", &|d| {
        std::fs::write(d.join("3_ann_1.wav"), b"MThd not a wav at all").unwrap()
    });
    train(&d, &["3_ann_1.wav", "not a WAV file"]);
    let d = case("truncated", &|d| {
        let p = d.join("4_ann_1.wav");
        wav(&p, 4000);
        let b = std::fs::read(&p).unwrap();
        std::fs::write(&p, &b[..b.len() / 2 + 1]).unwrap();
    });
    train(&d, &["4_ann_1.wav"]);
    let d = case("silent", &|d| wav(&d.join("5_ann_1.wav"), 0));
    train(&d, &["5_ann_1.wav", "no samples"]);
    let d = case("long", &|d| wav(&d.join("6_ann_1.wav"), 8000 * 11));
    train(&d, &["6_ann_1.wav", "11.0 s long", "refused"]);
    let d = case("encoding", &|d| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Float,
        };
        // hound refuses to write 8-bit float; a header saying so is written by hand
        let _ = spec;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&44u32.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        // format 6: A-law
        b.extend_from_slice(&[6, 0, 1, 0]);
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 8, 0]);
        b.extend_from_slice(b"data");
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 8]);
        std::fs::write(d.join("8_ann_1.wav"), b).unwrap();
    });
    train(&d, &["8_ann_1.wav"]);
    let d = case("speaker", &|_| {});
    refused(
        &d,
        &["speech", "train", "--data", s(&d), "--split", "speaker:zed"],
        &["speaker:zed", "speakers: ann"],
    );
    refused(
        &d,
        &["speech", "train", "--data", s(&d), "--model", "transformer"],
        &["--model transformer"],
    );
    // weights that are not a speech model
    let not_speech = gpt_weights(&d, "gpt.safetensors", "{}");
    refused(
        &d,
        &[
            "speech",
            "eval",
            "--weights",
            s(&not_speech),
            "--data",
            s(&d),
        ],
        &["gpt.safetensors", "not a speech model"],
    );
    // absurd sizes are refused before anything is allocated
    refused(
        &d,
        &["speech", "train", "--data", s(&d), "--frames", "100000000"],
        &["--frames 100000000"],
    );
    refused(
        &d,
        &["speech", "train", "--data", s(&d), "--layers", "100000"],
        &["100000 layers", "memory"],
    );
    let missing = base.join("nowhere");
    refused(
        &base,
        &["speech", "train", "--data", s(&missing)],
        &["nowhere"],
    );
}

#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_mpi_says_how_to_build_it() {
    let d = tmp("bad-distributed");
    for cmd in [
        vec!["train", "--distributed"],
        vec!["gpt", "train", "--distributed"],
    ] {
        refused(&d, &cmd, &["--distributed", "--features mpi", "mpirun"]);
    }
}
