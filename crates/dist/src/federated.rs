//! Federated averaging (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks
//! from Decentralized Data"): the training set is split among K clients; each round a seeded
//! random fraction C of them (at least one) starts from the global model, trains locally for E
//! epochs of plain SGD at batch B on its own samples, and the server replaces the global model
//! with the average of theirs weighted by their sample counts:
//!
//! `w <- sum_k (n_k / n) w_k`, n the samples of the round's clients.
//!
//! FedSGD, the paper's baseline, is the case E = 1, B = infinity (one gradient step on each
//! client's whole set: averaging the weights is averaging the gradients). FedProx (Li et al.
//! 2020) adds `mu/2 |w - w_global|^2` to each client's loss.
//!
//! A client's local training runs on the Trainer (a ClassifyStep, a DataLoader over its samples,
//! SGD). Clients are simulated in one process or spread over the ranks of a [`Collective`]: the
//! round's j-th client trains on rank `j % world`, each rank puts its clients' weights in their
//! rows of an `[m, P]` buffer (zeros elsewhere) and one sum gives every rank every client's
//! weights (adding zeros is exact), so the average is computed in client order on every rank
//! and the numbers are the same bits however many ranks there are.

use crate::collective::{Collective, Flat};
use ferrograd_data::{DataLoader, Dataset, Subset};
use ferrograd_nn::{parameters, Forward, Module, Sgd};
use ferrograd_tensor::{DType, Rng, Tensor};
use ferrograd_train::step::{StepOutput, TrainStep};
use ferrograd_train::tasks::classify::{evaluate, ClassifyStep, Objective};
use ferrograd_train::{Result, TrainConfig, TrainError, Trainer};
use std::sync::Arc;
use std::time::Instant;

/// How the training samples are split among the clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// A seeded shuffle cut into K parts of (nearly) equal size (600 images each for MNIST and
    /// 100 clients).
    Iid,
    /// The paper's pathological split: the samples sorted by label, cut into 2K shards of
    /// `n / 2K` (300 for MNIST), two seeded random shards per client, so most clients see two
    /// digits. The `n mod 2K` last samples of the sorted order are left out.
    NonIid,
}

/// Each client's sample indices (into the training set) under `kind`.
pub fn partition(
    labels: &[u8],
    clients: usize,
    kind: Partition,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let n = labels.len();
    let shards = match kind {
        Partition::Iid => clients,
        Partition::NonIid => clients.saturating_mul(2),
    };
    if clients == 0 || shards > n {
        return Err(TrainError::config(format!(
            "federated: {n} training samples cannot be split among {clients} clients ({shards} parts)"
        )));
    }
    let mut rng = Rng::new(seed ^ 0xFED0_5EED);
    Ok(match kind {
        Partition::Iid => {
            let mut order: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut order);
            // the first n mod K clients get one sample more
            let (base, extra) = (n / clients, n % clients);
            let mut parts = Vec::with_capacity(clients);
            let mut at = 0;
            for k in 0..clients {
                let len = base + usize::from(k < extra);
                parts.push(order[at..at + len].to_vec());
                at += len;
            }
            parts
        }
        Partition::NonIid => {
            let mut sorted: Vec<usize> = (0..n).collect();
            sorted.sort_by_key(|&i| (labels[i], i));
            let size = n / shards;
            let mut ids: Vec<usize> = (0..shards).collect();
            rng.shuffle(&mut ids);
            ids.chunks(2)
                .map(|pair| {
                    pair.iter()
                        .flat_map(|&s| sorted[s * size..(s + 1) * size].iter().copied())
                        .collect()
                })
                .collect()
        }
    })
}

/// The settings of a federated run.
#[derive(Clone, Debug)]
pub struct FedConfig {
    /// K: the number of clients.
    pub clients: usize,
    /// C: the fraction of clients chosen each round (at least one is).
    pub fraction: f64,
    /// E: local epochs per round.
    pub local_epochs: usize,
    /// B: local batch size; None for the whole local set in one batch (FedSGD's B = infinity).
    pub local_batch: Option<usize>,
    /// The clients' SGD learning rate.
    pub lr: f64,
    /// FedProx's proximal weight (0: FedAvg).
    pub mu: f64,
    pub seed: u64,
    /// Batch size of the test evaluation.
    pub eval_batch: usize,
}

impl FedConfig {
    /// m = max(round(C K), 1): the clients of a round.
    pub fn per_round(&self) -> usize {
        ((self.fraction * self.clients as f64).round() as usize).clamp(1, self.clients.max(1))
    }

    /// Refuses settings that cannot run (before any data is read).
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::config(m));
        if self.clients == 0 || self.local_epochs == 0 || self.eval_batch == 0 {
            return bad(
                "--clients, --local-epochs and the evaluation batch must be positive".into(),
            );
        }
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return bad(format!(
                "--fraction must be in (0, 1], got {}",
                self.fraction
            ));
        }
        if self.local_batch == Some(0) {
            return bad("--local-batch must be positive (or inf for the whole local set)".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be positive, got {}", self.lr));
        }
        if !(self.mu.is_finite() && self.mu >= 0.0) {
            return bad(format!("--mu must be zero or positive, got {}", self.mu));
        }
        Ok(())
    }
}

/// What one round did.
#[derive(Clone, Debug)]
pub struct RoundReport {
    /// 1-based.
    pub round: usize,
    /// The chosen clients, ascending.
    pub clients: Vec<usize>,
    /// Their samples.
    pub samples: usize,
    /// The clients' last local epoch's mean loss, weighted by their samples.
    pub train_loss: f64,
    /// The new global model on the test set (rank 0 only; NaN on the others).
    pub test_acc: f64,
    pub test_correct: usize,
    pub test_total: usize,
    /// Bytes that would cross the network: the global model to each client, and its weights
    /// back (4 bytes a value each way).
    pub bytes: usize,
    pub seconds: f64,
}

/// A client's local objective: cross-entropy, plus FedProx's `mu/2 |w - w_global|^2`.
struct LocalStep {
    inner: ClassifyStep,
    /// (mu, the global weights the round started from, in parameter order).
    prox: Option<(f64, Vec<Tensor>)>,
}

impl TrainStep for LocalStep {
    type Batch = ferrograd_data::Batch;
    fn model(&self) -> &dyn Module {
        self.inner.model()
    }
    fn model_mut(&mut self) -> &mut dyn Module {
        self.inner.model_mut()
    }
    fn forward(&mut self, b: ferrograd_data::Batch) -> Result<StepOutput> {
        let mut out = self.inner.forward(b)?;
        if let Some((mu, global)) = &self.prox {
            // d/dw of mu/2 |w - g|^2 is mu (w - g): each client is pulled toward the round's start
            let mut prox: Option<Tensor> = None;
            for (p, g) in parameters(self.inner.model.as_ref()).iter().zip(global) {
                let s = p.sub(g)?.square()?.sum_all()?;
                prox = Some(match prox {
                    Some(acc) => acc.add(&s)?,
                    None => s,
                });
            }
            if let Some(prox) = prox {
                out.loss = out.loss.add(&prox.mul_scalar(mu / 2.0)?)?;
            }
        }
        Ok(out)
    }
}

/// The server and the clients of this process.
pub struct FedAvg<'c> {
    cfg: FedConfig,
    step: LocalStep,
    train: Arc<dyn Dataset>,
    test: Arc<dyn Dataset>,
    parts: Vec<Vec<usize>>,
    comm: Option<&'c mut dyn Collective>,
    values: usize,
}

/// A stream for (seed, round, purpose, client): a client's data order in a round depends on
/// nothing else, so neither on the rank that trains it.
fn stream_seed(seed: u64, round: usize, purpose: u64, client: usize) -> u64 {
    seed ^ (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03)
        ^ (client as u64 + 1).wrapping_mul(0x94D0_49BB_1331_11EB)
}

impl<'c> FedAvg<'c> {
    /// The global model starts as `model` (every rank must build the same one from the same
    /// seed; rank 0's is broadcast to make sure). `parts` are the clients' sample indices into
    /// `train`.
    pub fn new(
        cfg: FedConfig,
        model: Box<dyn Forward>,
        train: Arc<dyn Dataset>,
        test: Arc<dyn Dataset>,
        parts: Vec<Vec<usize>>,
        mut comm: Option<&'c mut dyn Collective>,
    ) -> Result<Self> {
        cfg.check()?;
        if parts.len() != cfg.clients {
            return Err(TrainError::config(format!(
                "federated: {} parts for {} clients",
                parts.len(),
                cfg.clients
            )));
        }
        if let Some(k) = parts.iter().position(Vec::is_empty) {
            return Err(TrainError::config(format!(
                "federated: client {k} has no samples"
            )));
        }
        let params = parameters(model.as_ref());
        if let Some(p) = params.iter().find(|p| p.dtype() != DType::F32) {
            return Err(TrainError::config(format!(
                "federated: the model has a {} parameter of shape {:?}; the averaging is in f32",
                p.dtype(),
                p.dims()
            )));
        }
        let values = params.iter().map(Tensor::numel).sum();
        if let Some(c) = comm.as_deref_mut() {
            let mut bytes = if c.rank() == 0 {
                flatten(&params)?
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect()
            } else {
                Vec::new()
            };
            c.broadcast_bytes(&mut bytes)?;
            if bytes.len() != 4 * values {
                return Err(TrainError::Distributed(format!(
                    "rank 0's model has {} values, this rank's {values}",
                    bytes.len() / 4
                )));
            }
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            unflatten(&params, &v)?;
        }
        Ok(FedAvg {
            step: LocalStep {
                inner: ClassifyStep {
                    model,
                    objective: Objective::CrossEntropy,
                    classes: 10,
                    held_out: None,
                    eval_batch: cfg.eval_batch,
                },
                prox: None,
            },
            cfg,
            train,
            test,
            parts,
            comm,
            values,
        })
    }

    /// The global model.
    pub fn model(&self) -> &dyn Forward {
        self.step.inner.model.as_ref()
    }

    /// Values in the model (P).
    pub fn num_values(&self) -> usize {
        self.values
    }

    fn rank_world(&self) -> (usize, usize) {
        self.comm
            .as_deref()
            .map_or((0, 1), |c| (c.rank(), c.size()))
    }

    /// The clients of round `round` (0-based), ascending.
    pub fn choose(&self, round: usize) -> Vec<usize> {
        let mut ids: Vec<usize> = (0..self.cfg.clients).collect();
        Rng::new(stream_seed(self.cfg.seed, round, 1, 0)).shuffle(&mut ids);
        let mut chosen = ids[..self.cfg.per_round()].to_vec();
        chosen.sort_unstable();
        chosen
    }

    /// Client `k` trains from the current global weights; returns its weights and last loss.
    fn local_update(&mut self, round: usize, k: usize, global: &[f32]) -> Result<(Vec<f32>, f64)> {
        let params = parameters(self.step.inner.model.as_ref());
        unflatten(&params, global)?;
        let part = &self.parts[k];
        let batch = self.cfg.local_batch.unwrap_or(part.len()).min(part.len());
        let data = Subset::new(self.train.clone(), part.clone())?;
        let mut loader = DataLoader::new(
            Arc::new(data),
            batch,
            true,
            stream_seed(self.cfg.seed, round, 2, k),
        )?;
        self.step.prox = if self.cfg.mu > 0.0 {
            let frozen = params
                .iter()
                .map(|p| Tensor::from_vec(p.to_vec::<f32>()?, p.dims()))
                .collect::<ferrograd_tensor::Result<Vec<Tensor>>>()?;
            Some((self.cfg.mu, frozen))
        } else {
            None
        };
        let opt = Sgd::new(params.clone(), self.cfg.lr, 0.0, 0.0)?;
        let tc = TrainConfig {
            epochs: self.cfg.local_epochs,
            log_every: usize::MAX,
            handle_signals: false,
            workload: "federated client".into(),
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(tc, Box::new(opt), None);
        self.step.model_mut().train();
        let summary = trainer.fit(&mut self.step, &mut loader, None)?;
        let loss = summary
            .history
            .iter()
            .rev()
            .find(|r| r.kind == ferrograd_train::RecordKind::Epoch)
            .and_then(|r| r.get("loss"))
            .unwrap_or(f64::NAN);
        Ok((flatten(&params)?, loss))
    }

    /// Runs round `round` (0-based): the chosen clients train, the server averages, rank 0
    /// evaluates the new global model.
    pub fn round(&mut self, round: usize) -> Result<RoundReport> {
        let t = Instant::now();
        let chosen = self.choose(round);
        let (rank, world) = self.rank_world();
        let params = parameters(self.step.inner.model.as_ref());
        let global = flatten(&params)?;
        let p = self.values;
        let m = chosen.len();
        // row j: the j-th chosen client's weights (this rank's rows filled, zeros elsewhere
        // when spread over ranks); losses likewise
        let mut rows = vec![0f32; m * p];
        let mut losses = vec![0f64; m];
        for (j, &k) in chosen.iter().enumerate() {
            if j % world != rank {
                continue;
            }
            let (w, loss) = self.local_update(round, k, &global)?;
            rows[j * p..(j + 1) * p].copy_from_slice(&w);
            losses[j] = loss;
        }
        if let Some(c) = self.comm.as_deref_mut() {
            if c.size() > 1 {
                rows = match c.start_sum(Flat::F32(rows))?.wait()? {
                    Flat::F32(v) => v,
                    Flat::F64(_) => {
                        return Err(TrainError::Distributed(
                            "the weights came back in f64".into(),
                        ))
                    }
                };
                let mut l = c.start_sum(Flat::F64(losses))?.wait()?;
                losses = match &mut l {
                    Flat::F64(v) => std::mem::take(v),
                    Flat::F32(_) => {
                        return Err(TrainError::Distributed(
                            "the losses came back in f32".into(),
                        ))
                    }
                };
            }
        }
        if rows.len() != m * p || losses.len() != m {
            return Err(TrainError::Distributed(format!(
                "the round's sum has {} values, expected {}",
                rows.len(),
                m * p
            )));
        }
        // the weighted average, in f64, client by client in order: the same on every rank
        let counts: Vec<f64> = chosen.iter().map(|&k| self.parts[k].len() as f64).collect();
        let total: f64 = counts.iter().sum();
        let mut avg = vec![0f64; p];
        for (j, &n) in counts.iter().enumerate() {
            let wj = n / total;
            for (a, &x) in avg.iter_mut().zip(&rows[j * p..(j + 1) * p]) {
                *a += wj * x as f64;
            }
        }
        let avg: Vec<f32> = avg.into_iter().map(|x| x as f32).collect();
        if let Some(i) = avg.iter().position(|x| !x.is_finite()) {
            return Err(TrainError::config(format!(
                "federated round {}: the averaged weights hold {} (value {i}); lower --lr",
                round + 1,
                avg[i]
            )));
        }
        unflatten(&params, &avg)?;
        let train_loss = losses.iter().zip(&counts).map(|(l, n)| l * n / total).sum();
        let (mut correct, mut totals, mut acc) = (0, 0, f64::NAN);
        if rank == 0 {
            let model = self.step.inner.model.as_mut();
            model.eval();
            let c = evaluate(
                model,
                self.test.as_ref(),
                Objective::CrossEntropy,
                10,
                self.cfg.eval_batch,
            );
            model.train();
            let c = c?;
            correct = c.correct();
            totals = c.total();
            acc = correct as f64 / totals.max(1) as f64;
        }
        Ok(RoundReport {
            round: round + 1,
            samples: total as usize,
            clients: chosen,
            train_loss,
            test_acc: acc,
            test_correct: correct,
            test_total: totals,
            bytes: 2 * 4 * p * m,
            seconds: t.elapsed().as_secs_f64(),
        })
    }
}

fn flatten(params: &[Tensor]) -> Result<Vec<f32>> {
    let mut v = Vec::with_capacity(params.iter().map(Tensor::numel).sum());
    for p in params {
        p.contiguous()?
            .with_data::<f32, _>(|s| v.extend_from_slice(s))?;
    }
    Ok(v)
}

fn unflatten(params: &[Tensor], v: &[f32]) -> Result<()> {
    let mut at = 0;
    for p in params {
        let n = p.numel();
        let src = v.get(at..at + n).ok_or_else(|| {
            TrainError::Distributed(format!("{} values for a model of more", v.len()))
        })?;
        p.update_data::<f32>(|d| d.copy_from_slice(src))?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7) % 10) as u8).collect()
    }

    #[test]
    fn iid_parts_cover_every_sample_once() {
        let parts = partition(&labels(1003), 10, Partition::Iid, 1).unwrap();
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1003).collect::<Vec<_>>());
        assert!(parts.iter().all(|p| p.len() == 100 || p.len() == 101));
    }

    #[test]
    fn non_iid_clients_hold_two_shards_of_sorted_labels() {
        let l = labels(6000);
        let parts = partition(&l, 10, Partition::NonIid, 3).unwrap();
        assert!(parts.iter().all(|p| p.len() == 600));
        for p in &parts {
            // each shard of 300 holds one digit (600 of each), so a client sees one or two
            let mut digits: Vec<u8> = p.iter().map(|&i| l[i]).collect();
            digits.dedup();
            assert!(digits.len() <= 2, "{digits:?}");
        }
        let mut all: Vec<usize> = parts.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6000);
        assert_ne!(parts, partition(&l, 10, Partition::NonIid, 4).unwrap());
    }

    #[test]
    fn too_many_clients_are_refused() {
        assert!(partition(&labels(10), 6, Partition::NonIid, 0).is_err());
        assert!(partition(&labels(10), 0, Partition::Iid, 0).is_err());
    }
}
