//! Replicas as the processes of an MPI job (rsmpi on Open MPI or MPICH).
//!
//! One communication thread initialises MPI and makes every collective call, in the order they
//! were asked for, so a bucket's allreduce runs while the backward goes on in the training
//! thread. MPI is initialised once per process; a process started without `mpirun` is a world
//! of one.
//!
//! On an error a rank must not wait for the others in MPI_Finalize (they may be waiting for it
//! in an allreduce): [`abort`] ends the whole job with MPI_Abort, which `mpirun` turns into the
//! end of every rank.

use crate::collective::{Collective, Flat, Pending};
use ferrograd_train::{Result, TrainError};
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

type Reply<T> = Sender<std::result::Result<T, String>>;

enum Job {
    Sum(Flat, Reply<Flat>),
    Broadcast(Vec<u8>, Reply<Vec<u8>>),
    Finish,
}

struct Engine {
    jobs: Sender<Job>,
    rank: usize,
    size: usize,
    /// Whether MPI lets another thread than the communication thread call MPI_Abort.
    multiple: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();

/// This process's handle on the MPI job (cheap to make: every handle shares the one engine).
#[derive(Clone, Copy)]
pub struct MpiWorld {
    engine: &'static Engine,
}

fn start_engine() -> std::result::Result<Engine, String> {
    let (tx, rx) = channel::<Job>();
    let (ready_tx, ready_rx) = channel::<std::result::Result<(usize, usize, bool), String>>();
    let thread = std::thread::Builder::new()
        .name("mpi".into())
        .spawn(move || {
            // the thread that initialises MPI makes every call: Funneled is enough for it; we
            // ask for Multiple so that another thread may call MPI_Abort
            let Some((universe, level)) = mpi::initialize_with_threading(Threading::Multiple)
            else {
                let _ = ready_tx.send(Err("MPI was initialised already".into()));
                return;
            };
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            let _ = ready_tx.send(Ok((rank, size, level == Threading::Multiple)));
            serve(&universe, &world, rx);
            // dropping the universe finalises MPI
        })
        .map_err(|e| format!("cannot start the MPI thread: {e}"))?;
    let (rank, size, multiple) = ready_rx
        .recv()
        .map_err(|_| "MPI did not start".to_string())??;
    Ok(Engine {
        jobs: tx,
        rank,
        size,
        multiple,
        thread: Mutex::new(Some(thread)),
    })
}

fn serve(_u: &Universe, world: &SimpleCommunicator, rx: std::sync::mpsc::Receiver<Job>) {
    let root = world.process_at_rank(0);
    for job in rx {
        match job {
            Job::Sum(data, reply) => {
                let out = match data {
                    Flat::F32(v) => {
                        let mut r = vec![0f32; v.len()];
                        world.all_reduce_into(&v[..], &mut r[..], SystemOperation::sum());
                        Flat::F32(r)
                    }
                    Flat::F64(v) => {
                        let mut r = vec![0f64; v.len()];
                        world.all_reduce_into(&v[..], &mut r[..], SystemOperation::sum());
                        Flat::F64(r)
                    }
                };
                let _ = reply.send(Ok(out));
            }
            Job::Broadcast(mut bytes, reply) => {
                let mut n = bytes.len() as u64;
                root.broadcast_into(&mut n);
                let got = usize::try_from(n).ok().filter(|&n| n <= 1 << 40);
                let Some(n) = got else {
                    let _ = reply.send(Err(format!("rank 0 broadcast {n} bytes")));
                    continue;
                };
                bytes.resize(n, 0);
                if n > 0 {
                    root.broadcast_into(&mut bytes[..]);
                }
                let _ = reply.send(Ok(bytes));
            }
            Job::Finish => {
                world.barrier();
                break;
            }
        }
    }
}

impl MpiWorld {
    /// Joins the MPI job (initialising MPI on first use).
    pub fn get() -> Result<MpiWorld> {
        match ENGINE.get_or_init(start_engine) {
            Ok(engine) => Ok(MpiWorld { engine }),
            Err(e) => Err(TrainError::Distributed(e.clone())),
        }
    }

    /// Whether this process has joined an MPI job.
    pub fn started() -> bool {
        matches!(ENGINE.get(), Some(Ok(_)))
    }

    /// The end of a run that went well: waits for every rank, then finalises MPI.
    pub fn finish() {
        if let Some(Ok(e)) = ENGINE.get() {
            let _ = e.jobs.send(Job::Finish);
            let t = e
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = t {
                let _ = t.join();
            }
        }
    }

    fn ask<T>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<std::sync::mpsc::Receiver<std::result::Result<T, String>>> {
        let (tx, rx) = channel();
        self.engine
            .jobs
            .send(job(tx))
            .map_err(|_| TrainError::Distributed("the MPI thread has stopped".into()))?;
        Ok(rx)
    }
}

/// Ends the whole MPI job after an error on this rank: MPI_Abort where MPI allows it from this
/// thread, else an exit without finalising, which `mpirun` also answers by ending every rank.
/// Without an MPI job, exits with `code`.
pub fn abort(code: i32) -> ! {
    if let Some(Ok(e)) = ENGINE.get() {
        if e.multiple {
            SimpleCommunicator::world().abort(code);
        }
    }
    std::process::exit(code)
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.engine.rank
    }
    fn size(&self) -> usize {
        self.engine.size
    }
    fn start_sum(&mut self, data: Flat) -> Result<Pending> {
        Ok(Pending::running(self.ask(|r| Job::Sum(data, r))?))
    }
    fn broadcast_bytes(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        let mine = std::mem::take(bytes);
        let rx = self.ask(|r| Job::Broadcast(mine, r))?;
        *bytes = rx
            .recv()
            .map_err(|_| TrainError::Distributed("the MPI thread has stopped".into()))?
            .map_err(TrainError::Distributed)?;
        Ok(())
    }
}
