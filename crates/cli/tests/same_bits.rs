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

/// The AVX-512 kernels sum in the AVX2 kernels' order: on a CPU with AVX-512 the weights are
/// byte for byte those the AVX2 kernels give (`FERROGRAD_NO_AVX512=1`), for the MLP, LeNet-5
/// and the GPT (the speech LSTM: tests/speech.rs). On a CPU without AVX-512 both runs take the
/// AVX2 kernels and the test says so.
#[test]
fn avx512_and_avx2_kernels_write_the_same_weights() {
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    if !avx512 {
        eprintln!("no AVX-512 on this CPU: both runs use the AVX2 kernels");
    }
    let d = tmp("avx512-bits");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "mlp",
            vec![
                "train",
                "--model",
                "mlp",
                "--max-steps",
                "8",
                "--train-subset",
                "512",
                "--save",
            ],
        ),
        (
            "lenet",
            vec![
                "train",
                "--model",
                "lenet5",
                "--max-steps",
                "4",
                "--train-subset",
                "256",
                "--save",
            ],
        ),
        (
            "gpt",
            vec![
                "gpt",
                "train",
                "--max-iters",
                "4",
                "--eval-interval",
                "2",
                "--eval-iters",
                "1",
                "--dropout",
                "0.1",
                "--n-layer",
                "2",
                "--n-embd",
                "64",
                "--out",
            ],
        ),
    ];
    for (name, args) in runs {
        let files: Vec<Vec<u8>> = ["0", "1"]
            .iter()
            .map(|flag| {
                let w = d.join(format!("{name}-{flag}.safetensors"));
                let mut a = args.clone();
                a.push(w.to_str().unwrap());
                let o = common::bin()
                    .args(&a)
                    .env("FERROGRAD_NO_AVX512", flag)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{a:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::fs::read(&w).unwrap()
            })
            .collect();
        assert!(
            files[0] == files[1],
            "{name}: the AVX-512 and AVX2 runs wrote different weights"
        );
    }
}
