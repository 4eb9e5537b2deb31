//! `--distributed`: this process is one rank of an MPI job (`mpirun -n N ferrograd ...`), and
//! the command trains data-parallel on the Trainer's strategy. Without the cargo feature `mpi`
//! the flag is refused with the command that builds it.
//!
//! The process-wide parts live here, called by `main`: joining the job before the command starts
//! (to choose the kernels' threads and quiet the other ranks' output), and ending it, well (every
//! rank waits for the others, then MPI is finalised) or after an error (MPI_Abort, so that no
//! rank is left waiting in a collective for one that has stopped).

use ferrograd_train::{Result, Trainer};

/// This process's place in the job.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub rank: usize,
    pub world: usize,
}

#[cfg(feature = "mpi")]
mod engine {
    use super::Place;
    use ferrograd_dist::{Collective, DataParallel, MpiWorld};
    use ferrograd_train::{Result, Strategy};

    pub fn join() -> Result<Place> {
        let w = MpiWorld::get()?;
        Ok(Place {
            rank: w.rank(),
            world: w.size(),
        })
    }

    pub fn strategy() -> Result<Box<dyn Strategy>> {
        Ok(Box::new(DataParallel::new(MpiWorld::get()?)))
    }

    pub fn collective() -> Result<Box<dyn Collective>> {
        Ok(Box::new(MpiWorld::get()?))
    }

    pub fn finish() {
        MpiWorld::finish()
    }

    pub fn abort(code: i32) -> ! {
        ferrograd_dist::mpi_world::abort(code)
    }
}

#[cfg(not(feature = "mpi"))]
mod engine {
    use super::Place;
    use ferrograd_train::{Result, Strategy, TrainError};

    fn unbuilt<T>() -> Result<T> {
        Err(TrainError::config(
            "--distributed: this ferrograd was built without MPI; build it with \
             `cargo build --release -p ferrograd-cli --features mpi` (needs Open MPI or MPICH: \
             apt-get install openmpi-bin libopenmpi-dev libclang-dev) and start it with mpirun",
        ))
    }

    pub fn join() -> Result<Place> {
        unbuilt()
    }

    pub fn strategy() -> Result<Box<dyn Strategy>> {
        unbuilt()
    }

    pub fn collective() -> Result<Box<dyn ferrograd_dist::Collective>> {
        unbuilt()
    }

    pub fn finish() {}

    pub fn abort(code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Joins the MPI job (once per process; later calls give the same place).
pub fn join() -> Result<Place> {
    engine::join()
}

/// The job's collective operations (for federated averaging over ranks).
pub fn collective() -> Result<Box<dyn ferrograd_dist::Collective>> {
    engine::collective()
}

/// The end of a run that went well on this rank: waits for the others, finalises MPI.
pub fn finish() {
    engine::finish()
}

/// The end of the whole job after an error on this rank.
pub fn abort(code: i32) -> ! {
    engine::abort(code)
}

/// This process's place: with `--distributed` its rank in the MPI job, else rank 0 of 1.
pub fn place(on: bool) -> Result<Place> {
    if on {
        join()
    } else {
        Ok(Place { rank: 0, world: 1 })
    }
}

/// With `--distributed`: `trainer` becomes this rank's data-parallel replica (its loader must
/// be the rank's shard: `DataLoader::with_shard(place.rank, place.world)`).
pub fn attach(on: bool, trainer: &mut Trainer) -> Result<()> {
    if on {
        trainer.set_strategy(engine::strategy()?);
    }
    Ok(())
}

impl Place {
    /// ` on 2 ranks (batch 32 each, 64 in all)` for the line that starts a run; empty on one.
    pub fn batch_note(&self, batch: usize) -> String {
        if self.world > 1 {
            format!(
                " per rank on {} ranks ({} in all)",
                self.world,
                batch * self.world
            )
        } else {
            String::new()
        }
    }
}

/// The kernels' threads for a rank when `--threads` is 0: the machine's cores shared by the
/// ranks on it (Open MPI and MPICH say how many there are), so that ranks do not oversubscribe.
pub fn threads_per_rank() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    (cores / local).max(1)
}

/// Sends this process's standard output to /dev/null: the ranks other than 0 train silently,
/// as rank 0 alone prints (their errors still go to standard error).
pub fn quiet_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: open and dup2 on a NUL-terminated path and valid descriptors; if either fails the
    // output stays where it was, which is only noisier
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::dup2(fd, libc::STDOUT_FILENO);
            libc::close(fd);
        }
    }
}
