//! Every differentiable op's backward against central finite differences in f64, including
//! broadcast shapes, non-contiguous inputs, repeated inputs, and conv/pool options.

mod common;
use common::{leaf, randn};
use ferrograd_tensor::{
    gradcheck, Conv1dOptions, Conv2dOptions, DType, GradcheckOptions, Pool2dOptions, Result, Tensor,
};

fn check(name: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    let r =
        gradcheck(f, inputs, GradcheckOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(r.checked > 0, "{name}: nothing checked");
}

fn unary(name: &str, f: impl Fn(&Tensor) -> Result<Tensor>, lo: f64, hi: f64) {
    check(name, |x| f(&x[0]), &[leaf(&[3, 4], lo, hi, 1)]);
    // non-contiguous input: transposed and sliced views of a leaf
    check(
        &format!("{name} (transposed)"),
        |x| f(&x[0].transpose(0, 1)?),
        &[leaf(&[4, 3], lo, hi, 2)],
    );
    check(
        &format!("{name} (narrowed)"),
        |x| f(&x[0].narrow(1, 1, 3)?),
        &[leaf(&[3, 5], lo, hi, 3)],
    );
}

#[test]
fn elementwise_unary() {
    unary("neg", |x| x.neg(), -2.0, 2.0);
    unary("abs", |x| x.abs(), 0.1, 2.0);
    unary("abs negative", |x| x.abs(), -2.0, -0.1);
    unary("exp", |x| x.exp(), -2.0, 2.0);
    unary("log", |x| x.log(), 0.2, 3.0);
    unary("sqrt", |x| x.sqrt(), 0.2, 3.0);
    unary("rsqrt", |x| x.rsqrt(), 0.2, 3.0);
    unary("recip", |x| x.recip(), 0.2, 3.0);
    unary("powf", |x| x.powf(2.5), 0.2, 3.0);
    unary("powf negative exponent", |x| x.powf(-1.5), 0.2, 3.0);
    unary("square", |x| x.square(), -2.0, 2.0);
    unary("relu", |x| x.relu(), 0.05, 2.0);
    unary("relu negative", |x| x.relu(), -2.0, -0.05);
    unary("leaky_relu", |x| x.leaky_relu(0.1), -2.0, -0.05);
    unary("sigmoid", |x| x.sigmoid(), -4.0, 4.0);
    unary("tanh", |x| x.tanh(), -2.0, 2.0);
    unary("gelu", |x| x.gelu(), -3.0, 3.0);
    unary("gelu_tanh", |x| x.gelu_tanh(), -3.0, 3.0);
    unary("silu", |x| x.silu(), -3.0, 3.0);
    unary("softplus", |x| x.softplus(1.0, 20.0), -3.0, 3.0);
    unary("softplus beta", |x| x.softplus(2.0, 20.0), -3.0, 3.0);
    unary("clamp", |x| x.clamp(Some(-0.5), Some(0.5)), -1.0, 1.0);
    unary("add_scalar", |x| x.add_scalar(1.5), -1.0, 1.0);
    unary("rsub_scalar", |x| x.rsub_scalar(1.5), -1.0, 1.0);
    unary("mul_scalar", |x| x.mul_scalar(-2.5), -1.0, 1.0);
    unary("div_scalar", |x| x.div_scalar(4.0), -1.0, 1.0);
}

#[test]
fn relu_mixed_signs_away_from_kink() {
    // values at least 0.05 from zero, both signs
    let x = Tensor::from_vec(vec![-1.0f64, -0.3, 0.2, 0.9, -0.05, 0.6], [2, 3]).unwrap();
    check("relu mixed", |x| x[0].relu(), std::slice::from_ref(&x));
    check(
        "leaky mixed",
        |x| x[0].leaky_relu(0.2),
        std::slice::from_ref(&x),
    );
    check("clamp mixed", |x| x[0].clamp(Some(-0.4), None), &[x]);
}

fn binary(name: &str, f: impl Fn(&Tensor, &Tensor) -> Result<Tensor> + Copy, lo: f64, hi: f64) {
    // same shapes
    check(
        name,
        |x| f(&x[0], &x[1]),
        &[leaf(&[2, 3], lo, hi, 4), leaf(&[2, 3], lo, hi, 5)],
    );
    // broadcasting both ways: [2,1,4] with [3,1]
    check(
        &format!("{name} (broadcast)"),
        |x| f(&x[0], &x[1]),
        &[leaf(&[2, 1, 4], lo, hi, 6), leaf(&[3, 1], lo, hi, 7)],
    );
    // scalar-shaped operand
    check(
        &format!("{name} (scalar operand)"),
        |x| f(&x[0], &x[1]),
        &[leaf(&[3, 2], lo, hi, 8), leaf(&[], lo, hi, 9)],
    );
    // non-contiguous operands
    check(
        &format!("{name} (transposed)"),
        |x| f(&x[0].transpose(0, 1)?, &x[1]),
        &[leaf(&[3, 2], lo, hi, 10), leaf(&[2, 3], lo, hi, 11)],
    );
}

#[test]
fn elementwise_binary() {
    binary("add", |a, b| a.add(b), -2.0, 2.0);
    binary("sub", |a, b| a.sub(b), -2.0, 2.0);
    binary("mul", |a, b| a.mul(b), -2.0, 2.0);
    binary("div", |a, b| a.div(b), 0.5, 2.0);
    // maximum/minimum: operands from disjoint-ish draws, ties have measure zero
    binary("maximum", |a, b| a.maximum(b), -2.0, 2.0);
    binary("minimum", |a, b| a.minimum(b), -2.0, 2.0);
}

#[test]
fn repeated_input_sums_gradients() {
    check(
        "x * x",
        |x| x[0].mul(&x[0]),
        &[leaf(&[3, 3], -2.0, 2.0, 12)],
    );
    check(
        "x * x + x / 2",
        |x| x[0].mul(&x[0])?.add(&x[0].div_scalar(2.0)?),
        &[leaf(&[4], -2.0, 2.0, 13)],
    );
    check(
        "x @ x^T",
        |x| x[0].matmul(&x[0].t()?),
        &[leaf(&[3, 4], -1.0, 1.0, 14)],
    );
}

#[test]
fn where_selects_gradients() {
    let c = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 0.0, 0.0, 1.0], [2, 3]).unwrap();
    check(
        "where",
        move |x| Tensor::where_(&c, &x[0], &x[1]),
        &[leaf(&[2, 3], -1.0, 1.0, 15), leaf(&[3], -1.0, 1.0, 16)],
    );
}

#[test]
fn reductions() {
    let x = || vec![randn(&[2, 3, 4], 17)];
    check("sum all", |x| x[0].sum_all(), &x());
    check("sum dim", |x| x[0].sum(&[1], false), &x());
    check("sum dims keepdim", |x| x[0].sum(&[0, 2], true), &x());
    check("mean all", |x| x[0].mean_all(), &x());
    check("mean dim -1", |x| x[0].mean(&[-1], false), &x());
    check("max dim", |x| x[0].max(&[1], false), &x());
    check("max dims", |x| x[0].max(&[0, 2], true), &x());
    check("min all", |x| x[0].min(&[], false), &x());
    check("var", |x| x[0].var(&[2], 1, false), &x());
    check("var biased", |x| x[0].var(&[0, 1], 0, true), &x());
    check("std", |x| x[0].std(&[1], 1, true), &x());
    check("logsumexp", |x| x[0].logsumexp(&[2], false), &x());
    check("logsumexp keep", |x| x[0].logsumexp(&[0, 1], true), &x());
    check(
        "sum of transposed",
        |x| x[0].transpose(0, 2)?.sum(&[1], false),
        &x(),
    );
}

#[test]
fn softmax_family() {
    let x = || vec![randn(&[3, 5], 18)];
    check("softmax -1", |x| x[0].softmax(-1), &x());
    check("softmax 0", |x| x[0].softmax(0), &x());
    check("log_softmax -1", |x| x[0].log_softmax(-1), &x());
    check("log_softmax 0", |x| x[0].log_softmax(0), &x());
    check("softmax of transposed", |x| x[0].t()?.softmax(1), &x());
    check(
        "softmax 3d mid dim",
        |x| x[0].softmax(1),
        &[randn(&[2, 3, 4], 19)],
    );
}

#[test]
fn matmul_shapes() {
    check(
        "mm",
        |x| x[0].matmul(&x[1]),
        &[randn(&[3, 4], 20), randn(&[4, 2], 21)],
    );
    check(
        "dot",
        |x| x[0].matmul(&x[1]),
        &[randn(&[4], 22), randn(&[4], 23)],
    );
    check(
        "vec @ mat",
        |x| x[0].matmul(&x[1]),
        &[randn(&[4], 24), randn(&[4, 3], 25)],
    );
    check(
        "mat @ vec",
        |x| x[0].matmul(&x[1]),
        &[randn(&[3, 4], 26), randn(&[4], 27)],
    );
    check(
        "bmm",
        |x| x[0].matmul(&x[1]),
        &[randn(&[2, 3, 4], 28), randn(&[2, 4, 5], 29)],
    );
    check(
        "broadcast batch",
        |x| x[0].matmul(&x[1]),
        &[randn(&[2, 1, 3, 4], 30), randn(&[3, 4, 2], 31)],
    );
    check(
        "batched @ matrix",
        |x| x[0].matmul(&x[1]),
        &[randn(&[2, 3, 4], 32), randn(&[4, 2], 33)],
    );
    check(
        "transposed operands",
        |x| x[0].t()?.matmul(&x[1].t()?),
        &[randn(&[4, 3], 34), randn(&[2, 4], 35)],
    );
}

#[test]
fn linear_fused() {
    check(
        "linear",
        |x| x[0].linear(&x[1], Some(&x[2])),
        &[randn(&[4, 3], 100), randn(&[5, 3], 101), randn(&[5], 102)],
    );
    check(
        "linear 3-d input, no bias",
        |x| x[0].linear(&x[1], None),
        &[randn(&[2, 4, 3], 103), randn(&[5, 3], 104)],
    );
    check(
        "linear transposed input and weight views",
        |x| x[0].t()?.linear(&x[1].t()?, Some(&x[2])),
        &[randn(&[3, 4], 105), randn(&[3, 5], 106), randn(&[5], 107)],
    );
    // agrees with the unfused composition
    let (x, w, b) = (randn(&[6, 3], 108), randn(&[4, 3], 109), randn(&[4], 110));
    let fused = x.linear(&w, Some(&b)).unwrap().to_vec_f64();
    let plain = x
        .matmul(&w.t().unwrap())
        .unwrap()
        .add(&b)
        .unwrap()
        .to_vec_f64();
    common::assert_close(&fused, &plain, 1e-14, 1e-14, "linear vs matmul + add");
}

#[test]
fn movement() {
    let x = || vec![randn(&[2, 3, 4], 36)];
    check("reshape", |x| x[0].reshape([6, 4]), &x());
    check(
        "reshape of transposed (copy)",
        |x| x[0].transpose(0, 2)?.reshape([4, 6]),
        &x(),
    );
    check("permute", |x| x[0].permute(&[2, 0, 1]), &x());
    check("narrow", |x| x[0].narrow(2, 1, 2), &x());
    check(
        "broadcast_to",
        |x| x[0].narrow(1, 0, 1)?.broadcast_to([5, 2, 3, 4]),
        &x(),
    );
    check(
        "unsqueeze/squeeze",
        |x| x[0].unsqueeze(1)?.squeeze(1)?.unsqueeze(-1),
        &x(),
    );
    check("flatten", |x| x[0].flatten(1, 2), &x());
    check("contiguous", |x| x[0].transpose(0, 1)?.contiguous(), &x());
    check(
        "cat",
        |x| Tensor::cat(&[&x[0], &x[1]], 1),
        &[randn(&[2, 3], 37), randn(&[2, 2], 38)],
    );
    check(
        "stack",
        |x| Tensor::stack(&[&x[0], &x[1], &x[0]], 0),
        &[randn(&[2, 3], 39), randn(&[2, 3], 40)],
    );
    check(
        "split",
        |x| {
            let p = x[0].split(2, 1)?;
            p[0].sum_all()?
                .mul(&p[1].sum_all()?)?
                .add(&p[2].square()?.sum_all()?)
        },
        &[randn(&[2, 5], 41)],
    );
    check(
        "chunk",
        |x| {
            let p = x[0].chunk(2, 0)?;
            p[0].mul(&p[1])
        },
        &[randn(&[4, 3], 42)],
    );
    check(
        "pad",
        |x| x[0].pad(&[(1, 0), (2, 1)], 0.5),
        &[randn(&[2, 3], 43)],
    );
}

#[test]
fn dtype_conversion_passes_gradient_through() {
    // through f32 the function is only accurate to ~1e-7, so use a wide step and tolerance
    let opt = GradcheckOptions {
        eps: 1e-2,
        atol: 1e-4,
        rtol: 1e-4,
    };
    gradcheck(
        |x| {
            x[0].to_dtype(ferrograd_tensor::DType::F32)?
                .mul_scalar(3.0)?
                .to_dtype(ferrograd_tensor::DType::F64)
        },
        &[randn(&[3], 44)],
        opt,
    )
    .unwrap();
}

#[test]
fn indexing() {
    let idx = Tensor::from_vec(vec![2i64, 0, 2, 1], [4]).unwrap();
    check(
        "index_select 0",
        |x| x[0].index_select(0, &idx),
        &[randn(&[3, 2], 45)],
    );
    check(
        "index_select 1",
        |x| x[0].index_select(1, &idx),
        &[randn(&[2, 3], 46)],
    );
    let gi = Tensor::from_vec(vec![0i64, 2, 1, 1, 0, 0], [2, 3]).unwrap();
    check("gather", |x| x[0].gather(1, &gi), &[randn(&[2, 4], 47)]);
    check(
        "gather dim 0",
        |x| x[0].gather(0, &gi),
        &[randn(&[3, 3], 48)],
    );
    check(
        "scatter_add",
        |x| x[0].scatter_add(1, &gi, &x[1]),
        &[randn(&[2, 4], 49), randn(&[2, 3], 50)],
    );
    let ids = Tensor::from_vec(vec![1i64, 3, 3, 0, 2, 1], [2, 3]).unwrap();
    check(
        "embedding",
        |x| Tensor::embedding(&x[0], &ids),
        &[randn(&[4, 5], 51)],
    );
}

#[test]
fn convolutions() {
    let cases = [
        (
            "conv2d plain",
            [2, 3, 6, 5],
            [4, 3, 3, 3],
            Conv2dOptions::default(),
        ),
        (
            "conv2d stride+pad",
            [1, 2, 7, 6],
            [3, 2, 3, 2],
            Conv2dOptions {
                stride: (2, 1),
                padding: (1, 2),
                ..Default::default()
            },
        ),
        (
            "conv2d dilation",
            [1, 2, 7, 7],
            [2, 2, 3, 3],
            Conv2dOptions {
                dilation: (2, 1),
                padding: (1, 1),
                ..Default::default()
            },
        ),
        (
            "conv2d groups",
            [2, 4, 5, 5],
            [6, 2, 3, 3],
            Conv2dOptions {
                groups: 2,
                stride: (2, 2),
                padding: (1, 1),
                ..Default::default()
            },
        ),
        (
            "conv2d depthwise",
            [1, 3, 5, 4],
            [3, 1, 2, 2],
            Conv2dOptions {
                groups: 3,
                ..Default::default()
            },
        ),
    ];
    for (i, (name, xs, ws, opt)) in cases.into_iter().enumerate() {
        let o = ws[0];
        let seed = 60 + 3 * i as u64;
        check(
            name,
            move |x| x[0].conv2d(&x[1], Some(&x[2]), opt),
            &[
                randn(&xs, seed),
                randn(&ws, seed + 1),
                randn(&[o], seed + 2),
            ],
        );
    }
    check(
        "conv2d no bias, transposed input",
        |x| {
            x[0].transpose(2, 3)?
                .conv2d(&x[1], None, Conv2dOptions::default())
        },
        &[randn(&[1, 2, 5, 4], 80), randn(&[2, 2, 2, 2], 81)],
    );
    check(
        "conv1d",
        |x| {
            x[0].conv1d(
                &x[1],
                Some(&x[2]),
                Conv1dOptions {
                    stride: 2,
                    padding: 1,
                    dilation: 2,
                    groups: 1,
                },
            )
        },
        &[
            randn(&[2, 2, 9], 82),
            randn(&[3, 2, 3], 83),
            randn(&[3], 84),
        ],
    );
}

#[test]
fn pooling() {
    // distinct values so each window has a unique maximum
    let x = || {
        let mut v: Vec<f64> = (0..2 * 2 * 6 * 5)
            .map(|i| ((i * 37) % 113) as f64 / 10.0)
            .collect();
        v.reverse();
        vec![Tensor::from_vec(v, [2, 2, 6, 5]).unwrap()]
    };
    check(
        "max_pool2d",
        |x| x[0].max_pool2d(Pool2dOptions::new(2)),
        &x(),
    );
    check(
        "max_pool2d stride+pad",
        |x| {
            x[0].max_pool2d(Pool2dOptions {
                kernel: (3, 2),
                stride: (2, 1),
                padding: (1, 1),
            })
        },
        &x(),
    );
    check(
        "avg_pool2d",
        |x| x[0].avg_pool2d(Pool2dOptions::new(2)),
        &x(),
    );
    check(
        "avg_pool2d stride+pad",
        |x| {
            x[0].avg_pool2d(Pool2dOptions {
                kernel: (3, 3),
                stride: (2, 2),
                padding: (1, 1),
            })
        },
        &x(),
    );
    check(
        "adaptive_avg_pool2d",
        |x| x[0].adaptive_avg_pool2d((4, 3)),
        &x(),
    );
    check(
        "adaptive_avg_pool2d 1x1",
        |x| x[0].adaptive_avg_pool2d((1, 1)),
        &x(),
    );
}

#[test]
fn dropout_gradient_is_the_mask() {
    check(
        "dropout",
        |x| {
            let mut rng = ferrograd_tensor::Rng::new(5);
            x[0].dropout(0.3, true, &mut rng)
        },
        &[randn(&[4, 5], 90)],
    );
}

#[test]
fn composite_network() {
    // a small MLP with a softmax cross-entropy head, all ops together
    let target = Tensor::from_vec(vec![1i64, 0, 2], [3, 1]).unwrap();
    check(
        "mlp + cross-entropy",
        |x| {
            let h = x[0].matmul(&x[1].t()?)?.add(&x[2])?.tanh()?;
            let logits = h.matmul(&x[3].t()?)?;
            logits.log_softmax(1)?.gather(1, &target)?.neg()?.mean_all()
        },
        &[
            randn(&[3, 4], 91),
            randn(&[5, 4], 92),
            randn(&[5], 93),
            randn(&[3, 5], 94),
        ],
    );
}

#[test]
fn fused_layer_norm() {
    // affine, over the last dim and over the last two dims, with a transposed input, and
    // without affine parameters; 40 rows so the threaded path is not the only one checked
    check(
        "layer_norm affine",
        |x| x[0].layer_norm(5, Some(&x[1]), Some(&x[2]), 1e-5),
        &[
            leaf(&[3, 4, 5], -2.0, 2.0, 70),
            leaf(&[5], 0.5, 1.5, 71),
            leaf(&[5], -1.0, 1.0, 72),
        ],
    );
    check(
        "layer_norm over two dims",
        |x| x[0].layer_norm(12, Some(&x[1]), Some(&x[2]), 1e-5),
        &[
            leaf(&[2, 3, 4], -2.0, 2.0, 73),
            leaf(&[3, 4], 0.5, 1.5, 74),
            leaf(&[3, 4], -1.0, 1.0, 75),
        ],
    );
    check(
        "layer_norm transposed, no affine",
        |x| x[0].transpose(0, 1)?.layer_norm(3, None, None, 1e-5),
        &[leaf(&[3, 4], -2.0, 2.0, 76)],
    );
    check(
        "layer_norm weight only",
        |x| x[0].layer_norm(6, Some(&x[1]), None, 1e-3),
        &[leaf(&[40, 6], -2.0, 2.0, 77), leaf(&[6], 0.5, 1.5, 78)],
    );
    // equals the composite definition
    let x = randn(&[7, 9], 79);
    let fused = x.layer_norm(9, None, None, 1e-5).unwrap();
    let mean = x.mean(&[-1], true).unwrap();
    let var = x.var(&[-1], 0, true).unwrap();
    let plain = x
        .sub(&mean)
        .unwrap()
        .mul(&var.add_scalar(1e-5).unwrap().rsqrt().unwrap())
        .unwrap();
    let d = fused
        .sub(&plain)
        .unwrap()
        .abs()
        .unwrap()
        .max(&[0, 1], false)
        .unwrap();
    assert!(d.item().unwrap() < 1e-12);
    assert!(x.layer_norm(4, None, None, 1e-5).is_err());
    assert!(x.layer_norm(9, Some(&randn(&[8], 1)), None, 1e-5).is_err());
}

#[test]
fn fused_attention_softmax() {
    // causal with as many queries as keys, causal with fewer queries (a KV cache), unmasked
    check(
        "attention_softmax causal",
        |x| x[0].attention_softmax(0.35, true),
        &[leaf(&[2, 3, 5, 5], -2.0, 2.0, 90)],
    );
    check(
        "attention_softmax causal, 2 queries over 6 keys",
        |x| x[0].attention_softmax(0.5, true),
        &[leaf(&[3, 2, 6], -2.0, 2.0, 91)],
    );
    check(
        "attention_softmax unmasked",
        |x| x[0].attention_softmax(0.125, false),
        &[leaf(&[4, 7], -3.0, 3.0, 92)],
    );
    // equals the composition scale, add the -inf mask, softmax
    let x = randn(&[2, 4, 6, 6], 93);
    let fused = x.attention_softmax(0.4, true).unwrap();
    let mut m = vec![0.0f64; 36];
    for i in 0..6 {
        for j in i + 1..6 {
            m[i * 6 + j] = f64::NEG_INFINITY;
        }
    }
    let mask = Tensor::from_vec(m, [6, 6]).unwrap();
    let plain = x
        .mul_scalar(0.4)
        .unwrap()
        .add(&mask)
        .unwrap()
        .softmax(-1)
        .unwrap();
    let (a, b) = (
        fused.to_vec::<f64>().unwrap(),
        plain.to_vec::<f64>().unwrap(),
    );
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() < 1e-15, "{u} vs {v}");
    }
    // f32 above the parallel threshold agrees too
    let x32 = randn(&[8, 4, 64, 64], 94).to_dtype(DType::F32).unwrap();
    let y32 = x32.attention_softmax(0.25, false).unwrap();
    let r32 = x32.mul_scalar(0.25).unwrap().softmax(-1).unwrap();
    let (a, b) = (y32.to_vec::<f32>().unwrap(), r32.to_vec::<f32>().unwrap());
    assert!(a.iter().zip(&b).all(|(u, v)| (u - v).abs() < 1e-6));
    assert!(randn(&[3], 1).attention_softmax(1.0, true).is_err());
    assert!(randn(&[3, 2], 1).attention_softmax(1.0, true).is_err());
    assert!(randn(&[2, 3], 1)
        .attention_softmax(f64::NAN, false)
        .is_err());
}

/// Causal self-attention from views, matmuls and the fused softmax: the reference for the
/// one-op version.
fn composed_attention(qkv: &Tensor, h: usize) -> Result<Tensor> {
    let (b, t, c) = (qkv.dims()[0], qkv.dims()[1], qkv.dims()[2] / 3);
    let d = c / h;
    let heads = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i * c, c)?
            .reshape([b, t, h, d])?
            .transpose(1, 2)
    };
    let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
    let att = q
        .matmul(&k.transpose(-1, -2)?)?
        .attention_softmax(1.0 / (d as f64).sqrt(), true)?;
    att.matmul(&v)?.transpose(1, 2)?.reshape([b, t, c])
}

#[test]
fn fused_causal_self_attention() {
    // one block of queries; several blocks (32 + 32 + 6 rows) with a one-wide head
    check(
        "causal_self_attention 2 heads",
        |x| x[0].causal_self_attention(2),
        &[leaf(&[2, 5, 12], -1.5, 1.5, 94)],
    );
    check(
        "causal_self_attention 70 positions",
        |x| x[0].causal_self_attention(3),
        &[leaf(&[1, 70, 9], -1.5, 1.5, 95)],
    );
    // equals the composition, values and gradients, in f64 and f32; heads of 32 (f32: the
    // unpacked kernel) with every block a multiple of 16 wide (144) and with a last block of 7
    // (135, whose score product goes to the packed path)
    let cases = [
        (DType::F64, 1e-12, 67, 24, 4),
        (DType::F32, 2e-5, 67, 24, 4),
        (DType::F32, 2e-5, 144, 192, 2),
        (DType::F32, 2e-5, 135, 192, 2),
    ];
    for (dtype, tol, t, c3, heads) in cases {
        let qkv = randn(&[2, t, c3], 96)
            .to_dtype(dtype)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let w = randn(&[2, t, c3 / 3], 97).to_dtype(dtype).unwrap();
        let mut outs = Vec::new();
        for fused in [true, false] {
            let y = if fused {
                qkv.causal_self_attention(heads).unwrap()
            } else {
                composed_attention(&qkv, heads).unwrap()
            };
            y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
            let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap().to_vec::<f64>().unwrap();
            let g = f64s(&qkv.grad().unwrap());
            qkv.zero_grad();
            outs.push((f64s(&y), g));
        }
        let ((y1, g1), (y2, g2)) = (&outs[0], &outs[1]);
        for (a, b) in y1.iter().zip(y2).chain(g1.iter().zip(g2)) {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{dtype:?} T={t}: {a} vs {b}"
            );
        }
    }
    // no positions: an empty output and an empty gradient, not a panic
    let empty = Tensor::zeros([2, 0, 12], DType::F32)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let y = empty.causal_self_attention(2).unwrap();
    assert_eq!(y.dims(), &[2, 0, 4]);
    y.sum_all().unwrap().backward().unwrap();
    assert_eq!(empty.grad().unwrap().dims(), &[2, 0, 12]);
    // shapes it cannot take
    let x = randn(&[2, 5, 12], 98);
    assert!(x.causal_self_attention(5).is_err());
    assert!(x.causal_self_attention(0).is_err());
    assert!(randn(&[5, 12], 98).causal_self_attention(2).is_err());
}
