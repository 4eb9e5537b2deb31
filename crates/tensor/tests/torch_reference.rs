//! Forward values and gradients of every op family against PyTorch. The fixture
//! tests/fixtures/torch_ops.json was written by tests/fixtures/gen_torch_ops.py; this test only
//! reads it. Tolerances: 1e-10 relative in f64, 1e-5 relative in f32 (plus a tiny absolute floor
//! for values that are zero up to rounding).

use ferrograd_tensor::{Conv1dOptions, Conv2dOptions, DType, Pool2dOptions, Result, Tensor};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    generator: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    op: String,
    args: serde_json::Value,
    dtype: String,
    inputs: Vec<Enc>,
    out: Enc,
    grad_out: Enc,
    grads: Vec<Option<Enc>>,
}

#[derive(Deserialize)]
struct Enc {
    shape: Vec<usize>,
    dtype: String,
    data: Vec<f64>,
}

impl Enc {
    fn tensor(&self) -> Tensor {
        let t = match self.dtype.as_str() {
            "i64" => Tensor::from_vec(
                self.data.iter().map(|&v| v as i64).collect(),
                self.shape.clone(),
            ),
            "f32" => Tensor::from_vec(
                self.data.iter().map(|&v| v as f32).collect(),
                self.shape.clone(),
            ),
            _ => Tensor::from_vec(self.data.clone(), self.shape.clone()),
        };
        t.unwrap()
    }
}

fn f(args: &serde_json::Value, k: &str) -> f64 {
    args[k]
        .as_f64()
        .unwrap_or_else(|| panic!("missing arg {k}"))
}
fn u(args: &serde_json::Value, k: &str) -> usize {
    args[k]
        .as_u64()
        .unwrap_or_else(|| panic!("missing arg {k}")) as usize
}
fn dims(args: &serde_json::Value, k: &str) -> Vec<isize> {
    args[k]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as isize)
        .collect()
}
fn pair(args: &serde_json::Value, k: &str) -> (usize, usize) {
    let v = &args[k];
    (
        v[0].as_u64().unwrap() as usize,
        v[1].as_u64().unwrap() as usize,
    )
}

fn run(op: &str, a: &serde_json::Value, x: &[Tensor]) -> Result<Tensor> {
    match op {
        "neg" => x[0].neg(),
        "abs" => x[0].abs(),
        "exp" => x[0].exp(),
        "log" => x[0].log(),
        "sqrt" => x[0].sqrt(),
        "rsqrt" => x[0].rsqrt(),
        "recip" => x[0].recip(),
        "powf" => x[0].powf(f(a, "p")),
        "square" => x[0].square(),
        "relu" => x[0].relu(),
        "leaky_relu" => x[0].leaky_relu(f(a, "slope")),
        "sigmoid" => x[0].sigmoid(),
        "tanh" => x[0].tanh(),
        "gelu" => x[0].gelu(),
        "gelu_tanh" => x[0].gelu_tanh(),
        "silu" => x[0].silu(),
        "softplus" => x[0].softplus(f(a, "beta"), f(a, "threshold")),
        "clamp" => x[0].clamp(Some(f(a, "lo")), Some(f(a, "hi"))),
        "add_scalar" => x[0].add_scalar(f(a, "c")),
        "mul_scalar" => x[0].mul_scalar(f(a, "c")),
        "div_scalar" => x[0].div_scalar(f(a, "c")),
        "rsub_scalar" => x[0].rsub_scalar(f(a, "c")),
        "add" => x[0].add(&x[1]),
        "sub" => x[0].sub(&x[1]),
        "mul" => x[0].mul(&x[1]),
        "div" => x[0].div(&x[1]),
        "maximum" => x[0].maximum(&x[1]),
        "minimum" => x[0].minimum(&x[1]),
        "where" => Tensor::where_(&x[0], &x[1], &x[2]),
        "sum" => x[0].sum(&dims(a, "dims"), a["keepdim"].as_bool().unwrap()),
        "mean" => x[0].mean(&dims(a, "dims"), a["keepdim"].as_bool().unwrap()),
        "max" => x[0].max(&dims(a, "dims"), a["keepdim"].as_bool().unwrap()),
        "min" => x[0].min(&dims(a, "dims"), a["keepdim"].as_bool().unwrap()),
        "var" => x[0].var(
            &dims(a, "dims"),
            u(a, "correction"),
            a["keepdim"].as_bool().unwrap(),
        ),
        "std" => x[0].std(
            &dims(a, "dims"),
            u(a, "correction"),
            a["keepdim"].as_bool().unwrap(),
        ),
        "logsumexp" => x[0].logsumexp(&dims(a, "dims"), a["keepdim"].as_bool().unwrap()),
        "softmax" => x[0].softmax(f(a, "dim") as isize),
        "log_softmax" => x[0].log_softmax(f(a, "dim") as isize),
        "matmul" => x[0].matmul(&x[1]),
        "linear" => x[0].linear(&x[1], Some(&x[2])),
        "cat" => Tensor::cat(&[&x[0], &x[1]], f(a, "dim") as isize),
        "stack" => Tensor::stack(&[&x[0], &x[1]], f(a, "dim") as isize),
        "pad" => {
            let pads: Vec<(usize, usize)> = a["pads"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_u64().unwrap() as usize,
                        p[1].as_u64().unwrap() as usize,
                    )
                })
                .collect();
            x[0].pad(&pads, f(a, "value"))
        }
        "permute_reshape" => x[0].permute(&[2, 0, 1])?.reshape([4, 6]),
        "narrow" => x[0].narrow(f(a, "dim") as isize, u(a, "start"), u(a, "len")),
        "expand" => {
            let s: Vec<usize> = dims(a, "shape").into_iter().map(|d| d as usize).collect();
            x[0].expand(s)
        }
        "index_select" => x[0].index_select(f(a, "dim") as isize, &x[1]),
        "gather" => x[0].gather(f(a, "dim") as isize, &x[1]),
        "scatter_add" => x[0].scatter_add(f(a, "dim") as isize, &x[1], &x[2]),
        "embedding" => Tensor::embedding(&x[0], &x[1]),
        "conv2d" => x[0].conv2d(
            &x[1],
            Some(&x[2]),
            Conv2dOptions {
                stride: pair(a, "stride"),
                padding: pair(a, "padding"),
                dilation: pair(a, "dilation"),
                groups: u(a, "groups"),
            },
        ),
        "conv1d" => x[0].conv1d(
            &x[1],
            Some(&x[2]),
            Conv1dOptions {
                stride: u(a, "stride"),
                padding: u(a, "padding"),
                dilation: u(a, "dilation"),
                groups: u(a, "groups"),
            },
        ),
        "max_pool2d" | "avg_pool2d" => {
            let o = Pool2dOptions {
                kernel: pair(a, "kernel"),
                stride: pair(a, "stride"),
                padding: pair(a, "padding"),
            };
            if op == "max_pool2d" {
                x[0].max_pool2d(o)
            } else {
                x[0].avg_pool2d(o)
            }
        }
        "adaptive_avg_pool2d" => x[0].adaptive_avg_pool2d(pair(a, "out")),
        "cross_entropy" => {
            let n = x[1].numel();
            x[0].log_softmax(1)?
                .gather(1, &x[1].reshape([n, 1])?)?
                .mean_all()?
                .neg()
        }
        other => panic!("fixture names an op this test does not know: {other}"),
    }
}

fn compare(what: &str, got: &Tensor, want: &Enc, rtol: f64, atol: f64) {
    assert_eq!(got.dims(), &want.shape[..], "{what}: shape");
    let g = got.to_vec_f64();
    for (i, (a, b)) in g.iter().zip(&want.data).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {i}: ferrograd {a} vs torch {b} (rel {:e})",
            ((a - b) / b).abs()
        );
    }
}

#[test]
fn every_op_family_matches_pytorch() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/torch_ops.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fx: Fixture = serde_json::from_str(&text).unwrap();
    assert!(fx.generator.starts_with("torch"), "{}", fx.generator);
    let mut seen = std::collections::BTreeSet::new();
    for c in &fx.cases {
        let (rtol, atol, dt) = match c.dtype.as_str() {
            "f64" => (1e-10, 1e-13, DType::F64),
            _ => (1e-5, 1e-6, DType::F32),
        };
        let inputs: Vec<Tensor> = c
            .inputs
            .iter()
            .zip(&c.grads)
            .map(|(e, g)| {
                let t = e.tensor();
                if g.is_some() {
                    t.requires_grad_(true).unwrap()
                } else {
                    t
                }
            })
            .collect();
        let out = run(&c.op, &c.args, &inputs).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(out.dtype(), dt, "{}", c.name);
        compare(&format!("{} forward", c.name), &out, &c.out, rtol, atol);
        out.backward_with(&c.grad_out.tensor())
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        for (i, (x, g)) in inputs.iter().zip(&c.grads).enumerate() {
            if let Some(g) = g {
                let got = x
                    .grad()
                    .unwrap_or_else(|| panic!("{}: input {i} got no gradient", c.name));
                compare(
                    &format!("{} grad of input {i}", c.name),
                    &got,
                    g,
                    rtol,
                    atol,
                );
            }
        }
        seen.insert(c.op.clone());
    }
    assert!(seen.len() >= 50, "only {} ops covered", seen.len());
}
