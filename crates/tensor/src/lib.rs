//! # ferrograd-tensor
//!
//! n-dimensional strided tensors (`f32` for training, `f64` for checks, `i64` for indices) with a
//! dynamic computation graph and reverse-mode automatic differentiation.
//!
//! ```
//! use ferrograd_tensor::{Tensor, DType};
//! # fn main() -> ferrograd_tensor::Result<()> {
//! let w = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [3])?.requires_grad_(true)?;
//! let x = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], [3])?;
//! let loss = w.mul(&x)?.sum_all()?;      // L = sum w_i x_i
//! loss.backward()?;                       // dL/dw = x
//! assert_eq!(w.grad().unwrap().to_vec::<f64>()?, vec![0.5, -1.0, 2.0]);
//! # Ok(()) }
//! ```
//!
//! Layout: [`shape`], [`layout`] and [`storage`] describe data; [`tensor`] is the handle;
//! [`autograd`] records and walks the graph; [`ops`] holds one file per op family, each op's
//! backward beside its forward; [`cpu`] holds the kernels, which know nothing of gradients;
//! [`gradcheck`] compares backward with finite differences.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod autograd;
pub mod cpu;
pub mod creation;
mod display;
pub mod dtype;
pub mod error;
pub mod files;
pub mod gradcheck;
pub mod layout;
pub mod ops;
pub mod rng;
pub mod shape;
pub mod sparse_grad;
pub mod storage;
pub mod tensor;

pub use autograd::{is_grad_enabled, no_grad, set_grad_enabled};
pub use creation::Element;
pub use dtype::DType;
pub use error::{Error, Result};
pub use gradcheck::{gradcheck, GradcheckOptions, GradcheckReport};
pub use layout::Layout;
pub use ops::conv::{Conv1dOptions, Conv2dOptions};
pub use ops::embedding::BagMode;
pub use ops::pool::Pool2dOptions;
pub use ops::recurrent::{RecurrentCell, ScanOptions};
pub use rng::Rng;
pub use shape::Shape;
pub use sparse_grad::RowSparse;
pub use tensor::{Tensor, TensorId};

/// Runs `f` on one of the kernels' threads and returns its result (a panic in `f` resumes in
/// the caller). Call [`set_num_threads`] first, if at all: the first use of the threads fixes
/// their number.
///
/// A program's main thread is not one of them: each parallel kernel it calls hands its work to
/// the pool and sleeps until the pool's threads have done it, which wakes a thread and puts one
/// to sleep per kernel, thousands of times per training epoch (an MNIST MLP epoch at batch 128:
/// 19,000-21,000 context switches, and 10% of its CPU samples in the OS scheduler). Run on a
/// pool thread, the caller starts each kernel's work itself and only the other threads are
/// woken: 2,500-2,700 context switches, epochs 10-15% shorter, LeNet-5 5%, a GPT step 6%
/// (same-binary A/B, 2 threads). Results are unchanged: the kernels split work the same way
/// from any thread.
///
/// `f` should not wait for other threads that use the kernels (it would hold a pool thread
/// while it waits). With the `openblas` feature, `f` runs on the calling thread instead: large
/// products go to OpenBLAS, with its own threads, only when made outside the pool.
pub fn run_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if cfg!(feature = "openblas") {
        f()
    } else {
        rayon::scope(move |_| f())
    }
}

/// Sets the number of threads kernels use (0: one per core). Call once, before any op; results
/// do not depend on it (see the crate README on determinism).
pub fn set_num_threads(n: usize) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let most = 4 * cores;
    if n > most {
        return Err(Error::Value {
            op: "set_num_threads",
            msg: format!(
                "{n} threads is more than the {most} this machine can use ({cores} cores, at most \
                 4 threads each: more only add switching)"
            ),
        });
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        // a program's own code may run on these threads (`run_on_pool`): give them the stack
        // of a main thread rather than the 2 MiB of a spawned one
        .stack_size(8 << 20)
        .build_global()
        .map_err(|e| Error::Value {
            op: "set_num_threads",
            msg: format!("cannot configure the thread pool: {e}"),
        })
}
