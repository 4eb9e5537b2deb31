//! What data-parallel training asks of the replicas' transport: sums and broadcasts, started in
//! the same order on every rank. [`crate::ThreadWorld`] runs replicas as threads of one process
//! (tests, and a machine without MPI); [`crate::MpiWorld`] (feature `mpi`) runs them as the
//! processes of an MPI job.

use ferrograd_train::{Result, TrainError};
use std::sync::mpsc::Receiver;

/// A flat buffer of gradient values in their dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Flat {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Flat {
    pub fn len(&self) -> usize {
        match self {
            Flat::F32(v) => v.len(),
            Flat::F64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes this buffer takes on the wire.
    pub fn bytes(&self) -> usize {
        match self {
            Flat::F32(v) => 4 * v.len(),
            Flat::F64(v) => 8 * v.len(),
        }
    }
}

/// A sum that was started and may still be running (on the communication thread of an MPI
/// world, while the backward goes on).
pub struct Pending(Inner);

enum Inner {
    Done(Flat),
    Running(Receiver<std::result::Result<Flat, String>>),
}

impl Pending {
    pub fn done(f: Flat) -> Pending {
        Pending(Inner::Done(f))
    }
    pub fn running(rx: Receiver<std::result::Result<Flat, String>>) -> Pending {
        Pending(Inner::Running(rx))
    }
    /// The sum over the replicas.
    pub fn wait(self) -> Result<Flat> {
        match self.0 {
            Inner::Done(f) => Ok(f),
            Inner::Running(rx) => rx
                .recv()
                .map_err(|_| {
                    TrainError::Distributed("the communication thread has stopped".into())
                })?
                .map_err(TrainError::Distributed),
        }
    }
}

/// Sums and broadcasts over the replicas of a run. Every replica must start the same
/// operations, with buffers of the same lengths, in the same order.
pub trait Collective: Send {
    /// This replica's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of replicas.
    fn size(&self) -> usize;
    /// Starts summing `data` elementwise over the replicas; every replica gets the sum.
    fn start_sum(&mut self, data: Flat) -> Result<Pending>;
    /// Replaces `bytes` by rank 0's (of any length).
    fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>) -> Result<()>;
}
