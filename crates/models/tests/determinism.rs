//! Same seed, same bits, for any thread count: every shipped model's forward, loss, backward and
//! an Adam step give identical bits on rayon pools of 1, 2, 3 and 4 threads, at the sizes the
//! command trains them (the MLP's 64 x 784 -> 500 -> 10 among them, which once differed between
//! one thread and several in the last bits of `fc2.bias`).

use ferrograd_models::bert::{BertClassifier, Pooling};
use ferrograd_models::{Bert, BertConfig, Gpt, GptConfig, LeNet5, LeNetStyle, Mlp};
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::{named_parameters, Adam, Forward, Module, Optimizer};
use ferrograd_tensor::{DType, Rng, Tensor};

/// Runs `f` on a rayon pool of `n` threads.
fn on_threads<R: Send>(n: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

/// Output, loss, every gradient and every parameter after one Adam step, as bits by name.
fn one_step<M: Module + Forward>(
    model: &mut M,
    input: &Tensor,
    target: &Tensor,
) -> Vec<(String, Vec<u32>)> {
    let bits = |t: &Tensor| -> Vec<u32> {
        t.to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    };
    let out = model.forward(input).unwrap();
    let classes = *out.dims().last().unwrap();
    let logits = out.reshape([out.numel() / classes, classes]).unwrap();
    let loss = cross_entropy(&logits, target, &ClassLossOptions::default()).unwrap();
    loss.backward().unwrap();
    let mut seen = vec![
        ("output".to_string(), bits(&out)),
        ("loss".into(), bits(&loss)),
    ];
    let params = named_parameters(model);
    // (a BERT classifier with mean pooling leaves the pooler without a gradient)
    for (name, p) in &params {
        if let Some(g) = p.grad() {
            seen.push((format!("{name}.grad"), bits(&g)));
        }
    }
    let mut adam = Adam::new(params.iter().map(|(_, p)| p.clone()).collect(), 1e-3, 0.0).unwrap();
    adam.step().unwrap();
    for (name, p) in &params {
        seen.push((name.clone(), bits(p)));
    }
    seen
}

/// Builds the model and its batch afresh (from fixed seeds) on pools of 1 to 4 threads and
/// compares everything bit for bit.
fn same_bits_on_any_threads<M: Module + Forward>(
    what: &str,
    build: impl Fn() -> (M, Tensor, Tensor) + Sync,
) {
    let run = |threads| {
        on_threads(threads, || {
            let (mut m, x, y) = build();
            one_step(&mut m, &x, &y)
        })
    };
    let one = run(1);
    for threads in [2, 3, 4] {
        let other = run(threads);
        assert_eq!(one.len(), other.len());
        for ((name, a), (_, b)) in one.iter().zip(&other) {
            let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert!(
                diff == 0,
                "{what}: {name} differs in {diff} of {} values between 1 and {threads} threads",
                a.len()
            );
        }
    }
}

fn labels(n: usize, classes: i64, rng: &mut Rng) -> Tensor {
    let v: Vec<i64> = (0..n).map(|_| rng.below(classes as u64) as i64).collect();
    Tensor::from_vec(v, [n]).unwrap()
}

#[test]
fn mlp_is_bit_identical_for_any_thread_count() {
    same_bits_on_any_threads("mlp", || {
        let mut rng = Rng::new(3);
        let m = Mlp::new(784, 500, 10, &mut rng).unwrap();
        let x = Tensor::rand([64, 784], DType::F32, &mut rng).unwrap();
        (m, x, labels(64, 10, &mut rng))
    });
}

#[test]
fn lenet5_is_bit_identical_for_any_thread_count() {
    for style in [LeNetStyle::Modern, LeNetStyle::Classic] {
        same_bits_on_any_threads("lenet5", move || {
            let mut rng = Rng::new(4);
            let m = LeNet5::new(style, 10, &mut rng).unwrap();
            let x = Tensor::rand([64, 1, 28, 28], DType::F32, &mut rng).unwrap();
            (m, x, labels(64, 10, &mut rng))
        });
    }
}

#[test]
fn gpt_is_bit_identical_for_any_thread_count() {
    same_bits_on_any_threads("gpt", || {
        let mut rng = Rng::new(5);
        let config = GptConfig {
            n_layer: 2,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            vocab_size: 65,
            dropout: 0.1,
            bias: true,
        };
        let mut m = Gpt::new(config, &mut rng).unwrap();
        m.train();
        let x = labels(12 * 64, 65, &mut rng).reshape([12, 64]).unwrap();
        (m, x, labels(12 * 64, 65, &mut rng))
    });
}

#[test]
fn bert_classifier_is_bit_identical_for_any_thread_count() {
    same_bits_on_any_threads("bert", || {
        let mut rng = Rng::new(6);
        // MiniLM-L6's widths, two layers
        let config = BertConfig {
            vocab_size: 300,
            hidden_size: 384,
            num_hidden_layers: 2,
            num_attention_heads: 12,
            intermediate_size: 1536,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: "gelu".into(),
        };
        let bert = Bert::new(config, &mut rng).unwrap();
        let mut m = BertClassifier::new(bert, 4, Pooling::Mean, 0.1, &mut rng).unwrap();
        m.train();
        m.seed_dropout(9);
        let x = labels(16 * 48, 300, &mut rng).reshape([16, 48]).unwrap();
        (m, x, labels(16, 4, &mut rng))
    });
}

#[test]
fn speech_lstm_is_bit_identical_for_any_thread_count() {
    use ferrograd_models::speech::{SpeechArch, SpeechConfig, SpeechModel};
    same_bits_on_any_threads("speech lstm", || {
        let mut rng = Rng::new(8);
        let cfg = SpeechConfig {
            arch: SpeechArch::Lstm,
            features: 40,
            feature_kind: "logmel".into(),
            frames: 30,
            hidden: 64,
            layers: 2,
            dropout: 0.2,
            classes: 10,
        };
        let m = SpeechModel::new(&cfg, &mut rng).unwrap();
        // 40 clips (three blocks of rows) of lengths 5..30, the mask last
        let (b, t) = (40, 30);
        let mut x = Tensor::randn([b, t, 41], DType::F32, &mut rng)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        for i in 0..b {
            let len = 5 + i % 26;
            for f in 0..t {
                let row = &mut x[(i * t + f) * 41..(i * t + f + 1) * 41];
                if f < len {
                    row[40] = 1.0;
                } else {
                    row.iter_mut().for_each(|v| *v = 0.0);
                }
            }
        }
        let x = Tensor::from_vec(x, [b, t, 41]).unwrap();
        (m, x, labels(b, 10, &mut rng))
    });
}
