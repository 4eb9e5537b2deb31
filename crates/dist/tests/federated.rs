//! Federated averaging: a round spread over replicas gives the bits of the same round in one
//! process; FedSGD (E = 1, B = inf) is one SGD step on the sample-weighted mean of the chosen
//! clients' gradients, computed here by hand; FedProx's term pulls clients toward the global
//! model.

use ferrograd_data::{Dataset, Mnist, Split, Subset};
use ferrograd_dist::federated::{partition, FedAvg, FedConfig, Partition};
use ferrograd_dist::{Collective, ThreadWorld};
use ferrograd_models::ModelKind;
use ferrograd_nn::loss::{cross_entropy, ClassLossOptions};
use ferrograd_nn::parameters;
use ferrograd_tensor::Rng;
use std::path::PathBuf;
use std::sync::Arc;

fn mnist(split: Split, n: usize) -> Arc<Mnist> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    Arc::new(
        Mnist::load(dir, split)
            .expect("the bundled MNIST")
            .truncate(n),
    )
}

fn labels(m: &Mnist) -> Vec<u8> {
    (0..m.len()).filter_map(|i| m.digit(i)).collect()
}

fn config(local_batch: Option<usize>, epochs: usize, mu: f64) -> FedConfig {
    FedConfig {
        clients: 10,
        fraction: 0.3,
        local_epochs: epochs,
        local_batch,
        lr: 0.1,
        mu,
        seed: 5,
        eval_batch: 500,
    }
}

fn weights(f: &FedAvg<'_>) -> Vec<Vec<f32>> {
    parameters(f.model())
        .iter()
        .map(|p| p.to_vec::<f32>().unwrap())
        .collect()
}

/// Two rounds of FedAvg on `world` replicas (None: one process); rank 0's weights and accuracy.
fn run(world: Option<usize>, cfg: FedConfig, part: Partition) -> (Vec<Vec<f32>>, Vec<f64>) {
    let train = mnist(Split::Train, 600);
    let test = mnist(Split::Test, 500);
    let go = |comm: Option<&mut dyn Collective>| {
        let model = ferrograd_models::build(ModelKind::TwoNn, 10, &mut Rng::new(1)).unwrap();
        let parts = partition(&labels(&train), 10, part, 2).unwrap();
        let mut f =
            FedAvg::new(cfg.clone(), model, train.clone(), test.clone(), parts, comm).unwrap();
        let accs: Vec<f64> = (0..2).map(|r| f.round(r).unwrap().test_acc).collect();
        (weights(&f), accs)
    };
    match world {
        None => go(None),
        Some(n) => ThreadWorld::run(n, |mut w| go(Some(&mut w)))
            .into_iter()
            .next()
            .unwrap(),
    }
}

#[test]
fn clients_spread_over_replicas_give_the_bits_of_one_process() {
    for part in [Partition::Iid, Partition::NonIid] {
        let one = run(None, config(Some(10), 2, 0.0), part);
        for n in [2, 3] {
            let many = run(Some(n), config(Some(10), 2, 0.0), part);
            assert_eq!(one.0, many.0, "{part:?} on {n} replicas: other weights");
            assert_eq!(one.1, many.1, "{part:?} on {n} replicas: other accuracies");
        }
        if part == Partition::Iid {
            // 60 images a client, 3 clients a round: twice chance after two rounds (a non-IID
            // client holds one or two digits: two rounds of three of them learn little)
            assert!(one.1[1] > 0.2, "it learns: {:?}", one.1);
        }
    }
    // FedProx too
    let one = run(None, config(Some(10), 2, 0.5), Partition::Iid);
    assert_eq!(
        one.0,
        run(Some(2), config(Some(10), 2, 0.5), Partition::Iid).0
    );
}

#[test]
fn fedsgd_is_one_step_on_the_weighted_mean_of_the_clients_gradients() {
    let train = mnist(Split::Train, 600);
    let test = mnist(Split::Test, 100);
    let cfg = config(None, 1, 0.0);
    // unequal clients, so that the weighting by sample counts matters
    let parts: Vec<Vec<usize>> = (0..10)
        .map(|k| {
            (0..600)
                .filter(|i| i % 10 == k && (k % 2 == 0 || i % 20 < 10))
                .collect()
        })
        .collect();
    let model = ferrograd_models::build(ModelKind::TwoNn, 10, &mut Rng::new(1)).unwrap();
    let mut f = FedAvg::new(cfg.clone(), model, train.clone(), test, parts.clone(), None).unwrap();
    let chosen = f.choose(0);
    // by hand: each chosen client's gradient of the mean loss over its whole set
    let reference = ferrograd_models::build(ModelKind::TwoNn, 10, &mut Rng::new(1)).unwrap();
    let params = parameters(reference.as_ref());
    let start: Vec<Vec<f64>> = params.iter().map(|p| p.to_vec_f64()).collect();
    let total: usize = chosen.iter().map(|&k| parts[k].len()).sum();
    let mut mean_grad: Vec<Vec<f64>> = start.iter().map(|v| vec![0.0; v.len()]).collect();
    for &k in &chosen {
        let sub = Subset::new(train.clone(), parts[k].clone()).unwrap();
        let (x, y) = sub.batch(&(0..sub.len()).collect::<Vec<_>>()).unwrap();
        for p in &params {
            p.zero_grad();
        }
        let loss = cross_entropy(
            &reference.forward(&x).unwrap(),
            &y,
            &ClassLossOptions::default(),
        )
        .unwrap();
        loss.backward().unwrap();
        let w = parts[k].len() as f64 / total as f64;
        for (m, p) in mean_grad.iter_mut().zip(&params) {
            let g = p.grad().unwrap().to_vec_f64();
            for (a, b) in m.iter_mut().zip(g) {
                *a += w * b;
            }
        }
    }
    f.round(0).unwrap();
    let got = weights(&f);
    let mut worst = 0.0f64;
    for ((s, g), w) in start.iter().zip(&mean_grad).zip(&got) {
        let scale = s.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for ((s, g), w) in s.iter().zip(g).zip(w) {
            let expected = s - cfg.lr * g;
            worst = worst.max((expected - *w as f64).abs() / scale);
        }
    }
    assert!(worst < 1e-6, "FedSGD against one step by hand: {worst:e}");
}

#[test]
fn the_proximal_term_keeps_clients_near_the_global_model() {
    // how far the global model moves in one round, without and with a strong pull
    let moved = |mu: f64| {
        let train = mnist(Split::Train, 600);
        let model = ferrograd_models::build(ModelKind::TwoNn, 10, &mut Rng::new(1)).unwrap();
        let before: Vec<f32> = parameters(model.as_ref())
            .iter()
            .flat_map(|p| p.to_vec::<f32>().unwrap())
            .collect();
        let parts = partition(&labels(&train), 10, Partition::NonIid, 2).unwrap();
        let mut f = FedAvg::new(
            config(Some(10), 5, mu),
            model,
            train,
            mnist(Split::Test, 100),
            parts,
            None,
        )
        .unwrap();
        f.round(0).unwrap();
        let after: Vec<f32> = weights(&f).into_iter().flatten().collect();
        before
            .iter()
            .zip(&after)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let (free, pulled) = (moved(0.0), moved(5.0));
    assert!(
        pulled < 0.7 * free,
        "mu 5 moved the model {pulled}, mu 0 {free}"
    );
}
