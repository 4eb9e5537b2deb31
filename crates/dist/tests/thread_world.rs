//! Data-parallel training on replicas that are threads: N replicas at batch b per replica give
//! the weights of one process at batch N*b (to the rounding of the gradient sum), start from rank
//! 0's weights whatever they built, and give the same bits every time.

use ferrograd_data::{DataLoader, Mnist, Normalize, Split};
use ferrograd_dist::{Collective, DataParallel, Flat, Pending, ThreadWorld};
use ferrograd_models::ModelKind;
use ferrograd_nn::{named_parameters, parameters, Adam, Optimizer, Sgd};
use ferrograd_tensor::{Rng, Tensor};
use ferrograd_train::tasks::classify::{ClassifyStep, Objective};
use ferrograd_train::{Strategy, TrainConfig, Trainer};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const IMAGES: usize = 640;

/// A run's trained weights by name, and its logged losses.
type Run = (Vec<(String, Vec<f32>)>, Vec<f64>);

fn mnist() -> Arc<Mnist> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    Arc::new(
        Mnist::load(dir, Split::Train)
            .expect("the bundled MNIST")
            .with_normalize(Some(Normalize::MNIST))
            .truncate(IMAGES),
    )
}

#[derive(Clone, Copy)]
enum Opt {
    Sgd,
    Adam,
}

/// Trains `kind` for 2 epochs at `batch` per replica on `world` (None: one process) and returns
/// the trained weights, by name. Rank r builds its model from seed `seed + r`: only rank 0's may
/// survive the start.
fn train(
    kind: ModelKind,
    opt: Opt,
    batch: usize,
    world: Option<(Box<dyn Strategy>, usize, usize)>,
    seed: u64,
) -> Run {
    let rank = world.as_ref().map_or(0, |w| w.1);
    let mut rng = Rng::new(seed + rank as u64);
    let model = ferrograd_models::build(kind, 10, &mut rng).unwrap();
    let mut loader = DataLoader::new(mnist(), batch, true, 7).unwrap();
    let o: Box<dyn Optimizer> = match opt {
        Opt::Sgd => Box::new(Sgd::new(parameters(model.as_ref()), 0.05, 0.9, 1e-4).unwrap()),
        Opt::Adam => Box::new(Adam::new(parameters(model.as_ref()), 1e-3, 0.0).unwrap()),
    };
    let cfg = TrainConfig {
        epochs: 2,
        log_every: 1,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(cfg, o, None);
    if let Some((s, r, n)) = world {
        loader = loader.with_shard(r, n).unwrap();
        trainer.set_strategy(s);
    }
    let mut step = ClassifyStep {
        model,
        objective: Objective::CrossEntropy,
        classes: 10,
        held_out: None,
        eval_batch: 100,
    };
    let summary = trainer.fit(&mut step, &mut loader, None).unwrap();
    assert_eq!(
        summary.steps,
        2 * IMAGES / (batch * world_size(rank, batch))
    );
    let losses = summary
        .history
        .iter()
        .filter_map(|r| r.get("loss"))
        .collect();
    let weights = named_parameters(step.model.as_ref())
        .into_iter()
        .map(|(n, t)| (n, t.to_vec::<f32>().unwrap()))
        .collect();
    (weights, losses)
}

// the number of replicas is implied by the per-replica batch in these tests
fn world_size(_rank: usize, batch: usize) -> usize {
    if batch == 64 {
        1
    } else {
        64 / batch
    }
}

fn data_parallel(kind: ModelKind, opt: Opt, n: usize, buckets: (usize, usize)) -> Vec<Run> {
    ThreadWorld::run(n, |w| {
        let r = w.rank();
        let dp = DataParallel::new(w).with_bucket_bytes(buckets.0, buckets.1);
        train(kind, opt, 64 / n, Some((Box::new(dp), r, n)), 3)
    })
}

/// The largest difference relative to the tensor's largest value, over all tensors.
fn worst_relative(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    a.iter()
        .zip(b)
        .map(|((na, x), (nb, y))| {
            assert_eq!(na, nb);
            let scale = y.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let d = x
                .iter()
                .zip(y)
                .fold(0f64, |m, (p, q)| m.max((p - q).abs() as f64));
            d / scale
        })
        .fold(0.0, f64::max)
}

fn check(kind: ModelKind, opt: Opt) {
    let (one, one_losses) = train(kind, opt, 64, None, 3);
    for n in [2, 4] {
        let runs = data_parallel(kind, opt, n, (1 << 20, 25 << 20));
        for (r, (w, _)) in runs.iter().enumerate() {
            // every replica holds the same weights, bit for bit
            assert_eq!(w, &runs[0].0, "rank {r} of {n} differs from rank 0");
        }
        let worst = worst_relative(&runs[0].0, &one);
        // Adam divides each update by the gradient's own running scale, so for weights whose
        // gradient is near zero (MNIST's border pixels) a rounding difference of the gradient
        // sum is a relative difference of the update: SGD shows the sum's rounding itself
        let bound = match opt {
            Opt::Sgd => 1e-6,
            Opt::Adam => 1e-4,
        };
        assert!(
            worst <= bound,
            "{n} replicas at batch {} against one at 64 ({}): worst relative difference {worst:e}",
            64 / n,
            match opt {
                Opt::Sgd => "SGD",
                Opt::Adam => "Adam",
            }
        );
        // the loss of a step is the replicas' mean: the one process's loss
        for (a, b) in runs[0].1.iter().zip(&one_losses) {
            assert!((a - b).abs() <= 1e-5 * b.abs(), "loss {a} against {b}");
        }
        assert_eq!(runs[0].1.len(), one_losses.len());
    }
}

#[test]
fn two_and_four_replicas_equal_one_process_at_the_whole_batch_mlp() {
    check(ModelKind::Mlp, Opt::Sgd);
    check(ModelKind::Mlp, Opt::Adam);
}

#[test]
fn two_and_four_replicas_equal_one_process_at_the_whole_batch_lenet5() {
    check(ModelKind::LeNet5, Opt::Sgd);
}

#[test]
fn the_same_run_gives_the_same_bits_and_the_bucket_sizes_do_not_change_them() {
    let a = data_parallel(ModelKind::LeNet5, Opt::Adam, 2, (1 << 20, 25 << 20));
    let b = data_parallel(ModelKind::LeNet5, Opt::Adam, 2, (1 << 20, 25 << 20));
    assert_eq!(a[0].0, b[0].0);
    // one bucket per parameter, or nearly: the sums are the same elementwise
    let c = data_parallel(ModelKind::LeNet5, Opt::Adam, 2, (64, 64));
    assert_eq!(a[0].0, c[0].0);
}

/// Counts the sums started, to see them start during the backward.
struct Counting<C> {
    inner: C,
    started: Arc<AtomicUsize>,
}

impl<C: Collective> Collective for Counting<C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn start_sum(&mut self, data: Flat) -> ferrograd_train::Result<Pending> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.inner.start_sum(data)
    }
    fn broadcast_bytes(&mut self, b: &mut Vec<u8>) -> ferrograd_train::Result<()> {
        self.inner.broadcast_bytes(b)
    }
}

#[test]
fn buckets_start_during_the_backward_last_layer_first() {
    ThreadWorld::run(2, |w| {
        let started = Arc::new(AtomicUsize::new(0));
        let mut dp = DataParallel::new(Counting {
            inner: w,
            started: started.clone(),
        })
        .with_bucket_bytes(4, 4);
        let mut rng = Rng::new(1);
        let model = ferrograd_models::build(ModelKind::Mlp, 10, &mut rng).unwrap();
        let params = parameters(model.as_ref());
        dp.start(&params, &[]).unwrap();
        started.store(0, Ordering::SeqCst);
        // fc2 first: the buckets hold the parameters in reverse order
        let order: Vec<Vec<usize>> = dp.buckets().iter().map(|b| b.members.clone()).collect();
        assert_eq!(order, vec![vec![3], vec![2], vec![1], vec![0]]);
        let x = Tensor::ones([4, 784], ferrograd_tensor::DType::F32).unwrap();
        let loss = model.forward(&x).unwrap().sum_all().unwrap();
        let mut seen_before_end = Vec::new();
        loss.backward_with_hook(&mut |t| {
            seen_before_end.push(started.load(Ordering::SeqCst));
            dp.grad_ready(t)
                .map_err(|e| ferrograd_tensor::Error::Value {
                    op: "test",
                    msg: e.to_string(),
                })
        })
        .unwrap();
        // the linear layer hands over its weight, then its bias: fc2's two buckets start when
        // fc2.bias is handed over, before the backward reaches fc1
        assert_eq!(seen_before_end, vec![0, 0, 2, 2]);
        dp.finish_gradients().unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 4);
        for p in &params {
            assert!(p.grad().is_some());
        }
    });
}

#[test]
fn a_replica_with_another_model_is_refused() {
    let errs = ThreadWorld::run(2, |w| {
        let r = w.rank();
        let mut dp = DataParallel::new(w);
        let mut rng = Rng::new(1);
        let kind = if r == 0 {
            ModelKind::Mlp
        } else {
            ModelKind::LeNet5
        };
        let model = ferrograd_models::build(kind, 10, &mut rng).unwrap();
        dp.start(&parameters(model.as_ref()), &[])
            .err()
            .map(|e| e.to_string())
    });
    for e in errs {
        let e = e.unwrap_or_default();
        assert!(
            e.contains("rank 1 built a model with other parameters than rank 0"),
            "{e}"
        );
    }
}

#[test]
fn row_sparse_gradients_are_summed_over_the_union_of_rows() {
    let got = ThreadWorld::run(2, |w| {
        let r = w.rank();
        let mut dp = DataParallel::new(w);
        let table = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), [6, 2])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        dp.start(std::slice::from_ref(&table), &[]).unwrap();
        // rank 0 looks up rows 1 and 3 (3 twice), rank 1 rows 3 and 5
        let ids: Vec<i64> = if r == 0 { vec![1, 3, 3] } else { vec![3, 5] };
        let n = ids.len();
        let ids = Tensor::from_vec(ids, [n]).unwrap();
        let out = Tensor::embedding_sparse(&table, &ids, true).unwrap();
        out.sum_all().unwrap().backward().unwrap();
        dp.finish_gradients().unwrap();
        let g = table.sparse_grad().unwrap();
        (g.rows.clone(), g.values.to_vec::<f32>().unwrap())
    });
    assert_eq!(got[0], got[1]);
    // row 1: 1 on rank 0; row 3: 2 + 1; row 5: 1; halved
    assert_eq!(got[0].0, vec![1, 3, 5]);
    assert_eq!(got[0].1, vec![0.5, 0.5, 1.5, 1.5, 0.5, 0.5]);
}
