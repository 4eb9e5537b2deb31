//! Replicas as threads of one process: the same collectives as an MPI job, without MPI. Sums
//! add the replicas' buffers in rank order, so a run gives the same bits every time.

use crate::collective::{Collective, Flat, Pending};
use ferrograd_train::{Result, TrainError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A barrier that breaks, instead of waiting forever, once a replica has left the world (its
/// thread returned or panicked): that replica will never arrive, as a dead rank of an MPI job.
struct Barrier {
    size: usize,
    state: Mutex<BarrierState>,
    turn: Condvar,
}

#[derive(Default)]
struct BarrierState {
    arrived: usize,
    generation: u64,
    departed: usize,
}

impl Barrier {
    fn wait(&self) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.arrived += 1;
        if s.arrived == self.size {
            s.arrived = 0;
            s.generation += 1;
            self.turn.notify_all();
            return Ok(());
        }
        let g = s.generation;
        while s.generation == g {
            if s.departed > 0 {
                return Err(TrainError::Distributed(
                    "a replica left the world while the others waited for it".into(),
                ));
            }
            s = self.turn.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    fn depart(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.departed += 1;
        self.turn.notify_all();
    }
}

struct Shared {
    barrier: Barrier,
    slots: Mutex<Vec<Option<Flat>>>,
    bytes: Mutex<Vec<u8>>,
}

impl Drop for ThreadWorld {
    fn drop(&mut self) {
        self.shared.barrier.depart();
    }
}

/// One replica's handle on a world of threads.
pub struct ThreadWorld {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl ThreadWorld {
    /// Runs `f` on `size` threads, each with its replica's handle, and returns their results in
    /// rank order. Every replica must make the same collective calls, or the others wait forever.
    pub fn run<R: Send>(size: usize, f: impl Fn(ThreadWorld) -> R + Sync) -> Vec<R> {
        let shared = Arc::new(Shared {
            barrier: Barrier {
                size: size.max(1),
                state: Mutex::new(BarrierState::default()),
                turn: Condvar::new(),
            },
            slots: Mutex::new(vec![None; size]),
            bytes: Mutex::new(Vec::new()),
        });
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let w = ThreadWorld {
                        rank,
                        size,
                        shared: shared.clone(),
                    };
                    let f = &f;
                    s.spawn(move || f(w))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(r) => r,
                    Err(e) => std::panic::resume_unwind(e),
                })
                .collect()
        })
    }
}

fn mismatch(what: &str, a: usize, b: usize) -> TrainError {
    TrainError::Distributed(format!(
        "{what}: the replicas' buffers differ in length ({a} and {b})"
    ))
}

impl Collective for ThreadWorld {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    fn start_sum(&mut self, data: Flat) -> Result<Pending> {
        let sh = &self.shared;
        sh.slots.lock().unwrap_or_else(PoisonError::into_inner)[self.rank] = Some(data);
        sh.barrier.wait()?;
        let sum = {
            let slots = sh.slots.lock().unwrap_or_else(PoisonError::into_inner);
            let mut it = slots.iter().flatten();
            let mut acc = it
                .next()
                .cloned()
                .ok_or_else(|| TrainError::Distributed("sum: a replica gave no buffer".into()));
            for s in it {
                acc = acc.and_then(|mut a| {
                    match (&mut a, s) {
                        (Flat::F32(a), Flat::F32(b)) if a.len() == b.len() => {
                            a.iter_mut().zip(b).for_each(|(x, y)| *x += y)
                        }
                        (Flat::F64(a), Flat::F64(b)) if a.len() == b.len() => {
                            a.iter_mut().zip(b).for_each(|(x, y)| *x += y)
                        }
                        (a, b) => return Err(mismatch("sum", a.len(), b.len())),
                    }
                    Ok(a)
                });
            }
            acc
        };
        // nobody writes its next buffer before every replica has read this one
        sh.barrier.wait()?;
        sum.map(Pending::done)
    }

    fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        let sh = &self.shared;
        if self.rank == 0 {
            *sh.bytes.lock().unwrap_or_else(PoisonError::into_inner) = bytes.clone();
        }
        sh.barrier.wait()?;
        if self.rank != 0 {
            *bytes = sh
                .bytes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
        }
        sh.barrier.wait()?;
        Ok(())
    }
}
