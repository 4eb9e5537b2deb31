//! The command's promise: the same `--seed` writes byte-identical weights files whatever
//! `--threads` is (the safetensors metadata is written in sorted order, the kernels are
//! thread-count independent), for the MNIST models and the GPT with dropout.

mod common;
use common::{ok, tmp};

fn weights_for_threads(args: &[&str], out_flag: &str, name: &str) -> Vec<Vec<u8>> {
    let d = tmp(name);
    [1, 2, 3]
        .iter()
        .map(|t| {
            let w = d.join(format!("w{t}.safetensors"));
            let threads = t.to_string();
            let mut a = args.to_vec();
            a.extend(["--threads", &threads, out_flag, w.to_str().unwrap()]);
            ok(&a);
            std::fs::read(&w).unwrap()
        })
        .collect()
}

#[test]
fn weights_files_are_byte_identical_for_any_thread_count() {
    let runs = [
        (
            vec![
                "train",
                "--model",
                "mlp",
                "--max-steps",
                "8",
                "--train-subset",
                "512",
            ],
            "--save",
            "same-mlp",
        ),
        (
            vec![
                "train",
                "--model",
                "lenet5",
                "--max-steps",
                "4",
                "--train-subset",
                "256",
            ],
            "--save",
            "same-lenet",
        ),
        (
            vec![
                "gpt",
                "train",
                "--max-iters",
                "4",
                "--eval-interval",
                "2",
                "--eval-iters",
                "2",
                "--dropout",
                "0.1",
                "--n-layer",
                "2",
                "--n-embd",
                "64",
            ],
            "--out",
            "same-gpt",
        ),
    ];
    for (args, flag, name) in runs {
        let files = weights_for_threads(&args, flag, name);
        for (i, f) in files.iter().enumerate().skip(1) {
            assert!(
                f == &files[0],
                "{args:?}: --threads {} differs from --threads 1",
                i + 1
            );
        }
    }
}
