//! `#[derive(Module)]`: PyTorch's names from the field names, through nesting, `Vec`, `Option`,
//! renames, buffers, random streams and skipped fields; the mode reaches every layer.

use ferrograd_nn::{
    named_parameters, rng_streams, state_dict, BatchNorm1d, Dropout, Linear, Module, RngStream,
};
use ferrograd_tensor::{DType, Rng, Tensor};

#[derive(Module)]
struct Block {
    fc: Linear,
    norm: BatchNorm1d,
    drop: Dropout,
    training: bool,
}

#[derive(Module)]
struct Net {
    #[module(rename = "encoder.layers")]
    layers: Vec<Block>,
    head: Option<Linear>,
    missing: Option<Linear>,
    scale: Tensor,
    #[module(buffer)]
    steps: Tensor,
    noise: RngStream,
    #[module(skip)]
    width: usize,
    training: bool,
}

fn net() -> Net {
    let mut rng = Rng::new(0);
    let block = |rng: &mut Rng| Block {
        fc: Linear::new(4, 4, rng).unwrap(),
        norm: BatchNorm1d::new(4).unwrap(),
        drop: Dropout::new(0.1, 3).unwrap(),
        training: true,
    };
    Net {
        layers: vec![block(&mut rng), block(&mut rng)],
        head: Some(Linear::new(4, 2, &mut rng).unwrap()),
        missing: None,
        scale: Tensor::ones([1], DType::F32)
            .unwrap()
            .requires_grad_(true)
            .unwrap(),
        steps: Tensor::zeros([1], DType::I64).unwrap(),
        noise: RngStream::new(9),
        width: 4,
        training: true,
    }
}

#[test]
fn names_follow_the_fields_as_pytorch_names_attributes() {
    let n = net();
    let params: Vec<String> = named_parameters(&n).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        params,
        [
            "encoder.layers.0.fc.weight",
            "encoder.layers.0.fc.bias",
            "encoder.layers.0.norm.weight",
            "encoder.layers.0.norm.bias",
            "encoder.layers.1.fc.weight",
            "encoder.layers.1.fc.bias",
            "encoder.layers.1.norm.weight",
            "encoder.layers.1.norm.bias",
            "head.weight",
            "head.bias",
            "scale",
        ]
    );
    let sd: Vec<String> = state_dict(&n).into_keys().collect();
    for b in [
        "encoder.layers.0.norm.running_mean",
        "encoder.layers.1.norm.num_batches_tracked",
        "steps",
    ] {
        assert!(sd.iter().any(|k| k == b), "{b} missing from {sd:?}");
    }
    let streams: Vec<String> = rng_streams(&n).into_keys().collect();
    assert_eq!(
        streams,
        ["encoder.layers.0.drop", "encoder.layers.1.drop", "noise"]
    );
    assert_eq!(n.width, 4);
}

#[test]
fn the_mode_reaches_every_layer() {
    let mut n = net();
    n.eval();
    assert!(!n.is_training());
    assert!(n
        .layers
        .iter()
        .all(|b| !b.is_training() && !b.norm.is_training() && !b.drop.is_training()));
    assert!(!n.head.as_ref().unwrap().is_training());
    n.train();
    assert!(n.layers[1].drop.is_training());
}
