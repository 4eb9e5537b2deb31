//! The recurrent layers' behaviour beyond PyTorch's numbers (tests/torch_rnn.rs): parameter
//! names and initialisation, truncated backpropagation through time, batch-first and unbatched
//! input, dropout between layers, and errors naming what is wrong.

use ferrograd_nn::{
    named_parameters, state_dict, Forward, Module, Nonlinearity, RnnOptions, RnnState, GRU, LSTM,
    RNN,
};
use ferrograd_tensor::{DType, Rng, Tensor};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, DType::F32, &mut Rng::new(seed)).unwrap()
}

fn bidir2() -> RnnOptions {
    RnnOptions {
        num_layers: 2,
        bidirectional: true,
        ..RnnOptions::default()
    }
}

#[test]
fn parameters_have_pytorchs_names_shapes_and_init_bound() {
    let lstm = LSTM::new(40, 128, bidir2(), &mut Rng::new(1)).unwrap();
    let names: Vec<String> = named_parameters(&lstm)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l0_reverse",
            "weight_hh_l0_reverse",
            "bias_ih_l0_reverse",
            "bias_hh_l0_reverse",
            "weight_ih_l1",
            "weight_hh_l1",
            "bias_ih_l1",
            "bias_hh_l1",
            "weight_ih_l1_reverse",
            "weight_hh_l1_reverse",
            "bias_ih_l1_reverse",
            "bias_hh_l1_reverse",
        ]
    );
    let sd = state_dict(&lstm);
    assert_eq!(sd["weight_ih_l0"].dims(), [512, 40]);
    assert_eq!(sd["weight_ih_l1"].dims(), [512, 256]);
    assert_eq!(sd["weight_hh_l1_reverse"].dims(), [512, 128]);
    let bound = 1.0 / 128f64.sqrt();
    for (name, t) in &sd {
        let v = t.to_vec_f64();
        assert!(
            v.iter().all(|x| x.abs() <= bound),
            "{name} outside +-1/sqrt(H)"
        );
        let max = v.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(max > 0.9 * bound, "{name} does not fill the range");
    }
    let gru = GRU::new(
        4,
        3,
        RnnOptions {
            bias: false,
            ..RnnOptions::default()
        },
        &mut Rng::new(2),
    )
    .unwrap();
    let names: Vec<String> = named_parameters(&gru).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["weight_ih_l0", "weight_hh_l0"]);
    assert_eq!(state_dict(&gru)["weight_hh_l0"].dims(), [9, 3]);
}

#[test]
fn chunks_with_the_state_carried_give_the_full_sequence_and_detaching_stops_the_gradient() {
    let lstm = LSTM::new(3, 5, bidir2_uni(), &mut Rng::new(3)).unwrap();
    let x = randn(&[8, 2, 3], 4);
    let full = lstm.forward_with(&x, None, None).unwrap();
    let first = lstm
        .forward_with(&x.narrow(0, 0, 5).unwrap(), None, None)
        .unwrap();
    let carried = first.state.detach();
    let second = lstm
        .forward_with(
            &x.narrow(0, 5, 3).unwrap().contiguous().unwrap(),
            Some(&carried),
            None,
        )
        .unwrap();
    let joined = Tensor::cat(&[&first.output, &second.output], 0).unwrap();
    // equal to rounding: the input projection is one product over 10 rows here and 16 there,
    // and the matrix kernels' edge tiles differ with the row count
    close(&joined, &full.output);
    close(&second.state.h, &full.state.h);
    // the second chunk's loss reaches the weights only through its own steps
    assert!(!carried.h.requires_grad() && !carried.c.as_ref().unwrap().requires_grad());
    second.output.sum_all().unwrap().backward().unwrap();
    assert!(named_parameters(&lstm)
        .iter()
        .all(|(_, p)| p.grad().is_some()));
    assert!(
        first.output.requires_grad(),
        "the first chunk's graph is untouched"
    );
}

fn close(a: &Tensor, b: &Tensor) {
    for (x, y) in a.to_vec_f64().iter().zip(b.to_vec_f64()) {
        assert!((x - y).abs() <= 1e-6 + 1e-6 * y.abs(), "{x} vs {y}");
    }
    assert_eq!(a.dims(), b.dims());
}

fn bidir2_uni() -> RnnOptions {
    RnnOptions {
        num_layers: 2,
        ..RnnOptions::default()
    }
}

#[test]
fn batch_first_and_unbatched_inputs_give_the_time_major_values() {
    let mut rng = Rng::new(5);
    let tm = GRU::new(3, 4, bidir2(), &mut rng).unwrap();
    let bf = GRU::new(
        3,
        4,
        RnnOptions {
            batch_first: true,
            ..bidir2()
        },
        &mut rng,
    )
    .unwrap();
    ferrograd_nn::load_state_dict(&bf, &state_dict(&tm)).unwrap();
    let x = randn(&[6, 2, 3], 6);
    let a = tm.forward_with(&x, None, Some(&[6, 4])).unwrap();
    let xb = x.transpose(0, 1).unwrap().contiguous().unwrap();
    let b = bf.forward_with(&xb, None, Some(&[6, 4])).unwrap();
    assert_eq!(b.output.dims(), [2, 6, 8]);
    let bt = b.output.transpose(0, 1).unwrap().contiguous().unwrap();
    assert_eq!(bt.to_vec_f64(), a.output.to_vec_f64());
    assert_eq!(b.state.h.to_vec_f64(), a.state.h.to_vec_f64());
    // one sequence without a batch dim: [T, I] -> [T, D H], state [L D, H]
    let one = x.narrow(1, 0, 1).unwrap().reshape([6, 3]).unwrap();
    let u = tm.forward_with(&one, None, None).unwrap();
    assert_eq!(u.output.dims(), [6, 8]);
    assert_eq!(u.state.h.dims(), [4, 4]);
    let batched = tm
        .forward_with(&one.unsqueeze(1).unwrap(), None, None)
        .unwrap();
    assert_eq!(u.output.to_vec_f64(), batched.output.to_vec_f64());
}

#[test]
fn dropout_acts_between_layers_in_training_only() {
    let opt = RnnOptions {
        num_layers: 2,
        dropout: 0.5,
        ..RnnOptions::default()
    };
    let mut rnn = RNN::new(3, 16, Nonlinearity::Tanh, opt, &mut Rng::new(7)).unwrap();
    let x = randn(&[5, 2, 3], 8);
    let a = rnn.forward(&x).unwrap().to_vec_f64();
    let b = rnn.forward(&x).unwrap().to_vec_f64();
    assert_ne!(a, b, "a new mask each call in training");
    rnn.eval();
    let c = rnn.forward(&x).unwrap().to_vec_f64();
    let d = rnn.forward(&x).unwrap().to_vec_f64();
    assert_eq!(c, d);
    assert_ne!(a, c);
    assert_eq!(
        ferrograd_nn::rng_streams(&rnn).len(),
        1,
        "the mask stream is checkpointed"
    );
}

#[test]
fn bad_inputs_and_states_are_errors_naming_the_shapes() {
    let lstm = LSTM::new(3, 4, bidir2(), &mut Rng::new(9)).unwrap();
    let err = |r: ferrograd_nn::Result<ferrograd_nn::RnnOutput>| r.err().unwrap().to_string();
    let x = randn(&[5, 2, 3], 1);
    assert!(err(lstm.forward_with(&randn(&[5, 2, 7], 1), None, None)).contains("[5, 2, 7]"));
    assert!(err(lstm.forward_with(&x, None, Some(&[5, 6]))).contains("lengths [5, 6]"));
    assert!(err(lstm.forward_with(&x, None, Some(&[5]))).contains("lengths [5]"));
    let bad_h = RnnState {
        h: randn(&[2, 2, 4], 2),
        c: Some(randn(&[4, 2, 4], 3)),
    };
    assert!(err(lstm.forward_with(&x, Some(&bad_h), None))
        .contains("h0 must be [4, 2, 4], got [2, 2, 4]"));
    let no_c = RnnState {
        h: randn(&[4, 2, 4], 2),
        c: None,
    };
    assert!(err(lstm.forward_with(&x, Some(&no_c), None)).contains("no c0"));
    let f64x = x.to_dtype(DType::F64).unwrap();
    assert!(err(lstm.forward_with(&f64x, None, None)).contains("dtype"));
    assert!(LSTM::new(3, 0, RnnOptions::default(), &mut Rng::new(1)).is_err());
    assert!(GRU::new(
        3,
        4,
        RnnOptions {
            dropout: 1.0,
            ..RnnOptions::default()
        },
        &mut Rng::new(1)
    )
    .is_err());
}
