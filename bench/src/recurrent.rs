//! Recurrent workloads of `ferrograd-bench recurrent`: a 2-layer LSTM or GRU, input 40, hidden
//! 128, batch 32, 100 steps, time-major (the speech model's size), against `nn.LSTM` /
//! `nn.GRU`, which PyTorch runs on the CPU through oneDNN.
//!
//! - `*_train_32x100`: forward, the mean of the outputs, backward and an Adam step;
//! - `*_fwd_32x100`: the forward without a graph (inference).
//!
//! Seconds are the median of 10 steps after 3 warm-up steps, as in bench/torch_ref.py.

use ferrograd_nn::{parameters, Adam, Forward, Optimizer, RnnOptions, GRU, LSTM};
use ferrograd_tensor::{no_grad, DType, Rng, Tensor};
use serde_json::{json, Value};
use std::time::Instant;

pub const WORKLOADS: [&str; 4] = [
    "lstm_train_32x100",
    "lstm_fwd_32x100",
    "gru_train_32x100",
    "gru_fwd_32x100",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn worker(work: &str) -> Result<Value, String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let mut rng = Rng::new(0);
    let opt = RnnOptions {
        num_layers: 2,
        ..RnnOptions::default()
    };
    let model: Box<dyn Forward> = if work.starts_with("lstm") {
        Box::new(LSTM::new(40, 128, opt, &mut rng).map_err(|x| e(&x))?)
    } else if work.starts_with("gru") {
        Box::new(GRU::new(40, 128, opt, &mut rng).map_err(|x| e(&x))?)
    } else {
        return Err(format!("unknown workload {work}"));
    };
    let x = Tensor::randn([100, 32, 40], DType::F32, &mut rng).map_err(|x| e(&x))?;
    let train = work.contains("_train_");
    let mut adam = Adam::new(parameters(model.as_ref()), 1e-3, 0.0).map_err(|x| e(&x))?;
    let mut times = Vec::new();
    for i in 0..13 {
        let t0 = Instant::now();
        if train {
            adam.zero_grad();
            let loss = model
                .forward(&x)
                .and_then(|o| Ok(o.mean_all()?))
                .map_err(|x| e(&x))?;
            loss.backward().map_err(|x| e(&x))?;
            adam.step().map_err(|x| e(&x))?;
        } else {
            no_grad(|| model.forward(&x)).map_err(|x| e(&x))?;
        }
        if i >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let s = median(times);
    Ok(json!({"seconds": s, "sequences_per_s": 32.0 / s}))
}
