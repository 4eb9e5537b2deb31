//! NAdam, RAdam, Adamax and Adadelta against PyTorch over 20 steps on a small network, in f64
//! (to 1e-10 relative) and f32 (1e-6), and their state round trip.
//! The fixture tests/fixtures/torch_optim.json comes from tests/fixtures/gen_torch_optim.py.

use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{Adadelta, Adamax, Forward, Linear, NAdam, Optimizer, ParamGroup, RAdam};
use ferrograd_tensor::{DType, Tensor};
use serde_json::Value;
use std::sync::OnceLock;

fn fixture() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/torch_optim.json"
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

/// The 4 -> 8 -> tanh -> 3 network of the fixture, in `dtype`.
struct Net {
    fc1: Linear,
    fc2: Linear,
}

impl Net {
    fn new(dtype: DType) -> Net {
        let init = &fixture()["init"];
        let get = |k: &str| {
            let shape: Vec<usize> = init[k]["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            Tensor::from_vec(floats(&init[k]["data"]), shape)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
        };
        Net {
            fc1: Linear::from_tensors(get("fc1.weight"), Some(get("fc1.bias"))).unwrap(),
            fc2: Linear::from_tensors(get("fc2.weight"), Some(get("fc2.bias"))).unwrap(),
        }
    }
    fn params(&self) -> Vec<Tensor> {
        [&self.fc1, &self.fc2]
            .iter()
            .flat_map(|l| [l.weight.clone(), l.bias.clone().unwrap()])
            .collect()
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

fn make_opt(name: &str, c: &Value, net: &Net) -> Box<dyn Optimizer> {
    let f = |k: &str, d: f64| c.get(k).and_then(Value::as_f64).unwrap_or(d);
    let betas = c.get("betas").map_or((0.9, 0.999), |b| {
        (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())
    });
    let decoupled = c
        .get("decoupled_weight_decay")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let group = vec![ParamGroup::new(
        net.params(),
        f("lr", 0.0),
        f("weight_decay", 0.0),
    )];
    match name {
        "nadam" => Box::new(
            NAdam::with_groups(
                group,
                betas,
                f("eps", 1e-8),
                f("momentum_decay", 4e-3),
                decoupled,
            )
            .unwrap(),
        ),
        "radam" => Box::new(RAdam::with_groups(group, betas, f("eps", 1e-8), decoupled).unwrap()),
        "adamax" => Box::new(Adamax::with_groups(group, betas, f("eps", 1e-8)).unwrap()),
        "adadelta" => {
            Box::new(Adadelta::with_groups(group, f("rho", 0.9), f("eps", 1e-6)).unwrap())
        }
        other => panic!("unknown optimizer {other}"),
    }
}

fn data(dtype: DType) -> (Tensor, Tensor) {
    let o = fixture();
    let x = Tensor::from_vec(floats(&o["x"]), [5, 4])
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let y: Vec<i64> = o["y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (x, Tensor::from_vec(y, [5]).unwrap())
}

#[test]
fn new_optimizers_match_pytorch_over_20_steps() {
    let mut count = 0;
    for tr in fixture()["trajectories"].as_array().unwrap() {
        let name = tr["optimizer"].as_str().unwrap();
        let (dtype, rtol, atol) = match tr["dtype"].as_str().unwrap() {
            "f64" => (DType::F64, 1e-10, 1e-13),
            _ => (DType::F32, 1e-6, 1e-6),
        };
        let net = Net::new(dtype);
        let (x, y) = data(dtype);
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
    assert_eq!(count, 20);
}

/// Stopping after 7 steps, saving the state and continuing in a new optimizer gives the same
/// parameters as 14 steps straight.
#[test]
fn state_round_trips() {
    for name in ["nadam", "radam", "adamax", "adadelta"] {
        let cfg = serde_json::json!({"lr": 0.01, "weight_decay": 0.1});
        let (x, y) = data(DType::F64);
        let run = |net: &Net, opt: &mut Box<dyn Optimizer>, n: usize| {
            for _ in 0..n {
                opt.zero_grad();
                net.loss(&x, &y).backward().unwrap();
                opt.step().unwrap();
            }
        };
        let a = Net::new(DType::F64);
        let mut oa = make_opt(name, &cfg, &a);
        run(&a, &mut oa, 14);
        let b = Net::new(DType::F64);
        let mut ob = make_opt(name, &cfg, &b);
        run(&b, &mut ob, 7);
        let state = ob.state_dict().unwrap();
        let mut oc = make_opt(name, &cfg, &b);
        oc.load_state_dict(&state).unwrap();
        run(&b, &mut oc, 7);
        let flat = |n: &Net| {
            n.params()
                .iter()
                .flat_map(|p| p.to_vec_f64())
                .collect::<Vec<f64>>()
        };
        assert_eq!(flat(&a), flat(&b), "{name}");
    }
}

/// Adam allocates and saves an AMSGrad buffer only when AMSGrad is on.
#[test]
fn adam_keeps_no_amsgrad_buffer_unless_asked() {
    let (x, y) = data(DType::F64);
    for ams in [false, true] {
        let net = Net::new(DType::F64);
        let group = vec![ParamGroup::new(net.params(), 1e-2, 0.0)];
        let mut opt = ferrograd_nn::Adam::with_groups(group, (0.9, 0.999), 1e-8, ams).unwrap();
        net.loss(&x, &y).backward().unwrap();
        opt.step().unwrap();
        assert_eq!(opt.states()[0][0].bufs.len(), if ams { 3 } else { 2 });
        let keys: Vec<String> = opt.state_dict().unwrap().into_keys().collect();
        assert!(keys.contains(&"0.0.exp_avg_sq".to_string()));
        assert_eq!(
            keys.contains(&"0.0.max_exp_avg_sq".to_string()),
            ams,
            "{keys:?}"
        );
    }
}
