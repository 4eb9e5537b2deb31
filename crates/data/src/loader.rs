//! Batching with seeded shuffling and background prefetching.
//!
//! The order of epoch `e` is a Fisher-Yates shuffle drawn from a generator seeded with
//! `(seed, e)`, so it is the same on every machine and can be recomputed when training resumes
//! mid-run. In a data-parallel run each replica takes its shard of that order, as PyTorch's
//! `DistributedSampler` does: the order is padded (by its own first samples) to a multiple of
//! the world size and replica `r` takes positions `r, r + world, r + 2 world, ...`, so the k-th
//! batches of all replicas together are the k-th batch of one process at `world` times the
//! batch size. A background thread assembles the next batches into a bounded channel while the
//! model trains on the current one.

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use ferrograd_tensor::{Rng, Tensor};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One batch: inputs, targets and its position in the epoch.
pub struct Batch {
    pub index: usize,
    pub inputs: Tensor,
    pub targets: Tensor,
}

/// Iterates a dataset in batches.
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    pub seed: u64,
    /// Number of batches prepared ahead (0: no background thread).
    pub prefetch: usize,
    /// This replica's rank and the world size of a data-parallel run.
    shard: Option<(usize, usize)>,
}

impl DataLoader {
    pub fn new(
        dataset: Arc<dyn Dataset>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Invalid(
                "DataLoader: batch size must be positive".into(),
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            shuffle,
            drop_last: false,
            seed,
            prefetch: 4,
            shard: None,
        })
    }

    /// Makes this loader replica `rank` of `world`: it yields its shard of each epoch's order.
    pub fn with_shard(mut self, rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(Error::Invalid(format!(
                "DataLoader: rank {rank} is not one of a world of {world}"
            )));
        }
        self.shard = (world > 1).then_some((rank, world));
        Ok(self)
    }

    /// Samples this replica sees per epoch (the dataset's size without a shard; with one, the
    /// padded size divided by the world).
    pub fn samples_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        match self.shard {
            Some((_, world)) => n.div_ceil(world),
            None => n,
        }
    }

    pub fn with_drop_last(mut self, d: bool) -> Self {
        self.drop_last = d;
        self
    }

    pub fn with_prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.samples_per_epoch();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    pub fn dataset_len(&self) -> usize {
        self.dataset.len()
    }

    /// The sample order of epoch `epoch` (0-based).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.dataset.len()).collect();
        if self.shuffle {
            let mut rng =
                Rng::new(self.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            rng.shuffle(&mut idx);
        }
        idx
    }

    /// This replica's samples of epoch `epoch`, in order (the whole order without a shard).
    pub fn shard_order(&self, epoch: usize) -> Vec<usize> {
        let idx = self.order(epoch);
        match self.shard {
            Some((rank, world)) => shard_of(idx, rank, world),
            None => idx,
        }
    }

    /// The batches of `epoch`, starting at batch `start` (to resume mid-epoch).
    pub fn epoch(&self, epoch: usize, start: usize) -> BatchIter {
        let order = self.shard_order(epoch);
        let bs = self.batch_size;
        let nb = self.num_batches();
        let chunks: Vec<(usize, Vec<usize>)> = (start..nb)
            .map(|b| (b, order[b * bs..((b + 1) * bs).min(order.len())].to_vec()))
            .collect();
        if self.prefetch == 0 {
            return BatchIter {
                inner: Inner::Sync {
                    dataset: self.dataset.clone(),
                    chunks: chunks.into_iter(),
                },
            };
        }
        let (tx, rx) = sync_channel(self.prefetch);
        let ds = self.dataset.clone();
        let handle = std::thread::spawn(move || {
            for (b, idx) in chunks {
                let item = ds.batch(&idx).map(|(x, y)| Batch {
                    index: b,
                    inputs: x,
                    targets: y,
                });
                let stop = item.is_err();
                if tx.send(item).is_err() || stop {
                    break;
                }
            }
        });
        BatchIter {
            inner: Inner::Prefetch {
                rx,
                handle: Some(handle),
            },
        }
    }
}

enum Inner {
    Sync {
        dataset: Arc<dyn Dataset>,
        chunks: std::vec::IntoIter<(usize, Vec<usize>)>,
    },
    Prefetch {
        rx: Receiver<Result<Batch>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// Iterator over one epoch's batches.
pub struct BatchIter {
    inner: Inner,
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Sync { dataset, chunks } => {
                let (b, idx) = chunks.next()?;
                Some(dataset.batch(&idx).map(|(x, y)| Batch {
                    index: b,
                    inputs: x,
                    targets: y,
                }))
            }
            Inner::Prefetch { rx, handle } => match rx.recv() {
                Ok(item) => Some(item),
                Err(_) => {
                    if let Some(h) = handle.take() {
                        if h.join().is_err() {
                            return Some(Err(Error::Invalid(
                                "DataLoader: the prefetch thread panicked".into(),
                            )));
                        }
                    }
                    None
                }
            },
        }
    }
}

/// Replica `rank`'s part of an epoch's `order` in a world of `world` (PyTorch's
/// DistributedSampler): the order is padded with its own first samples (repeated if it is
/// shorter than the world) to a multiple of the world, and the replica takes every `world`-th
/// sample from its rank on, so batch k of all replicas together is batch k of one process at
/// `world` times the batch.
pub fn shard_of<T: Clone>(mut order: Vec<T>, rank: usize, world: usize) -> Vec<T> {
    let n = order.len();
    if world <= 1 || n == 0 {
        return order;
    }
    let total = n.div_ceil(world) * world;
    for i in n..total {
        order.push(order[i % n].clone());
    }
    order.into_iter().skip(rank).step_by(world).collect()
}
