//! Data-parallel training for ferrograd's Trainer: [`DataParallel`] averages gradients over the
//! replicas of a run as PyTorch's DistributedDataParallel does (rank 0's weights first, buckets
//! in reverse parameter order started during the backward), over a [`Collective`]: replicas as
//! threads ([`ThreadWorld`]) or, with the feature `mpi`, as the processes of an MPI job
//! ([`MpiWorld`]).

pub mod buckets;
pub mod collective;
pub mod data_parallel;
pub mod federated;
#[cfg(feature = "mpi")]
pub mod mpi_world;
pub mod sync_batchnorm;
pub mod thread_world;

pub use collective::{Collective, Flat, Pending};
pub use data_parallel::{CommStats, DataParallel};
pub use federated::{FedAvg, FedConfig, Partition, RoundReport};
#[cfg(feature = "mpi")]
pub use mpi_world::MpiWorld;
pub use sync_batchnorm::{SyncBatchNorm, SyncStatistics};
pub use thread_world::ThreadWorld;
