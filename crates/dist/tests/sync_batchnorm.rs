//! SyncBatchNorm on replicas equals BatchNorm on their batches joined: outputs, the gradient of
//! every input sample (whose path through the batch statistics crosses the replicas), the
//! parameters' gradients (summed over the replicas) and the running estimates.

use ferrograd_dist::{Collective, SyncBatchNorm, ThreadWorld};
use ferrograd_nn::{BatchNorm2d, Forward};
use ferrograd_tensor::{DType, Rng, Tensor};

const N: usize = 8;
const SAMPLE: usize = 3 * 4 * 4;

struct Out {
    y: Vec<f32>,
    gx: Vec<f32>,
    gw: Vec<f32>,
    gb: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

fn data() -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(4);
    let x = Tensor::randn([N, 3, 4, 4], DType::F32, &mut rng).unwrap();
    let r = Tensor::randn([N, 3, 4, 4], DType::F32, &mut rng).unwrap();
    // an offset, so that the mean matters
    let x: Vec<f32> = x
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|v| v * 2.0 + 1.5)
        .collect();
    (x, r.to_vec::<f32>().unwrap())
}

/// Two training steps (the running estimates move twice) on samples `lo..hi`; the gradients of
/// the second.
fn run(
    layer: &dyn Forward,
    lo: usize,
    hi: usize,
    params: (&Tensor, &Tensor),
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (x, r) = data();
    let n = hi - lo;
    let mut last = None;
    for _ in 0..2 {
        params.0.zero_grad();
        params.1.zero_grad();
        let xs = Tensor::from_vec(x[lo * SAMPLE..hi * SAMPLE].to_vec(), [n, 3, 4, 4])
            .unwrap()
            .requires_grad_(true)
            .unwrap();
        let rs = Tensor::from_vec(r[lo * SAMPLE..hi * SAMPLE].to_vec(), [n, 3, 4, 4]).unwrap();
        let y = layer.forward(&xs).unwrap();
        y.mul(&rs).unwrap().sum_all().unwrap().backward().unwrap();
        last = Some((
            y.to_vec::<f32>().unwrap(),
            xs.grad().unwrap().to_vec::<f32>().unwrap(),
            params.0.grad().unwrap().to_vec::<f32>().unwrap(),
            params.1.grad().unwrap().to_vec::<f32>().unwrap(),
        ));
    }
    last.unwrap()
}

fn single() -> Out {
    let bn = BatchNorm2d::new(3).unwrap();
    let p = ferrograd_nn::parameters(&bn);
    let (y, gx, gw, gb) = run(&bn, 0, N, (&p[0], &p[1]));
    Out {
        y,
        gx,
        gw,
        gb,
        mean: bn.running_mean().to_vec::<f32>().unwrap(),
        var: bn.running_var().to_vec::<f32>().unwrap(),
    }
}

fn replicas(world: usize) -> Vec<Out> {
    ThreadWorld::run(world, |w| {
        let rank = w.rank();
        let per = N / world;
        let bn = SyncBatchNorm::new(3, Box::new(w)).unwrap();
        let p = ferrograd_nn::parameters(&bn);
        let (y, gx, gw, gb) = run(&bn, rank * per, (rank + 1) * per, (&p[0], &p[1]));
        Out {
            y,
            gx,
            gw,
            gb,
            mean: bn.running_mean().to_vec::<f32>().unwrap(),
            var: bn.running_var().to_vec::<f32>().unwrap(),
        }
    })
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        worst / scale < 2e-5,
        "{what}: worst relative difference {}",
        worst / scale
    );
}

#[test]
fn replicas_equal_batchnorm_on_the_joined_batch() {
    let one = single();
    for world in [1, 2, 4] {
        let outs = replicas(world);
        let per = N / world * SAMPLE;
        for (rank, o) in outs.iter().enumerate() {
            let part = rank * per..(rank + 1) * per;
            close(
                &o.y,
                &one.y[part.clone()],
                &format!("{world} replicas: output of rank {rank}"),
            );
            close(
                &o.gx,
                &one.gx[part],
                &format!("{world} replicas: dL/dx on rank {rank}"),
            );
            close(&o.mean, &one.mean, "running mean");
            close(&o.var, &one.var, "running variance");
        }
        let sum = |f: fn(&Out) -> &Vec<f32>| -> Vec<f32> {
            (0..3).map(|c| outs.iter().map(|o| f(o)[c]).sum()).collect()
        };
        close(
            &sum(|o| &o.gw),
            &one.gw,
            "dL/dweight summed over the replicas",
        );
        close(
            &sum(|o| &o.gb),
            &one.gb,
            "dL/dbias summed over the replicas",
        );
    }
}
