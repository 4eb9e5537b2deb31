//! PolynomialLR and SequentialLR against PyTorch's learning rates step by step
//! (`tests/fixtures/gen_torch_schedules.py` writes `torch_schedules.json`).

use ferrograd_nn::{LrScheduler, Optimizer, Schedule, Sgd};
use ferrograd_tensor::{DType, Tensor};

fn fixture() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/torch_schedules.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn lrs(s: Schedule, steps: usize) -> Vec<f64> {
    let p = Tensor::zeros([1], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let mut opt = Sgd::new(vec![p], 0.1, 0.0, 0.0).unwrap();
    let mut sch = LrScheduler::new(s, &mut opt).unwrap();
    (0..steps)
        .map(|_| {
            let lr = opt.lr();
            sch.step(&mut opt, None).unwrap();
            lr
        })
        .collect()
}

fn check(name: &str, s: Schedule) {
    let want: Vec<f64> = fixture()[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got = lrs(s, want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs() + 1e-15,
            "{name} step {i}: {g} vs PyTorch's {w}"
        );
    }
}

#[test]
fn polynomial_matches_pytorch() {
    check(
        "polynomial",
        Schedule::Polynomial {
            total_iters: 10,
            power: 2.0,
        },
    );
}

#[test]
fn sequential_compositions_match_pytorch() {
    check(
        "warmup_cosine",
        Schedule::Sequential {
            schedules: vec![
                Schedule::Linear {
                    start_factor: 1.0 / 6.0,
                    end_factor: 1.0,
                    total_iters: 5,
                },
                Schedule::Cosine {
                    t_max: 25,
                    eta_min: 1e-3,
                },
            ],
            milestones: vec![5],
        },
    );
    check(
        "warmup_polynomial",
        Schedule::Sequential {
            schedules: vec![
                Schedule::Linear {
                    start_factor: 0.25,
                    end_factor: 1.0,
                    total_iters: 4,
                },
                Schedule::Polynomial {
                    total_iters: 12,
                    power: 1.0,
                },
            ],
            milestones: vec![4],
        },
    );
    // a composition PyTorch would not accept is an error naming SequentialLR
    let p = Tensor::zeros([1], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let mut opt = Sgd::new(vec![p], 0.1, 0.0, 0.0).unwrap();
    let bad = Schedule::Sequential {
        schedules: vec![Schedule::Constant],
        milestones: vec![3],
    };
    let e = LrScheduler::new(bad, &mut opt).err().unwrap().to_string();
    assert!(e.contains("SequentialLR"), "{e}");
}
