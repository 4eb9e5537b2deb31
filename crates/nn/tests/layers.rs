//! Layer behaviour that needs no PyTorch fixture: initialisation statistics, names, modes,
//! dropout, embedding, gradient clipping, parameter counts.

use ferrograd_nn::clip::{clip_grad_norm, clip_grad_value};
use ferrograd_nn::init;
use ferrograd_nn::module::join;
use ferrograd_nn::{
    named_parameters, num_parameters, Dropout, Embedding, Flatten, Forward, Linear, Module, ReLU,
    Sequential,
};
use ferrograd_tensor::{DType, Rng, Tensor};

fn stats(t: &Tensor) -> (f64, f64, f64) {
    let v = t.to_vec_f64();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    (mean, std, v.iter().fold(0.0f64, |m, x| m.max(x.abs())))
}

#[test]
fn initialisations_have_pytorchs_distributions() {
    let mut rng = Rng::new(0);
    let l = Linear::new(400, 300, &mut rng).unwrap();
    let bound = 1.0 / 400f64.sqrt();
    let (m, s, max) = stats(&l.weight);
    assert!(
        max <= bound && max > 0.99 * bound,
        "weight bound {max} vs {bound}"
    );
    assert!(
        m.abs() < 0.002 && (s - bound / 3f64.sqrt()).abs() < 0.002,
        "mean {m} std {s}"
    );
    let (_, _, bmax) = stats(l.bias.as_ref().unwrap());
    assert!(bmax <= bound);
    let shape = [256, 128, 3, 3];
    let (fan_in, fan_out) = init::fans(&shape).unwrap();
    assert_eq!((fan_in, fan_out), (128 * 9, 256 * 9));
    let (_, s, _) = stats(&init::kaiming_normal(&shape, 0.0, &mut rng).unwrap());
    assert!((s - (2.0 / fan_in as f64).sqrt()).abs() < 0.001, "{s}");
    let (_, s, max) = stats(&init::xavier_uniform(&shape, 1.0, &mut rng).unwrap());
    let xb = (6.0 / (fan_in + fan_out) as f64).sqrt();
    assert!(max <= xb && (s - xb / 3f64.sqrt()).abs() < 0.001);
    let (_, s, _) = stats(&init::xavier_normal(&shape, 2.0, &mut rng).unwrap());
    assert!((s - 2.0 * (2.0 / (fan_in + fan_out) as f64).sqrt()).abs() < 0.001);
    let (_, s, max) = stats(&init::kaiming_uniform(&shape, 0.0, &mut rng).unwrap());
    let kb = (6.0 / fan_in as f64).sqrt();
    assert!(max <= kb && (s - kb / 3f64.sqrt()).abs() < 0.001);
    assert!(init::fans(&[3]).is_err());
    // same seed, same weights
    let a = Linear::new(10, 5, &mut Rng::new(3))
        .unwrap()
        .weight
        .to_vec_f64();
    let b = Linear::new(10, 5, &mut Rng::new(3))
        .unwrap()
        .weight
        .to_vec_f64();
    assert_eq!(a, b);
}

#[test]
fn sequential_names_modes_and_counts() {
    let mut rng = Rng::new(1);
    let mut net = Sequential::new()
        .push(Flatten::default())
        .push(Linear::new(4, 3, &mut rng).unwrap())
        .push(ReLU::default())
        .push(Dropout::new(0.5, 0).unwrap())
        .push(Linear::new(3, 2, &mut rng).unwrap());
    let mut names = Vec::new();
    net.visit_parameters(&join("", "layers"), &mut |n, _| names.push(n.to_string()));
    assert_eq!(
        names,
        [
            "layers.1.weight",
            "layers.1.bias",
            "layers.4.weight",
            "layers.4.bias"
        ]
    );
    assert_eq!(num_parameters(&net), 4 * 3 + 3 + 3 * 2 + 2);
    assert_eq!(named_parameters(&net)[0].0, "1.weight");
    assert!(net.is_training());
    net.eval();
    assert!(!net.is_training());
    let x = Tensor::ones([2, 1, 2, 2], DType::F32).unwrap();
    // in eval mode dropout is the identity, so two passes agree
    assert_eq!(
        net.forward(&x).unwrap().to_vec_f64(),
        net.forward(&x).unwrap().to_vec_f64()
    );
    net.train();
    let mut rng = Rng::new(0);
    let mlp = ferrograd_models::build(ferrograd_models::ModelKind::Mlp, 10, &mut rng).unwrap();
    assert_eq!(num_parameters(mlp.as_ref()), 397_510);
    let lenet = ferrograd_models::build(ferrograd_models::ModelKind::LeNet5, 10, &mut rng).unwrap();
    assert_eq!(num_parameters(lenet.as_ref()), 61_706);
}

#[test]
fn dropout_zeroes_p_and_scales_the_rest() {
    let mut d = Dropout::new(0.3, 7).unwrap();
    let x = Tensor::ones([100_000], DType::F32).unwrap();
    let y = d.forward(&x).unwrap().to_vec_f64();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.3).abs() < 0.01, "{zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    // the generator state can be saved and restored
    let s = d.rng_state();
    let a = d.forward(&x).unwrap().to_vec_f64();
    d.set_rng_state(s);
    assert_eq!(a, d.forward(&x).unwrap().to_vec_f64());
    d.eval();
    assert_eq!(d.forward(&x).unwrap().to_vec_f64(), x.to_vec_f64());
    assert!(Dropout::new(1.5, 0).is_err());
}

#[test]
fn embedding_looks_up_rows() {
    let e = Embedding::new(5, 3, &mut Rng::new(2)).unwrap();
    let ids = Tensor::from_vec(vec![4i64, 0, 4], [3]).unwrap();
    let y = e.forward(&ids).unwrap();
    assert_eq!(y.dims(), &[3, 3]);
    let w = e.weight.to_vec_f64();
    assert_eq!(&y.to_vec_f64()[..3], &w[12..15]);
    y.sum_all().unwrap().backward().unwrap();
    let g = e.weight.grad().unwrap().to_vec_f64();
    assert_eq!(&g[12..15], &[2.0, 2.0, 2.0]);
    assert_eq!(&g[3..6], &[0.0, 0.0, 0.0]);
}

#[test]
fn gradient_clipping() {
    let a = Tensor::zeros([2], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let b = Tensor::zeros([1], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    a.set_grad(Some(Tensor::from_vec(vec![3.0, 0.0], [2]).unwrap()))
        .unwrap();
    b.set_grad(Some(Tensor::from_vec(vec![4.0], [1]).unwrap()))
        .unwrap();
    let norm = clip_grad_norm(&[a.clone(), b.clone()], 1.0).unwrap();
    assert_eq!(norm, 5.0);
    let ga = a.grad().unwrap().to_vec_f64();
    assert!((ga[0] - 3.0 / (5.0 + 1e-6)).abs() < 1e-12);
    // below the limit nothing changes
    assert!((clip_grad_norm(&[a.clone(), b.clone()], 10.0).unwrap() - 1.0).abs() < 1e-5);
    assert_eq!(a.grad().unwrap().to_vec_f64(), ga);
    b.set_grad(Some(Tensor::from_vec(vec![f64::NAN], [1]).unwrap()))
        .unwrap();
    assert!(clip_grad_norm(std::slice::from_ref(&b), 1.0)
        .unwrap_err()
        .to_string()
        .contains("NaN"));
    a.set_grad(Some(Tensor::from_vec(vec![3.0, -0.2], [2]).unwrap()))
        .unwrap();
    clip_grad_value(std::slice::from_ref(&a), 0.5).unwrap();
    assert_eq!(a.grad().unwrap().to_vec_f64(), vec![0.5, -0.2]);
}
