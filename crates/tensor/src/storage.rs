//! The flat buffers tensors view. A `Storage` is shared (behind `Arc<RwLock<..>>`) by every view
//! of it; kernels in `cpu/` read and write plain slices of it.

use crate::dtype::DType;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static LIVE_BUFFERS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// How many times any storage has been opened for writing in this process. Anything computed
/// from tensor contents and kept (packed weights) is valid while this count has not moved: it
/// moves while the writer holds the storage's write lock, so a reader holding a read lock sees
/// either a count from after every finished write or none of the next one.
pub(crate) fn write_count() -> u64 {
    WRITES.load(Ordering::Acquire)
}

/// Records that a storage was opened for writing (called with its write lock held).
pub(crate) fn note_write() {
    WRITES.fetch_add(1, Ordering::AcqRel);
}

/// Number of storage buffers alive in this process; tests use it to show memory stays flat.
pub fn live_buffers() -> usize {
    LIVE_BUFFERS.load(Ordering::Relaxed)
}

/// Bytes held by live storage buffers.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// A flat buffer of one dtype.
#[derive(Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Storage {
    pub fn new_f32(v: Vec<f32>) -> Self {
        Self::track(v.len() * 4);
        Storage::F32(v)
    }
    pub fn new_f64(v: Vec<f64>) -> Self {
        Self::track(v.len() * 8);
        Storage::F64(v)
    }
    pub fn new_i64(v: Vec<i64>) -> Self {
        Self::track(v.len() * 8);
        Storage::I64(v)
    }
    fn track(bytes: usize) {
        LIVE_BUFFERS.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
            Storage::I64(_) => DType::I64,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::I64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        LIVE_BUFFERS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(self.len() * self.dtype().size_in_bytes(), Ordering::Relaxed);
    }
}

/// Builds a storage from a typed vector.
pub trait IntoStorage {
    fn into_storage(self) -> Storage;
}
impl IntoStorage for Vec<f32> {
    fn into_storage(self) -> Storage {
        Storage::new_f32(self)
    }
}
impl IntoStorage for Vec<f64> {
    fn into_storage(self) -> Storage {
        Storage::new_f64(self)
    }
}
impl IntoStorage for Vec<i64> {
    fn into_storage(self) -> Storage {
        Storage::new_i64(self)
    }
}
