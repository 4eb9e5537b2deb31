//! A tiny GPT against PyTorch, as llm.c checks GPT-2: from the same weights and batch, the
//! logits and loss (1e-5 relative), every parameter's gradient (1e-4) and the losses of 10 AdamW
//! steps. Fixture: tests/fixtures/gen_torch_gpt.py.

use ferrograd_models::{Gpt, GptConfig};
use ferrograd_nn::{named_parameters, AdamW, Forward, Module, Optimizer, ParamGroup};
use ferrograd_tensor::{Rng, Tensor};
use serde_json::Value;

fn close(what: &str, got: &[f64], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}[{i}]: ferrograd {a} vs torch {b}"
        );
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Tensor {
    let rows = v.as_array().unwrap();
    let flat: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect();
    Tensor::from_vec(flat, [rows.len(), rows[0].as_array().unwrap().len()]).unwrap()
}

#[test]
fn tiny_gpt_matches_pytorch_logits_loss_gradients_and_adamw_steps() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}torch_gpt_tiny.json")).unwrap(),
    )
    .unwrap();
    let c = &fx["config"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let config = GptConfig {
        n_layer: u("n_layer"),
        n_head: u("n_head"),
        n_embd: u("n_embd"),
        block_size: u("block_size"),
        vocab_size: u("vocab_size"),
        dropout: 0.0,
        bias: true,
    };
    let model = Gpt::new(config.clone(), &mut Rng::new(0)).unwrap();
    ferrograd_nn::serialize::load_module(&model, format!("{dir}torch_gpt_tiny.safetensors"))
        .unwrap();
    let (idx, targets) = (ids(&fx["idx"]), ids(&fx["targets"]));
    let logits = model.forward(&idx).unwrap();
    assert_eq!(logits.dims(), &[3, config.block_size, config.vocab_size]);
    close(
        "logits",
        &logits.to_vec_f64(),
        &floats(&fx["logits"]),
        1e-5,
        1e-5,
    );
    let loss = Gpt::loss(&logits, &targets).unwrap();
    close(
        "loss",
        &[loss.item().unwrap()],
        &[fx["loss"].as_f64().unwrap()],
        1e-5,
        0.0,
    );
    loss.backward().unwrap();
    let params = named_parameters(&model);
    assert_eq!(params.len(), fx["grads"].as_object().unwrap().len());
    for (name, p) in &params {
        let want = floats(&fx["grads"][name.as_str()]);
        close(
            &format!("grad {name}"),
            &p.grad()
                .unwrap_or_else(|| panic!("{name}: no grad"))
                .to_vec_f64(),
            &want,
            1e-4,
            1e-6,
        );
    }
    // 10 AdamW steps: decay on the linear layers' weights only
    let is_decayed = |n: &str| {
        !n.contains("wte") && !n.contains("wpe") && n.ends_with("weight") && !n.contains(".ln_")
    };
    let decay: Vec<Tensor> = params
        .iter()
        .filter(|(n, _)| is_decayed(n))
        .map(|(_, t)| t.clone())
        .collect();
    let rest: Vec<Tensor> = params
        .iter()
        .filter(|(n, _)| !is_decayed(n))
        .map(|(_, t)| t.clone())
        .collect();
    let mut opt = AdamW::with_groups(
        vec![
            ParamGroup::new(decay, 1e-2, 0.1),
            ParamGroup::new(rest, 1e-2, 0.0),
        ],
        (0.9, 0.95),
        1e-8,
        false,
    )
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..10 {
        opt.zero_grad();
        let l = Gpt::loss(&model.forward(&idx).unwrap(), &targets).unwrap();
        l.backward().unwrap();
        opt.step().unwrap();
        losses.push(l.item().unwrap());
    }
    close(
        "adamw losses",
        &losses,
        &floats(&fx["adamw_losses"]),
        1e-4,
        0.0,
    );
}

#[test]
fn kv_cache_decoding_equals_the_full_forward() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}torch_gpt_tiny.json")).unwrap(),
    )
    .unwrap();
    let config = GptConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 8,
        vocab_size: 11,
        dropout: 0.0,
        bias: true,
    };
    let mut model = Gpt::new(config, &mut Rng::new(0)).unwrap();
    ferrograd_nn::serialize::load_module(&model, format!("{dir}torch_gpt_tiny.safetensors"))
        .unwrap();
    model.eval();
    let idx = ids(&fx["idx"]);
    let full = model.forward(&idx).unwrap().to_vec_f64();
    // prefill three positions, then one token at a time
    let mut caches = Vec::new();
    let mut got = Vec::new();
    let first = model
        .forward_cached(&idx.narrow(1, 0, 3).unwrap(), &mut caches)
        .unwrap();
    got.push(first);
    for t in 3..8 {
        got.push(
            model
                .forward_cached(&idx.narrow(1, t, 1).unwrap(), &mut caches)
                .unwrap(),
        );
    }
    let cat: Vec<&Tensor> = got.iter().collect();
    let inc = Tensor::cat(&cat, 1).unwrap().to_vec_f64();
    close("cached logits", &inc, &full, 1e-5, 1e-6);
    // past block_size is an error, not a wrong answer
    assert!(model
        .forward_cached(&idx.narrow(1, 0, 1).unwrap(), &mut caches)
        .is_err());
}
