//! Packed copies of weight matrices, kept between inference calls.
//!
//! Our f32 GEMM copies its right-hand operand into 16-column panels before multiplying. For a
//! fully connected layer at inference that operand is `W^T`, the same on every call: packing it
//! once and keeping the copy saved 4% of a 1000 x 500 x 784 product (MNIST MLP inference).
//!
//! A copy is used only while the weight provably has not changed. It is keyed by the weight's
//! storage (held weakly: the copy is dropped once the weight is), the view of it (offset, shape,
//! strides), and the process-wide count of storage writes, which every in-place change of any
//! tensor moves (optimizer steps, `copy_from`, loading weights, running statistics). Products
//! that record a graph never use it: a weight being trained changes every step.
//!
//! Memory: at most [`budget`] bytes of copies (256 MiB unless [`set_budget`] says otherwise;
//! 0 turns the cache off), least recently used dropped first. The copy is the size of the
//! weight, so inference holds each cached weight twice.

use crate::cpu::sgemm::PackedB;
use crate::storage::{write_count, Storage};
use crate::tensor::Tensor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

const DEFAULT_BUDGET: usize = 256 << 20;
static BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_BUDGET);
static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

/// The most bytes packed weights may hold.
pub fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// Sets the most bytes packed weights may hold (0 turns the cache off and frees what it held);
/// returns the previous budget.
pub fn set_budget(bytes: usize) -> usize {
    let old = BUDGET.swap(bytes, Ordering::Relaxed);
    let mut cache = lock();
    cache.shrink_to(bytes);
    old
}

/// Bytes held by packed weights now.
pub fn held_bytes() -> usize {
    lock().held()
}

/// Copies held now.
pub fn held_copies() -> usize {
    lock().entries.len()
}

struct Entry {
    storage: Weak<RwLock<Storage>>,
    view: View,
    writes: u64,
    packed: Arc<PackedB>,
    used: u64,
}

/// Where in its storage a weight's elements are: offset, shape, strides.
#[derive(Clone, PartialEq, Eq)]
struct View(usize, Vec<usize>, Vec<usize>);

struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

impl Cache {
    fn held(&self) -> usize {
        self.entries.iter().map(|e| e.packed.bytes()).sum()
    }

    /// Drops the copies of weights that were dropped or may have changed.
    fn purge(&mut self, writes: u64) {
        self.entries
            .retain(|e| e.writes == writes && e.storage.strong_count() > 0);
    }

    /// Drops least recently used copies until at most `bytes` are held.
    fn shrink_to(&mut self, bytes: usize) {
        while self.held() > bytes {
            let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used);
            match oldest {
                Some(i) => drop(self.entries.swap_remove(i)),
                None => break,
            }
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The packed copy of `w` (as its view is now), from the cache or made by `pack` (and kept,
/// budget permitting).
///
/// The caller must hold a read lock of `w`'s storage from before this call until it is done
/// with the copy, so that no write can come between the check of the write count and the use.
pub(crate) fn packed_for(w: &Tensor, pack: impl FnOnce() -> PackedB) -> Arc<PackedB> {
    let writes = write_count();
    let storage = Arc::downgrade(&w.0.storage);
    let l = w.layout();
    let view = View(l.offset(), l.dims().to_vec(), l.strides().to_vec());
    {
        let mut cache = lock();
        cache.purge(writes);
        cache.clock += 1;
        let now = cache.clock;
        if let Some(e) = cache
            .entries
            .iter_mut()
            .find(|e| e.storage.ptr_eq(&storage) && e.view == view)
        {
            e.used = now;
            return e.packed.clone();
        }
    }
    // packed without the cache's lock: other threads' layers need not wait for this one
    let packed = Arc::new(pack());
    let budget = budget();
    if packed.bytes() <= budget {
        let mut cache = lock();
        cache.purge(writes);
        let found = cache
            .entries
            .iter()
            .any(|e| e.storage.ptr_eq(&storage) && e.view == view);
        if !found && write_count() == writes {
            cache.shrink_to(budget - packed.bytes());
            cache.clock += 1;
            let used = cache.clock;
            cache.entries.push(Entry {
                storage,
                view,
                writes,
                packed: packed.clone(),
                used,
            });
        }
    }
    packed
}
