//! Attention and LayerNorm backward against finite differences in f64 (their backward is the
//! composition of gradchecked ops; this checks the composition as the layers wire it).

use ferrograd_nn::{CausalSelfAttention, Forward, LayerNorm, Linear};
use ferrograd_tensor::{gradcheck, DType, GradcheckOptions, Rng, Tensor};

fn randn(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    Tensor::randn(shape, DType::F64, &mut Rng::new(seed))
        .unwrap()
        .mul_scalar(scale)
        .unwrap()
}

#[test]
fn causal_self_attention_gradcheck() {
    let (b, t, c, h) = (2, 4, 6, 2);
    let inputs = [
        randn(&[b, t, c], 1, 1.0),
        randn(&[3 * c, c], 2, 0.4),
        randn(&[3 * c], 3, 0.1),
        randn(&[c, c], 4, 0.4),
        randn(&[c], 5, 0.1),
    ];
    let r = gradcheck(
        |x| {
            let attn = CausalSelfAttention::from_linears(
                Linear::from_tensors(x[1].clone(), Some(x[2].clone())).unwrap(),
                Linear::from_tensors(x[3].clone(), Some(x[4].clone())).unwrap(),
                h,
            )
            .unwrap();
            attn.forward(&x[0])
                .map_err(|e| ferrograd_tensor::Error::Value {
                    op: "attn",
                    msg: e.to_string(),
                })
        },
        &inputs,
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(r.checked > 100);
}

#[test]
fn causal_mask_blocks_the_future() {
    // changing a later token must not change earlier outputs
    let c = 4;
    let attn = CausalSelfAttention::from_linears(
        Linear::from_tensors(randn(&[3 * c, c], 6, 0.5), None).unwrap(),
        Linear::from_tensors(randn(&[c, c], 7, 0.5), None).unwrap(),
        2,
    )
    .unwrap();
    let x = randn(&[1, 5, c], 8, 1.0);
    let mut v = x.to_vec_f64();
    for e in &mut v[4 * c..] {
        *e += 1.0;
    }
    let x2 = Tensor::from_vec(v, [1, 5, c]).unwrap();
    let (y, y2) = (
        attn.forward(&x).unwrap().to_vec_f64(),
        attn.forward(&x2).unwrap().to_vec_f64(),
    );
    assert_eq!(&y[..4 * c], &y2[..4 * c]);
    assert_ne!(&y[4 * c..], &y2[4 * c..]);
}

#[test]
fn layernorm_gradcheck() {
    let inputs = [
        randn(&[3, 2, 5], 9, 2.0),
        randn(&[5], 10, 1.0),
        randn(&[5], 11, 1.0),
    ];
    gradcheck(
        |x| {
            let ln = LayerNorm::from_tensors(x[1].clone(), x[2].clone(), 1e-5).unwrap();
            ln.forward(&x[0])
                .map_err(|e| ferrograd_tensor::Error::Value {
                    op: "ln",
                    msg: e.to_string(),
                })
        },
        &inputs,
        GradcheckOptions::default(),
    )
    .unwrap();
}

/// Central differences on every element of every parameter of `m` and of the `inputs`, against
/// the gradients backward gives for `loss(m, inputs)` (all in f64).
fn check_module_by_differences(
    m: &dyn ferrograd_nn::Module,
    inputs: &[Tensor],
    loss: &dyn Fn(&[Tensor]) -> Tensor,
) -> usize {
    let mut leaves: Vec<(String, Tensor)> = ferrograd_nn::named_parameters(m);
    for (i, t) in inputs.iter().enumerate() {
        leaves.push((format!("input {i}"), t.clone()));
    }
    // inputs shared between checks carry the previous check's gradients
    for (_, t) in &leaves {
        t.set_grad(None).unwrap();
    }
    loss(inputs).backward().unwrap();
    let eps = 1e-6;
    let mut checked = 0;
    for (name, p) in &leaves {
        let analytic = p
            .grad()
            .map(|g| g.to_vec_f64())
            .unwrap_or(vec![0.0; p.numel()]);
        for k in 0..p.numel() {
            let at = |delta: f64| {
                p.update_data::<f64>(|v| v[k] += delta).unwrap();
                let v = ferrograd_tensor::no_grad(|| loss(inputs).item().unwrap());
                p.update_data::<f64>(|v| v[k] -= delta).unwrap();
                v
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            let a = analytic[k];
            assert!(
                (a - numeric).abs() <= 1e-7 + 1e-5 * numeric.abs(),
                "{name}[{k}]: backward {a} vs differences {numeric}"
            );
            checked += 1;
        }
    }
    checked
}

fn weighted_sum(t: &Tensor, seed: u64) -> Tensor {
    t.mul(&randn(t.dims(), seed, 1.0))
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn two_layer_bidirectional_stacks_pass_gradcheck_with_lengths_and_a_given_state() {
    use ferrograd_nn::{Nonlinearity, RnnOptions, RnnState, GRU, LSTM, RNN};
    let opt = RnnOptions {
        num_layers: 2,
        bidirectional: true,
        ..RnnOptions::default()
    };
    let (t, b, i, h) = (4, 3, 3, 3);
    let lengths = [4usize, 2, 3];
    let leaf = |shape: &[usize], seed| randn(shape, seed, 0.7).requires_grad_(true).unwrap();
    let mut rng = Rng::new(3);
    let lstm = LSTM::new(i, h, opt, &mut rng)
        .unwrap()
        .with_dtype(DType::F64)
        .unwrap();
    let gru = GRU::new(i, h, opt, &mut rng)
        .unwrap()
        .with_dtype(DType::F64)
        .unwrap();
    let rnn = RNN::new(i, h, Nonlinearity::Tanh, opt, &mut rng)
        .unwrap()
        .with_dtype(DType::F64)
        .unwrap();
    let loss = |out: ferrograd_nn::RnnOutput| {
        let mut l = weighted_sum(&out.output, 20)
            .add(&weighted_sum(&out.state.h, 21))
            .unwrap();
        if let Some(c) = &out.state.c {
            l = l.add(&weighted_sum(c, 22)).unwrap();
        }
        l
    };
    let x = || {
        vec![
            leaf(&[t, b, i], 10),
            leaf(&[4, b, h], 11),
            leaf(&[4, b, h], 12),
        ]
    };
    let n = check_module_by_differences(&lstm, &x(), &|x| {
        let s = RnnState {
            h: x[1].clone(),
            c: Some(x[2].clone()),
        };
        loss(lstm.forward_with(&x[0], Some(&s), Some(&lengths)).unwrap())
    });
    assert!(n > 500, "{n}");
    let xs = x();
    check_module_by_differences(&gru, &xs[..2], &|x| {
        let s = RnnState {
            h: x[1].clone(),
            c: None,
        };
        loss(gru.forward_with(&x[0], Some(&s), Some(&lengths)).unwrap())
    });
    check_module_by_differences(&rnn, &xs[..2], &|x| {
        let s = RnnState {
            h: x[1].clone(),
            c: None,
        };
        loss(rnn.forward_with(&x[0], Some(&s), Some(&lengths)).unwrap())
    });
}

#[test]
fn every_cell_passes_gradcheck() {
    use ferrograd_nn::{GRUCell, LSTMCell, Nonlinearity, RNNCell, RnnState};
    let mut rng = Rng::new(4);
    let leaf = |shape: &[usize], seed| randn(shape, seed, 0.7).requires_grad_(true).unwrap();
    let (b, i, h) = (2, 3, 4);
    let x = vec![leaf(&[b, i], 1), leaf(&[b, h], 2), leaf(&[b, h], 3)];
    let sum = |s: RnnState| {
        let l = weighted_sum(&s.h, 5);
        match &s.c {
            Some(c) => l.add(&weighted_sum(c, 6)).unwrap(),
            None => l,
        }
    };
    let lstm = LSTMCell::new(i, h, true, &mut rng)
        .unwrap()
        .with_dtype(DType::F64)
        .unwrap();
    check_module_by_differences(&lstm, &x, &|x| {
        sum(lstm
            .step(
                &x[0],
                Some(&RnnState {
                    h: x[1].clone(),
                    c: Some(x[2].clone()),
                }),
            )
            .unwrap())
    });
    let gru = GRUCell::new(i, h, true, &mut rng)
        .unwrap()
        .with_dtype(DType::F64)
        .unwrap();
    check_module_by_differences(&gru, &x[..2], &|x| {
        sum(gru
            .step(
                &x[0],
                Some(&RnnState {
                    h: x[1].clone(),
                    c: None,
                }),
            )
            .unwrap())
    });
    for nl in [Nonlinearity::Tanh, Nonlinearity::Relu] {
        let rnn = RNNCell::new(i, h, false, nl, &mut rng)
            .unwrap()
            .with_dtype(DType::F64)
            .unwrap();
        check_module_by_differences(&rnn, &x[..2], &|x| {
            sum(rnn
                .step(
                    &x[0],
                    Some(&RnnState {
                        h: x[1].clone(),
                        c: None,
                    }),
                )
                .unwrap())
        });
    }
}
