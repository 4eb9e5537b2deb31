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
