//! Recommendation: rating prediction (MF, SVD++) by squared error with L2 on what a batch looked
//! up (Koren's objective: `sum (r - r')^2 + reg (|p_u|^2 + |q_i|^2) + bias_reg (b_u^2 + b_i^2)`
//! per rating), and implicit feedback (NeuMF) by binary cross-entropy on sampled negatives or
//! by BPR. The metrics: RMSE and MAE; HR@k and NDCG@k with the NCF protocol (each test
//! interaction ranked among it and 99 sampled items the user never interacted with); full-ranking
//! Recall@k and NDCG@k (every item the user has no training interaction with).

use crate::error::{Result, TrainError};
use crate::step::{Batches, StepOutput, TrainStep};
use ferrograd_data::interactions::Interactions;
use ferrograd_models::recommend::Recommender;
use ferrograd_nn::loss::{binary_cross_entropy_with_logits, Reduction};
use ferrograd_nn::Module;
use ferrograd_tensor::{no_grad, Rng, Tensor};
use std::sync::Arc;

/// A random stream for `(seed, epoch, purpose)`: an epoch's order or negatives are a function of
/// the seed and the epoch alone, so a resumed run draws what the whole run would have.
fn stream(seed: u64, epoch: usize, purpose: u64) -> Rng {
    Rng::new(
        seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// Shuffled batches of interaction rows.
pub struct RowBatches {
    pub rows: Vec<usize>,
    pub batch_size: usize,
    pub seed: u64,
    /// Data-parallel replica `rank` of `world` (each epoch's order sharded as PyTorch's
    /// DistributedSampler does). None: a single process.
    pub shard: Option<(usize, usize)>,
}

/// The number of samples a replica sees of `n` (all of them without a shard).
fn per_replica(n: usize, shard: Option<(usize, usize)>) -> usize {
    n.div_ceil(shard.map_or(1, |(_, w)| w.max(1)))
}

/// A replica's part of an epoch's order.
fn shard<T: Clone>(order: Vec<T>, shard: Option<(usize, usize)>) -> Vec<T> {
    match shard {
        Some((rank, world)) => ferrograd_data::loader::shard_of(order, rank, world),
        None => order,
    }
}

impl Batches for RowBatches {
    type Batch = Vec<usize>;
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(per_replica(self.rows.len(), self.shard).div_ceil(self.batch_size.max(1)))
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Vec<usize>>> + '_>> {
        let mut order = self.rows.clone();
        stream(self.seed, epoch, 1).shuffle(&mut order);
        let order = shard(order, self.shard);
        let b = self.batch_size.max(1);
        let batches: Vec<Vec<usize>> = order.chunks(b).skip(start).map(<[usize]>::to_vec).collect();
        Ok(Box::new(batches.into_iter().map(Ok)))
    }
}

/// Rating prediction on the Trainer.
pub struct RatingStep {
    pub model: Recommender,
    pub data: Arc<Interactions>,
    /// L2 on each looked-up factor row (and SVD++'s implicit sum), per rating.
    pub reg: f64,
    /// L2 on each looked-up bias, per rating.
    pub bias_reg: f64,
    /// Rows evaluated after each epoch.
    pub test_rows: Vec<usize>,
}

/// RMSE and MAE of the model's clamped predictions on `rows`.
pub fn rating_errors(
    model: &Recommender,
    data: &Interactions,
    rows: &[usize],
) -> Result<(f64, f64)> {
    let (mut se, mut ae) = (0.0f64, 0.0f64);
    for chunk in rows.chunks(8192) {
        let users: Vec<u32> = chunk.iter().map(|&k| data.users[k]).collect();
        let items: Vec<u32> = chunk.iter().map(|&k| data.items[k]).collect();
        let pred = model.score_pairs(&users, &items)?;
        for (&k, p) in chunk.iter().zip(pred) {
            let e = (p - data.ratings[k]) as f64;
            se += e * e;
            ae += e.abs();
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(((se / n).sqrt(), ae / n))
}

impl TrainStep for RatingStep {
    type Batch = Vec<usize>;
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, rows: Vec<usize>) -> Result<StepOutput> {
        let d = &self.data;
        let users: Vec<u32> = rows.iter().map(|&k| d.users[k]).collect();
        let items: Vec<u32> = rows.iter().map(|&k| d.items[k]).collect();
        let n = rows.len();
        let target = Tensor::from_vec(rows.iter().map(|&k| d.ratings[k]).collect::<Vec<_>>(), [n])?;
        let s = self.model.score(&users, &items)?;
        let err = s.scores.sub(&target)?;
        let sse = err.mul(&err)?.sum_all()?;
        let sse_value = sse.item()?;
        let mut total = sse;
        if let (Some(f), Some(b)) = (&s.factor_norms, &s.bias_norms) {
            total = total
                .add(&f.mul_scalar(self.reg)?)?
                .add(&b.mul_scalar(self.bias_reg)?)?;
        }
        let loss = total.mul_scalar(1.0 / n as f64)?;
        Ok(StepOutput::new(loss, n).with_sum("train_mse", sse_value))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        if self.test_rows.is_empty() {
            return Ok(Vec::new());
        }
        let (rmse, mae) = rating_errors(&self.model, &self.data, &self.test_rows)?;
        Ok(vec![("test_rmse".into(), rmse), ("test_mae".into(), mae)])
    }
}

/// Each user's items, sorted, for membership tests.
pub fn seen_items(data: &Interactions, rows: &[usize]) -> Vec<Vec<u32>> {
    let mut seen = data.items_by_user(rows);
    for s in &mut seen {
        s.sort_unstable();
        s.dedup();
    }
    seen
}

/// An item the user has not interacted with (per `seen`), uniform over those.
fn sample_unseen(rng: &mut Rng, seen: &[u32], items: usize) -> u32 {
    loop {
        let j = rng.below(items as u64) as u32;
        if seen.binary_search(&j).is_err() {
            return j;
        }
    }
}

/// How implicit feedback becomes a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImplicitLoss {
    /// Binary cross-entropy: each positive with `negatives` sampled items labelled 0.
    Bce,
    /// Bayesian personalised ranking: `-log sigmoid(s(u, pos) - s(u, neg))` per sampled pair.
    Bpr,
}

/// One batch of implicit feedback: `(user, item, label)` for BCE, `(user, pos, neg)` for BPR.
pub struct ImplicitBatch {
    pub users: Vec<u32>,
    pub items: Vec<u32>,
    /// BCE: each pair's label (1 for a positive, 0 for a sampled negative); empty for BPR.
    pub labels: Vec<f32>,
    /// BPR: each pair's sampled negative item; empty for BCE.
    pub negatives: Vec<u32>,
}

/// Each epoch: every training positive with `negatives` items the user never interacted with in
/// training, sampled afresh from `(seed, epoch)`, shuffled and batched (NCF's procedure).
pub struct ImplicitBatches {
    pub positives: Vec<(u32, u32)>,
    pub seen: Arc<Vec<Vec<u32>>>,
    pub items: usize,
    pub negatives: usize,
    pub batch_size: usize,
    pub loss: ImplicitLoss,
    pub seed: u64,
    /// Data-parallel replica `rank` of `world`: every replica samples the same negatives and
    /// order, and takes its shard of it. None: a single process.
    pub shard: Option<(usize, usize)>,
}

impl ImplicitBatches {
    fn samples(&self) -> usize {
        match self.loss {
            ImplicitLoss::Bce => self.positives.len() * (1 + self.negatives),
            ImplicitLoss::Bpr => self.positives.len() * self.negatives.max(1),
        }
    }
}

impl Batches for ImplicitBatches {
    type Batch = ImplicitBatch;
    fn batches_per_epoch(&self) -> Option<usize> {
        Some(per_replica(self.samples(), self.shard).div_ceil(self.batch_size.max(1)))
    }
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<ImplicitBatch>> + '_>> {
        let mut rng = stream(self.seed, epoch, 2);
        // (user, item, label or negative)
        let mut all: Vec<(u32, u32, u32)> = Vec::with_capacity(self.samples());
        for &(u, i) in &self.positives {
            let seen = &self.seen[u as usize];
            match self.loss {
                ImplicitLoss::Bce => {
                    all.push((u, i, 1));
                    for _ in 0..self.negatives {
                        all.push((u, sample_unseen(&mut rng, seen, self.items), 0));
                    }
                }
                ImplicitLoss::Bpr => {
                    for _ in 0..self.negatives.max(1) {
                        all.push((u, i, sample_unseen(&mut rng, seen, self.items)));
                    }
                }
            }
        }
        rng.shuffle(&mut all);
        let all = shard(all, self.shard);
        let b = self.batch_size.max(1);
        let bpr = self.loss == ImplicitLoss::Bpr;
        let batches: Vec<ImplicitBatch> = all
            .chunks(b)
            .skip(start)
            .map(|c| ImplicitBatch {
                users: c.iter().map(|x| x.0).collect(),
                items: c.iter().map(|x| x.1).collect(),
                labels: if bpr {
                    Vec::new()
                } else {
                    c.iter().map(|x| x.2 as f32).collect()
                },
                negatives: if bpr {
                    c.iter().map(|x| x.2).collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        Ok(Box::new(batches.into_iter().map(Ok)))
    }
}

/// NCF's evaluation: for each test interaction, its item and `n` items the user never
/// interacted with anywhere in the data, sampled from `seed`.
pub struct Candidates {
    /// (user, the held-out item, the sampled negatives)
    pub lists: Vec<(u32, u32, Vec<u32>)>,
}

impl Candidates {
    pub fn sample(data: &Interactions, test_rows: &[usize], n: usize, seed: u64) -> Result<Self> {
        let all: Vec<usize> = (0..data.len()).collect();
        let seen = seen_items(data, &all);
        let mut rng = Rng::new(seed);
        let mut lists = Vec::with_capacity(test_rows.len());
        for &k in test_rows {
            let u = data.users[k];
            let s = &seen[u as usize];
            if data.num_items() - s.len() < n {
                return Err(TrainError::config(format!(
                    "user {} has interacted with {} of the {} items: fewer than {n} are left to rank the held-out item among",
                    data.user_ids[u as usize],
                    s.len(),
                    data.num_items()
                )));
            }
            let mut negs: Vec<u32> = Vec::with_capacity(n);
            while negs.len() < n {
                let j = sample_unseen(&mut rng, s, data.num_items());
                if !negs.contains(&j) {
                    negs.push(j);
                }
            }
            lists.push((u, data.items[k], negs));
        }
        Ok(Candidates { lists })
    }

    /// HR@k and NDCG@k: the held-out item's rank among its candidates (ties count against it).
    pub fn hit_ndcg(&self, model: &Recommender, k: usize) -> Result<(f64, f64)> {
        let (mut hits, mut ndcg) = (0.0, 0.0);
        for (u, pos, negs) in &self.lists {
            let mut items = vec![*pos];
            items.extend_from_slice(negs);
            let users = vec![*u; items.len()];
            let s = model.score_pairs(&users, &items)?;
            let rank = s[1..].iter().filter(|&&v| v >= s[0]).count();
            if rank < k {
                hits += 1.0;
                ndcg += 1.0 / ((rank + 2) as f64).log2();
            }
        }
        let n = self.lists.len().max(1) as f64;
        Ok((hits / n, ndcg / n))
    }
}

/// Full-ranking Recall@k and NDCG@k: each test user's items ranked against every item they have
/// no training interaction with; `relevant[u]` are the user's test items.
pub fn full_ranking(
    model: &Recommender,
    train_seen: &[Vec<u32>],
    relevant: &[Vec<u32>],
    k: usize,
) -> Result<(f64, f64)> {
    let (mut recall, mut ndcg, mut users) = (0.0, 0.0, 0usize);
    for (u, rel) in relevant.iter().enumerate() {
        if rel.is_empty() {
            continue;
        }
        users += 1;
        let s = model.score_all_items(u as u32)?;
        let seen = &train_seen[u];
        let mut order: Vec<u32> = (0..s.len() as u32)
            .filter(|j| seen.binary_search(j).is_err())
            .collect();
        order.sort_by(|&a, &b| s[b as usize].total_cmp(&s[a as usize]).then(a.cmp(&b)));
        let top = &order[..k.min(order.len())];
        let hits: Vec<usize> = top
            .iter()
            .enumerate()
            .filter(|(_, j)| rel.contains(j))
            .map(|(r, _)| r)
            .collect();
        recall += hits.len() as f64 / rel.len().min(k) as f64;
        let dcg: f64 = hits.iter().map(|&r| 1.0 / ((r + 2) as f64).log2()).sum();
        let idcg: f64 = (0..rel.len().min(k))
            .map(|r| 1.0 / ((r + 2) as f64).log2())
            .sum();
        ndcg += dcg / idcg;
    }
    let n = users.max(1) as f64;
    Ok((recall / n, ndcg / n))
}

/// Implicit feedback on the Trainer, evaluated by HR@k and NDCG@k on NCF candidates.
pub struct ImplicitStep {
    pub model: Recommender,
    pub loss: ImplicitLoss,
    pub candidates: Candidates,
    pub k: usize,
}

impl TrainStep for ImplicitStep {
    type Batch = ImplicitBatch;
    fn model(&self) -> &dyn Module {
        &self.model
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        &mut self.model
    }
    fn forward(&mut self, b: ImplicitBatch) -> Result<StepOutput> {
        let n = b.users.len();
        let loss = match self.loss {
            ImplicitLoss::Bce => {
                let s = self.model.score(&b.users, &b.items)?.scores;
                let y = Tensor::from_vec(b.labels, [n])?;
                binary_cross_entropy_with_logits(&s, &y, None, Reduction::Mean)?
            }
            ImplicitLoss::Bpr => {
                // one pass over positives and negatives together: [pos..., neg...]
                let mut users = b.users.clone();
                users.extend_from_slice(&b.users);
                let mut items = b.items.clone();
                items.extend_from_slice(&b.negatives);
                let s = self.model.score(&users, &items)?.scores;
                let diff = s.narrow(0, 0, n)?.sub(&s.narrow(0, n, n)?)?;
                let ones = Tensor::from_vec(vec![1.0f32; n], [n])?;
                binary_cross_entropy_with_logits(&diff, &ones, None, Reduction::Mean)?
            }
        };
        let v = loss.item()?;
        Ok(StepOutput::new(loss, n).with_sum("train_loss", v * n as f64))
    }
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>> {
        let (hr, ndcg) = no_grad(|| self.candidates.hit_ndcg(&self.model, self.k))?;
        Ok(vec![("test_hr".into(), hr), ("test_ndcg".into(), ndcg)])
    }
}
