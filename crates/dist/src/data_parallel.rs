//! Data-parallel training as PyTorch's DistributedDataParallel does it, as a [`Strategy`] of the
//! Trainer: every replica starts from rank 0's weights, and each step's gradients are averaged
//! over the replicas in buckets ([`crate::buckets`]), each bucket's sum started as soon as the
//! backward has made its last gradient final, so that the communication runs behind the rest
//! of the backward.
//!
//! With gradient accumulation only the last micro-batch's backward hands gradients over
//! (`no_sync` for the others), and a step whose backward did not report a gradient (a partial
//! accumulation at an epoch's end) hands them over when the backward is done: every replica
//! starts the same sums in the same order either way.
//!
//! A parameter that got no gradient on a replica counts as zero there; one that got none on any
//! replica keeps none (its optimizer skips it, as in one process). Row-sparse gradients of
//! embeddings are summed over the union of the rows the replicas looked up, and stay row-sparse.
//! BatchNorm's batch statistics are per replica, as DDP's default; rank 0's running statistics
//! are the ones evaluated and saved.

use crate::buckets::{self, Bucket};
use crate::collective::{Collective, Flat, Pending};
use ferrograd_tensor::{DType, RowSparse, Tensor, TensorId};
use ferrograd_train::{Result, Strategy, TrainError};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the communication cost, for a report.
#[derive(Clone, Debug, Default)]
pub struct CommStats {
    /// Optimizer steps whose gradients were averaged.
    pub steps: usize,
    /// Time the steps spent waiting for sums after their backward (communication not hidden).
    pub waiting: Duration,
    /// Time from one step's averaged gradients to the next's (the whole step, and whatever ran
    /// between two steps: an evaluation at an epoch's end).
    pub stepping: Duration,
    /// Gradient bytes this replica sent into sums.
    pub bytes: usize,
}

impl CommStats {
    /// The share of a step spent waiting on communication.
    pub fn waiting_share(&self) -> f64 {
        self.waiting.as_secs_f64() / self.stepping.as_secs_f64().max(1e-12)
    }
}

struct Slot {
    data: Option<Flat>,
    filled: usize,
    pending: Option<Pending>,
}

pub struct DataParallel<C: Collective> {
    comm: C,
    params: Vec<Tensor>,
    index: HashMap<TensorId, usize>,
    /// (bucket, offset) of each parameter
    place: Vec<(usize, usize)>,
    buckets: Vec<Bucket>,
    slots: Vec<Slot>,
    copied: Vec<bool>,
    next_launch: usize,
    bucket_caps: (usize, usize),
    stats: CommStats,
    last_finish: Option<Instant>,
}

impl<C: Collective> DataParallel<C> {
    /// Averages gradients over `comm`'s replicas, in PyTorch's bucket sizes.
    pub fn new(comm: C) -> Self {
        DataParallel {
            comm,
            params: Vec::new(),
            index: HashMap::new(),
            place: Vec::new(),
            buckets: Vec::new(),
            slots: Vec::new(),
            copied: Vec::new(),
            next_launch: 0,
            bucket_caps: (buckets::FIRST_BUCKET_BYTES, buckets::BUCKET_BYTES),
            stats: CommStats::default(),
            last_finish: None,
        }
    }

    /// Other bucket sizes, in bytes (DDP's `bucket_cap_mb`); set before training.
    pub fn with_bucket_bytes(mut self, first: usize, rest: usize) -> Self {
        self.bucket_caps = (first.max(1), rest.max(1));
        self
    }

    pub fn stats(&self) -> &CommStats {
        &self.stats
    }

    pub fn comm(&mut self) -> &mut C {
        &mut self.comm
    }

    /// The buckets, as parameter indices (for a report).
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    fn fresh_slot(b: &Bucket) -> Slot {
        // the values, then per member: 1 if this replica has a dense gradient, 1 if a sparse one
        let n = b.len + 2 * b.members.len();
        Slot {
            data: Some(match b.dtype {
                DType::F64 => Flat::F64(vec![0.0; n]),
                _ => Flat::F32(vec![0.0; n]),
            }),
            filled: 0,
            pending: None,
        }
    }

    /// Copies parameter `i`'s gradient into its bucket and starts the buckets that are full, in
    /// order.
    fn take(&mut self, i: usize) -> Result<()> {
        if self.copied[i] {
            return Ok(());
        }
        self.copied[i] = true;
        let (b, off) = self.place[i];
        let bucket = &self.buckets[b];
        let k = bucket.members.iter().position(|&m| m == i).unwrap_or(0);
        let flags = bucket.len + 2 * k;
        let p = &self.params[i];
        let slot = &mut self.slots[b];
        let data = slot.data.as_mut().ok_or_else(|| {
            TrainError::Distributed("a gradient arrived for a bucket already sent".into())
        })?;
        if let Some(g) = p.grad() {
            let g = g.contiguous()?;
            let n = p.numel();
            match data {
                Flat::F32(d) => g.with_data::<f32, _>(|s| d[off..off + n].copy_from_slice(s))?,
                Flat::F64(d) => g.with_data::<f64, _>(|s| d[off..off + n].copy_from_slice(s))?,
            }
            set_flag(data, flags, 1.0);
        }
        if p.sparse_grad().is_some() {
            set_flag(data, flags + 1, 1.0);
        }
        slot.filled += 1;
        self.launch_ready()
    }

    fn launch_ready(&mut self) -> Result<()> {
        while self.next_launch < self.buckets.len() {
            let b = self.next_launch;
            let slot = &mut self.slots[b];
            if slot.filled < self.buckets[b].members.len() {
                break;
            }
            if let Some(d) = slot.data.take() {
                self.stats.bytes += d.bytes();
                slot.pending = Some(self.comm.start_sum(d)?);
            }
            self.next_launch += 1;
        }
        Ok(())
    }

    /// The row-sparse gradient of parameter `i` summed over the replicas: the dense table of
    /// this replica's rows and a row mask, summed, give the values of every row some replica
    /// looked up.
    fn sum_sparse(&mut self, i: usize, world: f64) -> Result<()> {
        let p = self.params[i].clone();
        let (rows, dim) = match p.dims() {
            [r, d] => (*r, *d),
            d => {
                return Err(TrainError::Distributed(format!(
                    "a row-sparse gradient for a parameter of shape {d:?}"
                )))
            }
        };
        let mine = p.sparse_grad();
        let mut mask = vec![0.0f64; rows];
        if let Some(s) = &mine {
            for &r in &s.rows {
                mask[r] = 1.0;
            }
        }
        let mask = self.comm.start_sum(Flat::F64(mask))?.wait()?;
        let Flat::F64(mask) = mask else {
            return Err(TrainError::Distributed("a row mask changed dtype".into()));
        };
        let union: Vec<usize> = (0..rows).filter(|&r| mask[r] > 0.0).collect();
        let pos: HashMap<usize, usize> = union.iter().enumerate().map(|(k, &r)| (r, k)).collect();
        let vals = |s: &RowSparse, out: &mut dyn FnMut(usize, &[f64])| -> Result<()> {
            let v = s.values.to_vec_f64();
            for (k, &r) in s.rows.iter().enumerate() {
                out(pos[&r], &v[k * dim..(k + 1) * dim]);
            }
            Ok(())
        };
        let values = match p.dtype() {
            DType::F64 => {
                let mut buf = vec![0.0f64; union.len() * dim];
                if let Some(s) = &mine {
                    vals(s, &mut |k, v| {
                        buf[k * dim..(k + 1) * dim].copy_from_slice(v)
                    })?;
                }
                self.stats.bytes += 8 * buf.len();
                let Flat::F64(mut s) = self.comm.start_sum(Flat::F64(buf))?.wait()? else {
                    return Err(TrainError::Distributed("a sum changed dtype".into()));
                };
                s.iter_mut().for_each(|x| *x /= world);
                Tensor::from_vec(s, [union.len(), dim])?
            }
            _ => {
                let mut buf = vec![0.0f32; union.len() * dim];
                if let Some(s) = &mine {
                    let v = s.values.to_vec::<f32>()?;
                    for (k, &r) in s.rows.iter().enumerate() {
                        let at = pos[&r] * dim;
                        buf[at..at + dim].copy_from_slice(&v[k * dim..(k + 1) * dim]);
                    }
                }
                self.stats.bytes += 4 * buf.len();
                let Flat::F32(mut s) = self.comm.start_sum(Flat::F32(buf))?.wait()? else {
                    return Err(TrainError::Distributed("a sum changed dtype".into()));
                };
                let w = world as f32;
                s.iter_mut().for_each(|x| *x /= w);
                Tensor::from_vec(s, [union.len(), dim])?
            }
        };
        p.set_sparse_grad(Some(RowSparse {
            rows: union,
            values,
            num_rows: rows,
        }))?;
        Ok(())
    }
}

fn set_flag(d: &mut Flat, at: usize, v: f64) {
    match d {
        Flat::F32(d) => d[at] = v as f32,
        Flat::F64(d) => d[at] = v,
    }
}

fn flag(d: &Flat, at: usize) -> f64 {
    match d {
        Flat::F32(d) => d[at] as f64,
        Flat::F64(d) => d[at],
    }
}

/// The bytes of a tensor's values, for a broadcast.
fn raw_bytes(t: &Tensor, out: &mut Vec<u8>) -> Result<()> {
    let t = t.contiguous()?;
    match t.dtype() {
        DType::F32 => {
            t.with_data::<f32, _>(|s| s.iter().for_each(|x| out.extend(x.to_le_bytes())))?
        }
        DType::F64 => {
            t.with_data::<f64, _>(|s| s.iter().for_each(|x| out.extend(x.to_le_bytes())))?
        }
        DType::I64 => {
            t.with_data::<i64, _>(|s| s.iter().for_each(|x| out.extend(x.to_le_bytes())))?
        }
    }
    Ok(())
}

/// Writes `bytes` (from [`raw_bytes`] of a tensor of the same shape) into `t`.
fn set_raw(t: &Tensor, bytes: &[u8]) -> Result<()> {
    fn conv<const N: usize, T: 'static>(
        b: &[u8],
        f: fn([u8; N]) -> T,
    ) -> impl Iterator<Item = T> + '_ {
        b.chunks_exact(N).map(move |c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
    }
    match t.dtype() {
        DType::F32 => t.update_data::<f32>(|d| {
            d.iter_mut()
                .zip(conv(bytes, f32::from_le_bytes))
                .for_each(|(x, v)| *x = v)
        })?,
        DType::F64 => t.update_data::<f64>(|d| {
            d.iter_mut()
                .zip(conv(bytes, f64::from_le_bytes))
                .for_each(|(x, v)| *x = v)
        })?,
        DType::I64 => t.update_data::<i64>(|d| {
            d.iter_mut()
                .zip(conv(bytes, i64::from_le_bytes))
                .for_each(|(x, v)| *x = v)
        })?,
    }
    Ok(())
}

impl<C: Collective> Strategy for DataParallel<C> {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world_size(&self) -> usize {
        self.comm.size()
    }

    fn start(&mut self, params: &[Tensor], buffers: &[Tensor]) -> Result<()> {
        // rank 0's values everywhere: one broadcast of every tensor's bytes, with the shapes
        // first so that a replica that built another model says so instead of mixing weights
        let all: Vec<&Tensor> = params.iter().chain(buffers).collect();
        let mut shapes = format!(
            "{:?}",
            all.iter()
                .map(|t| (t.dims().to_vec(), t.dtype().to_string()))
                .collect::<Vec<_>>()
        )
        .into_bytes();
        let mine = shapes.clone();
        self.comm.broadcast_bytes(&mut shapes)?;
        // every replica learns which ones differ, so that all of them stop here together
        let mut differ = vec![0.0; self.comm.size()];
        differ[self.comm.rank()] = (shapes != mine) as u8 as f64;
        let Flat::F64(differ) = self.comm.start_sum(Flat::F64(differ))?.wait()? else {
            return Err(TrainError::Distributed("a sum changed dtype".into()));
        };
        let ranks: Vec<String> = (0..differ.len())
            .filter(|&r| differ[r] > 0.0)
            .map(|r| r.to_string())
            .collect();
        if !ranks.is_empty() {
            return Err(TrainError::Distributed(format!(
                "rank {} built a model with other parameters than rank 0 (this rank: {} tensors)",
                ranks.join(", "),
                all.len()
            )));
        }
        let mut bytes = Vec::new();
        if self.comm.rank() == 0 {
            for t in &all {
                raw_bytes(t, &mut bytes)?;
            }
        }
        self.comm.broadcast_bytes(&mut bytes)?;
        if self.comm.rank() != 0 {
            let mut at = 0;
            for t in &all {
                let n = t.numel() * t.dtype().size_in_bytes();
                let chunk = bytes.get(at..at + n).ok_or_else(|| {
                    TrainError::Distributed("rank 0 sent fewer weights than the model has".into())
                })?;
                set_raw(t, chunk)?;
                at += n;
            }
        }
        if let Some(t) = params.iter().find(|t| t.dtype() == DType::I64) {
            return Err(TrainError::Distributed(format!(
                "parameter of shape {:?} is i64; gradients are f32 or f64",
                t.dims()
            )));
        }
        self.params = params.to_vec();
        self.index = params
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id(), i))
            .collect();
        let sizes: Vec<(usize, DType)> = params.iter().map(|t| (t.numel(), t.dtype())).collect();
        self.buckets = buckets::assign(&sizes, self.bucket_caps.0, self.bucket_caps.1);
        self.place = vec![(0, 0); params.len()];
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (&m, &o) in bucket.members.iter().zip(&bucket.offsets) {
                self.place[m] = (b, o);
            }
        }
        self.slots = self.buckets.iter().map(Self::fresh_slot).collect();
        self.copied = vec![false; params.len()];
        self.next_launch = 0;
        Ok(())
    }

    fn grad_ready(&mut self, param: &Tensor) -> Result<()> {
        match self.index.get(&param.id()) {
            Some(&i) => self.take(i),
            // a tensor the optimizer does not train (a frozen weight that still required grad)
            None => Ok(()),
        }
    }

    fn finish_gradients(&mut self) -> Result<()> {
        for i in 0..self.params.len() {
            self.take(i)?;
        }
        let t0 = Instant::now();
        let world = self.comm.size() as f64;
        let mut sparse = Vec::new();
        for b in 0..self.buckets.len() {
            let pending = self.slots[b]
                .pending
                .take()
                .ok_or_else(|| TrainError::Distributed(format!("bucket {b} was never started")))?;
            let sum = pending.wait()?;
            let bucket = &self.buckets[b];
            let expected = bucket.len + 2 * bucket.members.len();
            if sum.len() != expected {
                return Err(TrainError::Distributed(format!(
                    "bucket {b}: the sum has {} values, expected {expected}",
                    sum.len()
                )));
            }
            for (k, (&m, &off)) in bucket.members.iter().zip(&bucket.offsets).enumerate() {
                let p = &self.params[m];
                let (dense, sparse_on) = (
                    flag(&sum, bucket.len + 2 * k),
                    flag(&sum, bucket.len + 2 * k + 1),
                );
                if sparse_on > 0.0 {
                    sparse.push(m);
                }
                if dense == 0.0 {
                    p.set_grad(None)?;
                    continue;
                }
                let n = p.numel();
                let g = match &sum {
                    Flat::F32(s) => {
                        let w = world as f32;
                        Tensor::from_vec(
                            s[off..off + n].iter().map(|x| x / w).collect::<Vec<f32>>(),
                            p.dims(),
                        )?
                    }
                    Flat::F64(s) => Tensor::from_vec(
                        s[off..off + n]
                            .iter()
                            .map(|x| x / world)
                            .collect::<Vec<f64>>(),
                        p.dims(),
                    )?,
                };
                p.set_grad(Some(g))?;
            }
        }
        for m in sparse {
            self.sum_sparse(m, world)?;
        }
        let now = Instant::now();
        // counted from the second step on: the first has no start to measure from
        if let Some(prev) = self.last_finish {
            self.stats.waiting += now - t0;
            self.stats.stepping += now - prev;
            self.stats.steps += 1;
        }
        self.last_finish = Some(now);
        self.slots = self.buckets.iter().map(Self::fresh_slot).collect();
        self.copied.iter_mut().for_each(|c| *c = false);
        self.next_launch = 0;
        Ok(())
    }

    fn sum(&mut self, values: &mut [f64]) -> Result<()> {
        let Flat::F64(s) = self.comm.start_sum(Flat::F64(values.to_vec()))?.wait()? else {
            return Err(TrainError::Distributed("a sum changed dtype".into()));
        };
        if s.len() != values.len() {
            return Err(TrainError::Distributed(format!(
                "a sum of {} values came back with {}",
                values.len(),
                s.len()
            )));
        }
        values.copy_from_slice(&s);
        Ok(())
    }

    fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        self.comm.broadcast_bytes(bytes)
    }

    fn report(&self) -> Option<String> {
        let s = &self.stats;
        (s.steps > 0).then(|| {
            format!(
                "Data-parallel on {} ranks: {} buckets, {:.2} MB summed a step, {:.1} ms a step of which {:.1}% waiting on communication (rank {})",
                self.comm.size(),
                self.buckets.len(),
                s.bytes as f64 / (s.steps + 1) as f64 / 1e6,
                1e3 * s.stepping.as_secs_f64() / s.steps as f64,
                100.0 * s.waiting_share(),
                self.comm.rank()
            )
        })
    }
}
