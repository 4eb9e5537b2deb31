//! Recommendation workloads of `ferrograd-bench recommend`, on MovieLens-100k
//! (data/movielens-100k, from scripts/fetch-movielens.sh), against PyTorch with
//! `nn.Embedding(sparse=True)` and `SparseAdam`:
//!
//! - `mf_epoch_256`: one epoch of biased MF (dim 64, batch 256, all 100,000 ratings in a
//!   seeded order): lookups, the squared error with L2 on the looked-up rows, backward, a
//!   SparseAdam step; the median of 3 epochs after one warm-up epoch;
//! - `mf_score_all`: every item's predicted rating for every user (943 x 1682), the median of
//!   10 passes after 2 warm-up passes.

use ferrograd_data::interactions::read_interactions;
use ferrograd_models::recommend::{RecArch, RecConfig, Recommender};
use ferrograd_nn::optim::{Optimizer, SparseAdam};
use ferrograd_nn::parameters;
use ferrograd_tensor::{Rng, Tensor};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

pub const WORKLOADS: [&str; 2] = ["mf_epoch_256", "mf_score_all"];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn worker(work: &str) -> Result<Value, String> {
    let e = |x: &dyn std::fmt::Display| x.to_string();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/movielens-100k/ml-100k.inter");
    let data =
        read_interactions(&path, None).map_err(|x| format!("{x} (scripts/fetch-movielens.sh)"))?;
    let config = RecConfig {
        arch: RecArch::Mf,
        dim: 64,
        user_ids: data.user_ids.clone(),
        item_ids: data.item_ids.clone(),
        scale: (1.0, 5.0),
        implicit_len: 0,
    };
    let all: Vec<usize> = (0..data.len()).collect();
    let model = Recommender::new(config, data.mean_rating(&all), None, 0.1, &mut Rng::new(0))
        .map_err(|x| e(&x))?;
    match work {
        "mf_epoch_256" => {
            let mut opt = SparseAdam::new(parameters(&model), 3e-3, 0.0).map_err(|x| e(&x))?;
            let mut times = Vec::new();
            for epoch in 0..4 {
                let mut order = all.clone();
                Rng::new(epoch).shuffle(&mut order);
                let t0 = Instant::now();
                for b in order.chunks(256) {
                    let users: Vec<u32> = b.iter().map(|&k| data.users[k]).collect();
                    let items: Vec<u32> = b.iter().map(|&k| data.items[k]).collect();
                    let r: Vec<f32> = b.iter().map(|&k| data.ratings[k]).collect();
                    let n = b.len();
                    let step = || -> ferrograd_nn::Result<()> {
                        opt.zero_grad();
                        let s = model.score(&users, &items)?;
                        let err = s.scores.sub(&Tensor::from_vec(r.clone(), [n])?)?;
                        let (Some(f), Some(bn)) = (&s.factor_norms, &s.bias_norms) else {
                            return Ok(());
                        };
                        let loss = err
                            .mul(&err)?
                            .sum_all()?
                            .add(&f.mul_scalar(0.1)?)?
                            .add(&bn.mul_scalar(0.01)?)?
                            .mul_scalar(1.0 / n as f64)?;
                        loss.backward()?;
                        Ok(())
                    };
                    step().map_err(|x| e(&x))?;
                    opt.step().map_err(|x| e(&x))?;
                }
                if epoch > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let s = median(times);
            Ok(json!({"seconds": s, "ratings_per_s": data.len() as f64 / s}))
        }
        "mf_score_all" => {
            let users: Vec<u32> = (0..data.num_users() as u32).collect();
            let mut times = Vec::new();
            for i in 0..12 {
                let t0 = Instant::now();
                let m = model.score_matrix(&users).map_err(|x| e(&x))?;
                std::hint::black_box(m);
                if i >= 2 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let s = median(times);
            Ok(
                json!({"seconds": s, "scores_per_s": (data.num_users() * data.num_items()) as f64 / s}),
            )
        }
        _ => Err(format!("unknown workload {work}")),
    }
}
