//! RNN, LSTM and GRU (and their cells) against PyTorch: a state_dict written by PyTorch loads
//! strictly, and the outputs, final states and the gradients of every parameter, the input and
//! the initial state match, at 1e-10 relative in f64 and 1e-5 in f32. Cases: 2 layers,
//! bidirectional, a batch of different lengths through packed sequences, a given initial
//! state; batch-first without bias; a ReLU RNN. The fixture tests/fixtures/torch_rnn.json comes
//! from tests/fixtures/gen_torch_rnn.py.

use ferrograd_nn::{
    load_state_dict, named_parameters, GRUCell, LSTMCell, Module, Nonlinearity, RNNCell,
    RnnOptions, RnnState, GRU, LSTM, RNN,
};
use ferrograd_tensor::{DType, Rng, Tensor};
use serde_json::Value;
use std::collections::BTreeMap;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/torch_rnn.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn tensor(v: &Value, shape: &[usize], dtype: DType, grad: bool) -> Tensor {
    Tensor::from_vec(floats(v), shape)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .requires_grad_(grad)
        .unwrap()
}

fn dtype_of(c: &Value) -> (DType, f64, f64) {
    match c["dtype"].as_str().unwrap() {
        "float64" => (DType::F64, 1e-10, 1e-12),
        _ => (DType::F32, 1e-5, 1e-6),
    }
}

fn close(got: &Tensor, want: &Value, rtol: f64, atol: f64, what: &str) {
    let (g, w) = (got.to_vec_f64(), floats(want));
    assert_eq!(g.len(), w.len(), "{what}: lengths");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}[{i}]: {a} vs PyTorch {b}"
        );
    }
}

fn state_dict_of(c: &Value, dtype: DType) -> BTreeMap<String, Tensor> {
    c["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, p)| {
            (
                k.clone(),
                tensor(&p["values"], &usizes(&p["shape"]), dtype, false),
            )
        })
        .collect()
}

fn check_grads(m: &dyn Module, c: &Value, rtol: f64, atol: f64, name: &str) {
    let params = named_parameters(m);
    assert_eq!(
        params.len(),
        c["grads"].as_object().unwrap().len(),
        "{name}: parameter count"
    );
    for (k, p) in params {
        close(
            &p.grad().unwrap(),
            &c["grads"][&k],
            rtol,
            atol,
            &format!("{name} d{k}"),
        );
    }
}

#[test]
fn layers_match_pytorch_outputs_states_and_every_gradient() {
    let fx = fixture();
    let cases = fx["layers"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for c in cases {
        let name = format!("{} {}", c["name"].as_str().unwrap(), c["dtype"]);
        let (dtype, rtol, atol) = dtype_of(c);
        let get = |k: &str| c[k].as_u64().unwrap() as usize;
        let (i, h, l, t) = (
            get("input_size"),
            get("hidden"),
            get("layers"),
            get("steps"),
        );
        let lengths = usizes(&c["lengths"]);
        let b = lengths.len();
        let bidir = c["bidirectional"].as_bool().unwrap();
        let batch_first = c["batch_first"].as_bool().unwrap();
        let opt = RnnOptions {
            num_layers: l,
            bias: c["bias"].as_bool().unwrap(),
            batch_first,
            dropout: 0.0,
            bidirectional: bidir,
        };
        let mut rng = Rng::new(1);
        let kind = c["kind"].as_str().unwrap();
        let m: Box<dyn RunRnn> = match kind {
            "rnn" => {
                let nl = if c["nonlinearity"] == "relu" {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                };
                Box::new(
                    RNN::new(i, h, nl, opt, &mut rng)
                        .unwrap()
                        .with_dtype(dtype)
                        .unwrap(),
                )
            }
            "lstm" => Box::new(
                LSTM::new(i, h, opt, &mut rng)
                    .unwrap()
                    .with_dtype(dtype)
                    .unwrap(),
            ),
            _ => Box::new(
                GRU::new(i, h, opt, &mut rng)
                    .unwrap()
                    .with_dtype(dtype)
                    .unwrap(),
            ),
        };
        load_state_dict(m.module(), &state_dict_of(c, dtype)).unwrap();
        let d = if bidir { 2 } else { 1 };
        let xshape = if batch_first { [b, t, i] } else { [t, b, i] };
        let x = tensor(&c["x"], &xshape, dtype, true);
        let h0 = tensor(&c["h0"], &[l * d, b, h], dtype, true);
        let c0 = c.get("c0").map(|v| tensor(v, &[l * d, b, h], dtype, true));
        let state = RnnState {
            h: h0.clone(),
            c: c0.clone(),
        };
        let out = m.run(&x, &state, &lengths);
        assert_eq!(
            out.output.dims(),
            usizes(&c["output_shape"]).as_slice(),
            "{name}"
        );
        let v = |k: &str, t: &Tensor| tensor(&c[k], t.dims(), dtype, false);
        let mut loss = out
            .output
            .mul(&v("v_out", &out.output))
            .unwrap()
            .sum_all()
            .unwrap()
            .add(
                &out.state
                    .h
                    .mul(&v("v_h", &out.state.h))
                    .unwrap()
                    .sum_all()
                    .unwrap(),
            )
            .unwrap();
        if let Some(cn) = &out.state.c {
            loss = loss
                .add(&cn.mul(&v("v_c", cn)).unwrap().sum_all().unwrap())
                .unwrap();
        }
        loss.backward().unwrap();
        close(
            &out.output,
            &c["output"],
            rtol,
            atol,
            &format!("{name} output"),
        );
        close(&out.state.h, &c["h_n"], rtol, atol, &format!("{name} h_n"));
        if let Some(cn) = &out.state.c {
            close(cn, &c["c_n"], rtol, atol, &format!("{name} c_n"));
            close(
                &c0.unwrap().grad().unwrap(),
                &c["grad_c0"],
                rtol,
                atol,
                &format!("{name} dc0"),
            );
        }
        close(
            &x.grad().unwrap(),
            &c["grad_x"],
            rtol,
            atol,
            &format!("{name} dx"),
        );
        close(
            &h0.grad().unwrap(),
            &c["grad_h0"],
            rtol,
            atol,
            &format!("{name} dh0"),
        );
        check_grads(m.module(), c, rtol, atol, &name);
    }
}

/// The three layer types behind one interface, for the table of cases.
trait RunRnn {
    fn module(&self) -> &dyn Module;
    fn run(&self, x: &Tensor, s: &RnnState, lengths: &[usize]) -> ferrograd_nn::RnnOutput;
}

macro_rules! run_rnn {
    ($t:ty) => {
        impl RunRnn for $t {
            fn module(&self) -> &dyn Module {
                self
            }
            fn run(&self, x: &Tensor, s: &RnnState, lengths: &[usize]) -> ferrograd_nn::RnnOutput {
                self.forward_with(x, Some(s), Some(lengths)).unwrap()
            }
        }
    };
}
run_rnn!(RNN);
run_rnn!(LSTM);
run_rnn!(GRU);

#[test]
fn cells_match_pytorch() {
    let fx = fixture();
    for c in fx["cells"].as_array().unwrap() {
        let kind = c["kind"].as_str().unwrap();
        let name = format!("{kind} cell {}", c["dtype"]);
        let (dtype, rtol, atol) = dtype_of(c);
        let (i, h) = (
            c["input_size"].as_u64().unwrap() as usize,
            c["hidden"].as_u64().unwrap() as usize,
        );
        let b = floats(&c["x"]).len() / i;
        let mut rng = Rng::new(2);
        let x = tensor(&c["x"], &[b, i], dtype, true);
        let h0 = tensor(&c["h"], &[b, h], dtype, true);
        let c0 = c.get("c").map(|v| tensor(v, &[b, h], dtype, true));
        let state = RnnState {
            h: h0.clone(),
            c: c0.clone(),
        };
        let sd = state_dict_of(c, dtype);
        let (module, out): (Box<dyn Module>, RnnState) = match kind {
            "rnn" => {
                let m = RNNCell::new(i, h, true, Nonlinearity::Tanh, &mut rng)
                    .unwrap()
                    .with_dtype(dtype)
                    .unwrap();
                load_state_dict(&m, &sd).unwrap();
                let o = m.step(&x, Some(&state)).unwrap();
                (Box::new(m), o)
            }
            "lstm" => {
                let m = LSTMCell::new(i, h, true, &mut rng)
                    .unwrap()
                    .with_dtype(dtype)
                    .unwrap();
                load_state_dict(&m, &sd).unwrap();
                let o = m.step(&x, Some(&state)).unwrap();
                (Box::new(m), o)
            }
            _ => {
                let m = GRUCell::new(i, h, true, &mut rng)
                    .unwrap()
                    .with_dtype(dtype)
                    .unwrap();
                load_state_dict(&m, &sd).unwrap();
                let o = m.step(&x, Some(&state)).unwrap();
                (Box::new(m), o)
            }
        };
        let v = |k: &str, t: &Tensor| tensor(&c[k], t.dims(), dtype, false);
        let mut loss = out.h.mul(&v("v_h", &out.h)).unwrap().sum_all().unwrap();
        if let Some(cn) = &out.c {
            loss = loss
                .add(&cn.mul(&v("v_c", cn)).unwrap().sum_all().unwrap())
                .unwrap();
        }
        loss.backward().unwrap();
        close(&out.h, &c["h_out"], rtol, atol, &format!("{name} h"));
        if let Some(cn) = &out.c {
            close(cn, &c["c_out"], rtol, atol, &format!("{name} c"));
            close(
                &c0.unwrap().grad().unwrap(),
                &c["grad_c"],
                rtol,
                atol,
                &format!("{name} dc"),
            );
        }
        close(
            &x.grad().unwrap(),
            &c["grad_x"],
            rtol,
            atol,
            &format!("{name} dx"),
        );
        close(
            &h0.grad().unwrap(),
            &c["grad_h"],
            rtol,
            atol,
            &format!("{name} dh"),
        );
        check_grads(module.as_ref(), c, rtol, atol, &name);
    }
}
