//! ferrograd-nn against PyTorch: optimizer trajectories, learning-rate schedules, losses,
//! normalisation layers, and the state_dict names, weights and logits of the tutorial's models.
//! The fixture tests/fixtures/torch_nn.json comes from tests/fixtures/gen_torch_nn.py.

use ferrograd_nn::loss::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
    nll_loss, ClassLossOptions, Reduction,
};
use ferrograd_nn::{
    named_parameters, state_dict, Adagrad, Adam, AdamW, BatchNorm2d, Forward, LayerNorm, Linear,
    LrScheduler, Module, Optimizer, ParamGroup, RMSprop, Schedule, Sgd,
};
use ferrograd_tensor::{DType, Tensor};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/torch_nn.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    })
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}[{i}]: ferrograd {a} vs torch {b}"
        );
    }
}

fn t64(data: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(data, shape).unwrap()
}

/// The 4 -> 8 -> tanh -> 3 network of the fixture, in `dtype`.
struct Net {
    fc1: Linear,
    fc2: Linear,
}

impl Net {
    fn new(dtype: DType) -> Net {
        let init = &fixture()["optim"]["init"];
        let get = |k: &str| {
            let shape: Vec<usize> = init[k]["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            t64(floats(&init[k]["data"]), &shape)
                .to_dtype(dtype)
                .unwrap()
        };
        Net {
            fc1: Linear::from_tensors(get("fc1.weight"), Some(get("fc1.bias"))).unwrap(),
            fc2: Linear::from_tensors(get("fc2.weight"), Some(get("fc2.bias"))).unwrap(),
        }
    }
    fn params(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        for l in [&self.fc1, &self.fc2] {
            v.push(l.weight.clone());
            v.push(l.bias.clone().unwrap());
        }
        v
    }
    fn loss(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let h = self.fc1.forward(x).unwrap().tanh().unwrap();
        cross_entropy(
            &self.fc2.forward(&h).unwrap(),
            y,
            &ClassLossOptions::default(),
        )
        .unwrap()
    }
}

fn cfg(c: &Value, k: &str, default: f64) -> f64 {
    c.get(k).and_then(|v| v.as_f64()).unwrap_or(default)
}

fn make_opt(name: &str, c: &Value, net: &Net) -> Box<dyn Optimizer> {
    let p = net.params();
    let lr = cfg(c, "lr", 0.0);
    let wd = cfg(c, "weight_decay", 0.0);
    let group = vec![ParamGroup::new(p.clone(), lr, wd)];
    let amsgrad = c.get("amsgrad").and_then(|v| v.as_bool()).unwrap_or(false);
    let betas = c.get("betas").map_or((0.9, 0.999), |b| {
        (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())
    });
    match name {
        "sgd" => Box::new(
            Sgd::with_groups(
                group,
                cfg(c, "momentum", 0.0),
                cfg(c, "dampening", 0.0),
                c.get("nesterov").and_then(|v| v.as_bool()).unwrap_or(false),
            )
            .unwrap(),
        ),
        "sgd_groups" => Box::new(
            Sgd::with_groups(
                vec![
                    ParamGroup::new(p[..2].to_vec(), 0.1, 0.0),
                    ParamGroup::new(p[2..].to_vec(), 0.01, 0.1),
                ],
                cfg(c, "momentum", 0.0),
                0.0,
                false,
            )
            .unwrap(),
        ),
        "adagrad" => Box::new(
            Adagrad::with_groups(
                group,
                cfg(c, "lr_decay", 0.0),
                cfg(c, "initial_accumulator_value", 0.0),
                cfg(c, "eps", 1e-10),
            )
            .unwrap(),
        ),
        "rmsprop" => Box::new(
            RMSprop::with_groups(
                group,
                cfg(c, "alpha", 0.99),
                cfg(c, "eps", 1e-8),
                cfg(c, "momentum", 0.0),
                c.get("centered").and_then(|v| v.as_bool()).unwrap_or(false),
            )
            .unwrap(),
        ),
        "adam" => Box::new(Adam::with_groups(group, betas, cfg(c, "eps", 1e-8), amsgrad).unwrap()),
        "adamw" => {
            let wd = c.get("weight_decay").map_or(0.01, |v| v.as_f64().unwrap());
            Box::new(
                AdamW::with_groups(
                    vec![ParamGroup::new(p, lr, wd)],
                    betas,
                    cfg(c, "eps", 1e-8),
                    amsgrad,
                )
                .unwrap(),
            )
        }
        other => panic!("unknown optimizer {other}"),
    }
}

#[test]
fn optimizer_trajectories_match_pytorch_over_20_steps() {
    let o = &fixture()["optim"];
    let x64 = t64(floats(&o["x"]), &[5, 4]);
    let y = Tensor::from_vec(
        o["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect::<Vec<_>>(),
        [5],
    )
    .unwrap();
    let mut count = 0;
    for tr in o["trajectories"].as_array().unwrap() {
        let name = tr["optimizer"].as_str().unwrap();
        let (dtype, rtol, atol) = match tr["dtype"].as_str().unwrap() {
            "f64" => (DType::F64, 1e-10, 1e-13),
            _ => (DType::F32, 1e-6, 1e-6),
        };
        let net = Net::new(dtype);
        let x = x64.to_dtype(dtype).unwrap();
        let mut opt = make_opt(name, &tr["config"], &net);
        for (step, want) in tr["params"].as_array().unwrap().iter().enumerate() {
            opt.zero_grad();
            let loss = net.loss(&x, &y);
            loss.backward().unwrap();
            opt.step().unwrap();
            let what = format!("{name} {} {} step {}", tr["config"], tr["dtype"], step + 1);
            close(
                &format!("{what} loss"),
                &[loss.item().unwrap()],
                &[tr["losses"][step].as_f64().unwrap()],
                rtol,
                atol,
            );
            for (i, p) in net.params().iter().enumerate() {
                close(
                    &format!("{what} param {i}"),
                    &p.to_vec_f64(),
                    &floats(&want[i]),
                    rtol,
                    atol,
                );
            }
        }
        count += 1;
    }
    assert_eq!(count, 26);
}

#[test]
fn optimizer_state_round_trips() {
    let o = &fixture()["optim"];
    let x = t64(floats(&o["x"]), &[5, 4]);
    let y = Tensor::from_vec(vec![0i64, 2, 1, 1, 0], [5]).unwrap();
    // 10 steps, save, 10 more; versus restoring into a fresh optimizer after 10 steps
    let run = |split: bool| -> Vec<f64> {
        let net = Net::new(DType::F64);
        let mut opt: Box<dyn Optimizer> = Box::new(
            Adam::with_groups(
                vec![ParamGroup::new(net.params(), 0.01, 0.0)],
                (0.9, 0.999),
                1e-8,
                true,
            )
            .unwrap(),
        );
        for i in 0..20 {
            if split && i == 10 {
                let state = opt.state_dict().unwrap();
                // same settings but a wrong learning rate, which the state restores
                opt = Box::new(
                    Adam::with_groups(
                        vec![ParamGroup::new(net.params(), 0.5, 0.0)],
                        (0.9, 0.999),
                        1e-8,
                        true,
                    )
                    .unwrap(),
                );
                opt.load_state_dict(&state).unwrap();
            }
            opt.zero_grad();
            net.loss(&x, &y).backward().unwrap();
            opt.step().unwrap();
        }
        net.params().iter().flat_map(|p| p.to_vec_f64()).collect()
    };
    assert_eq!(run(false), run(true));
}

fn sched_lrs(s: Schedule, epochs: usize, metrics: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    let p = Tensor::zeros([1], DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let mut opt = Sgd::new(vec![p], 0.1, 0.9, 0.0).unwrap();
    let mut sch = LrScheduler::new(s, &mut opt).unwrap();
    let (mut lr, mut mom) = (Vec::new(), Vec::new());
    for e in 0..epochs {
        lr.push(opt.lr());
        mom.push(opt.momentum);
        sch.step(&mut opt, metrics.map(|m| m[e])).unwrap();
    }
    (lr, mom)
}

#[test]
fn schedules_match_pytorch() {
    let s = &fixture()["schedules"];
    let check = |name: &str, sched: Schedule| {
        let want = floats(&s[name]);
        let (got, _) = sched_lrs(sched, want.len(), None);
        close(name, &got, &want, 1e-12, 1e-15);
    };
    check(
        "step",
        Schedule::Step {
            step_size: 7,
            gamma: 0.5,
        },
    );
    check(
        "multistep",
        Schedule::MultiStep {
            milestones: vec![5, 12],
            gamma: 0.3,
        },
    );
    check("exponential", Schedule::Exponential { gamma: 0.9 });
    check(
        "cosine",
        Schedule::Cosine {
            t_max: 10,
            eta_min: 1e-3,
        },
    );
    check(
        "linear",
        Schedule::Linear {
            start_factor: 0.1,
            end_factor: 1.0,
            total_iters: 5,
        },
    );
    let oc = Schedule::OneCycle {
        max_lr: 0.1,
        total_steps: 30,
        pct_start: 0.3,
        div_factor: 25.0,
        final_div_factor: 1e4,
        base_momentum: 0.85,
        max_momentum: 0.95,
    };
    let want = floats(&s["onecycle"]);
    let (lr, mom) = sched_lrs(oc, want.len(), None);
    close("onecycle", &lr, &want, 1e-12, 1e-15);
    close(
        "onecycle momentum",
        &mom,
        &floats(&s["onecycle_momentum"]),
        1e-12,
        1e-15,
    );
    let metric = floats(&s["plateau_metric"]);
    let want = floats(&s["plateau"]);
    let plateau = Schedule::ReduceOnPlateau {
        factor: 0.5,
        patience: 2,
        threshold: 1e-4,
        cooldown: 0,
        min_lr: 0.0,
    };
    let (lr, _) = sched_lrs(plateau, want.len(), Some(&metric));
    close("plateau", &lr, &want, 1e-12, 1e-15);
}

#[test]
fn losses_match_pytorch() {
    let mut n = 0;
    for c in fixture()["losses"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let shape: Vec<usize> = c["x"]["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let x = t64(floats(&c["x"]["data"]), &shape)
            .requires_grad_(true)
            .unwrap();
        let red = match c["reduction"].as_str().unwrap() {
            "mean" => Reduction::Mean,
            "sum" => Reduction::Sum,
            _ => Reduction::None,
        };
        let ints = |k: &str| {
            Tensor::from_vec(
                c[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect::<Vec<_>>(),
                [shape[0]],
            )
            .unwrap()
        };
        let opt = ClassLossOptions {
            weight: c.get("weight").map(|w| t64(floats(w), &[floats(w).len()])),
            ignore_index: -100,
            label_smoothing: c.get("smoothing").and_then(|v| v.as_f64()).unwrap_or(0.0),
            reduction: red,
        };
        let y = |k: &str| t64(floats(&c[k]), &shape);
        let out = match c["loss"].as_str().unwrap() {
            "ce" => cross_entropy(&x, &ints("target"), &opt),
            "ce_prob" => cross_entropy(&x, &y("probs"), &opt),
            "nll" => nll_loss(&x, &ints("target"), &opt),
            "bce" => binary_cross_entropy(&x, &y("y"), None, red),
            "bce_logits" => {
                let pw = c.get("pos_weight").map(|w| t64(floats(w), &[shape[1]]));
                binary_cross_entropy_with_logits(&x, &y("y"), pw.as_ref(), red)
            }
            "mse" => mse_loss(&x, &y("y"), red),
            "l1" => l1_loss(&x, &y("y"), red),
            other => panic!("unknown loss {other}"),
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        close(
            &format!("{name} value"),
            &out.to_vec_f64(),
            &floats(&c["out"]),
            1e-10,
            1e-12,
        );
        let out_shape: Vec<usize> = c["out_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        out.backward_with(&t64(floats(&c["grad_out"]), &out_shape))
            .unwrap();
        close(
            &format!("{name} grad"),
            &x.grad().unwrap().to_vec_f64(),
            &floats(&c["grad"]),
            1e-10,
            1e-12,
        );
        n += 1;
    }
    assert!(n >= 25, "{n} loss cases");
}

#[test]
fn batchnorm_and_layernorm_match_pytorch() {
    let l = &fixture()["layers"];
    let b = &l["batchnorm2d"];
    let mut bn = BatchNorm2d::new(3).unwrap();
    // run in f64: swap in f64 parameters through the state dict
    let sd = state_dict(&bn);
    let mut vals = std::collections::BTreeMap::new();
    vals.insert(
        "weight".to_string(),
        t64(floats(&b["weight"]), &[3])
            .to_dtype(DType::F32)
            .unwrap(),
    );
    vals.insert(
        "bias".to_string(),
        t64(floats(&b["bias"]), &[3]).to_dtype(DType::F32).unwrap(),
    );
    vals.insert("running_mean".to_string(), sd["running_mean"].clone());
    vals.insert("running_var".to_string(), sd["running_var"].clone());
    vals.insert(
        "num_batches_tracked".to_string(),
        sd["num_batches_tracked"].clone(),
    );
    ferrograd_nn::load_state_dict(&bn, &vals).unwrap();
    for (i, c) in b["train"].as_array().unwrap().iter().enumerate() {
        let x = t64(floats(&c["x"]), &[4, 3, 5, 5])
            .to_dtype(DType::F32)
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let y = bn.forward(&x).unwrap();
        close(
            &format!("bn train {i} y"),
            &y.to_vec_f64(),
            &floats(&c["y"]),
            1e-5,
            1e-5,
        );
        y.backward_with(
            &t64(floats(&c["g"]), &[4, 3, 5, 5])
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
        close(
            &format!("bn {i} dx"),
            &x.grad().unwrap().to_vec_f64(),
            &floats(&c["gx"]),
            1e-4,
            1e-5,
        );
        close(
            &format!("bn {i} running_mean"),
            &bn.running_mean().to_vec_f64(),
            &floats(&c["running_mean"]),
            1e-5,
            1e-6,
        );
        close(
            &format!("bn {i} running_var"),
            &bn.running_var().to_vec_f64(),
            &floats(&c["running_var"]),
            1e-5,
            1e-6,
        );
        let params = named_parameters(&bn);
        close(
            &format!("bn {i} dweight"),
            &params[0].1.grad().unwrap().to_vec_f64(),
            &floats(&c["gw"]),
            1e-4,
            1e-4,
        );
        close(
            &format!("bn {i} dbias"),
            &params[1].1.grad().unwrap().to_vec_f64(),
            &floats(&c["gb"]),
            1e-4,
            1e-4,
        );
        for (_, p) in params {
            p.zero_grad();
        }
    }
    assert_eq!(
        state_dict(&bn)["num_batches_tracked"]
            .to_vec::<i64>()
            .unwrap(),
        vec![b["num_batches_tracked"].as_i64().unwrap()]
    );
    bn.eval();
    let y = bn
        .forward(
            &t64(floats(&b["eval_x"]), &[2, 3, 5, 5])
                .to_dtype(DType::F32)
                .unwrap(),
        )
        .unwrap();
    close(
        "bn eval",
        &y.to_vec_f64(),
        &floats(&b["eval_y"]),
        1e-5,
        1e-5,
    );

    let c = &l["layernorm"];
    let ln = LayerNorm::new(&[5], 1e-5).unwrap();
    ln.weight
        .update_f32(|w| {
            w.iter_mut()
                .zip(floats(&c["weight"]))
                .for_each(|(a, b)| *a = b as f32)
        })
        .unwrap();
    ln.bias
        .update_f32(|w| {
            w.iter_mut()
                .zip(floats(&c["bias"]))
                .for_each(|(a, b)| *a = b as f32)
        })
        .unwrap();
    let x = t64(floats(&c["x"]), &[3, 4, 5])
        .to_dtype(DType::F32)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let y = ln.forward(&x).unwrap();
    close("ln y", &y.to_vec_f64(), &floats(&c["y"]), 1e-5, 1e-5);
    y.backward_with(
        &t64(floats(&c["g"]), &[3, 4, 5])
            .to_dtype(DType::F32)
            .unwrap(),
    )
    .unwrap();
    close(
        "ln dx",
        &x.grad().unwrap().to_vec_f64(),
        &floats(&c["gx"]),
        1e-4,
        1e-5,
    );
    close(
        "ln dw",
        &ln.weight.grad().unwrap().to_vec_f64(),
        &floats(&c["gw"]),
        1e-4,
        1e-5,
    );
    close(
        "ln db",
        &ln.bias.grad().unwrap().to_vec_f64(),
        &floats(&c["gb"]),
        1e-4,
        1e-5,
    );
}

#[test]
fn model_names_weights_and_logits_match_pytorch() {
    let m = &fixture()["models"];
    let mut rng = ferrograd_tensor::Rng::new(0);
    for (kind, key) in [
        (ferrograd_models::ModelKind::Mlp, "mlp_names"),
        (ferrograd_models::ModelKind::LeNet5, "lenet5_names"),
    ] {
        let model = ferrograd_models::build(kind, 10, &mut rng).unwrap();
        let ours: std::collections::BTreeMap<String, Vec<usize>> = state_dict(model.as_ref())
            .into_iter()
            .map(|(k, t)| (k, t.dims().to_vec()))
            .collect();
        let theirs: std::collections::BTreeMap<String, Vec<usize>> = m[key]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{key}");
    }
    // weights written by PyTorch, loaded strictly, give PyTorch's logits
    let mut model =
        ferrograd_models::build(ferrograd_models::ModelKind::LeNet5, 10, &mut rng).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/torch_lenet5.safetensors"
    );
    ferrograd_nn::serialize::load_module(model.as_ref(), path).unwrap();
    model.eval();
    let x = Tensor::from_vec(
        floats(&m["lenet5_input"])
            .into_iter()
            .map(|v| v as f32)
            .collect::<Vec<_>>(),
        [3, 1, 28, 28],
    )
    .unwrap();
    let logits = model.forward(&x).unwrap();
    close(
        "lenet5 logits",
        &logits.to_vec_f64(),
        &floats(&m["lenet5_logits"]),
        1e-5,
        1e-5,
    );
}
