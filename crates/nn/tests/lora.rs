//! LoRA adapters: start equal to the base layer, train only A and B, merge exactly, and have the
//! gradient of the low-rank product (finite differences, f64).

use ferrograd_nn::{named_parameters, trainable_parameters, Forward, Linear, LoraLinear};
use ferrograd_tensor::{gradcheck, no_grad, DType, GradcheckOptions, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Rng::new(seed)).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.sub(b)
        .unwrap()
        .abs()
        .unwrap()
        .max(&[0, 1], false)
        .unwrap()
        .item()
        .unwrap()
}

fn adapted(seed: u64) -> LoraLinear {
    let base = Linear::from_tensors(randn(&[5, 7], seed), Some(randn(&[5], seed + 1))).unwrap();
    let mut l = LoraLinear::new(base);
    l.attach(2, 4.0, &mut Rng::new(seed + 2)).unwrap();
    l
}

#[test]
fn a_new_adapter_changes_nothing_and_only_it_trains() {
    let base = Linear::from_tensors(randn(&[5, 7], 1), Some(randn(&[5], 2))).unwrap();
    let x = randn(&[3, 7], 3);
    let before = base.forward(&x).unwrap();
    let mut l = LoraLinear::new(base);
    l.attach(2, 4.0, &mut Rng::new(4)).unwrap();
    assert_eq!(max_abs_diff(&l.forward(&x).unwrap(), &before), 0.0);
    let names: Vec<String> = trainable_parameters(&l)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["lora_A.weight", "lora_B.weight"]);
    // all four are still listed (and saved) by name
    assert_eq!(named_parameters(&l).len(), 4);
    l.forward(&x)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(l.base.weight.grad().is_none() && l.base.bias.as_ref().unwrap().grad().is_none());
    let ad = l.adapter.as_ref().unwrap();
    // B = 0, so dA = s (dY B)^T X = 0 at the start; dB does not vanish
    assert!(
        ad.b.grad()
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .item()
            .unwrap()
            > 0.0
    );
}

#[test]
fn merge_folds_the_update_into_the_base_weight() {
    let mut l = adapted(10);
    // move B away from zero, as training would
    l.adapter
        .as_ref()
        .unwrap()
        .b
        .copy_from(&randn(&[5, 2], 20))
        .unwrap();
    let x = randn(&[4, 7], 21);
    let with_adapter = no_grad(|| l.forward(&x)).unwrap();
    l.merge().unwrap();
    assert!(l.adapter.is_none());
    let merged = l.forward(&x).unwrap();
    assert!(max_abs_diff(&with_adapter, &merged) < 1e-12);
    assert!(l.base.weight.requires_grad());
}

#[test]
fn lora_gradcheck() {
    let inputs = [randn(&[3, 7], 30), randn(&[2, 7], 31), randn(&[5, 2], 32)];
    let r = gradcheck(
        |x| {
            let mut l = adapted(40);
            let ad = l.adapter.as_mut().unwrap();
            ad.a = x[1].clone();
            ad.b = x[2].clone();
            l.forward(&x[0])
                .map_err(|e| ferrograd_tensor::Error::Value {
                    op: "lora",
                    msg: e.to_string(),
                })
        },
        &inputs,
        GradcheckOptions::default(),
    )
    .unwrap();
    assert_eq!(r.checked, 21 + 14 + 10);
}

#[test]
fn bad_settings_are_errors() {
    let mut l = LoraLinear::new(Linear::from_tensors(randn(&[5, 7], 1), None).unwrap());
    assert!(l.attach(0, 8.0, &mut Rng::new(0)).is_err());
    assert!(l.attach(6, 8.0, &mut Rng::new(0)).is_err());
    assert!(l.attach(2, -1.0, &mut Rng::new(0)).is_err());
    l.attach(2, 8.0, &mut Rng::new(0)).unwrap();
    assert!(
        l.attach(2, 8.0, &mut Rng::new(0)).is_err(),
        "second adapter"
    );
}
