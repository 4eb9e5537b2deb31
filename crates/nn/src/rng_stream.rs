//! A random stream owned by a layer (dropout masks): a generator behind a lock, so that a
//! forward pass through `&self` can draw from it, and whose state a checkpoint saves and
//! restores (see [`Module::visit_rng_streams`](crate::Module::visit_rng_streams)): a resumed run
//! then draws the same masks as one that never stopped.

use ferrograd_tensor::Rng;
use std::sync::{Mutex, MutexGuard};

pub struct RngStream(Mutex<Rng>);

impl RngStream {
    pub fn new(seed: u64) -> Self {
        RngStream(Mutex::new(Rng::new(seed)))
    }
    /// The generator, for drawing (a poisoned lock still holds a valid generator).
    pub fn lock(&self) -> MutexGuard<'_, Rng> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn state(&self) -> [u64; 4] {
        self.lock().state()
    }
    pub fn set_state(&self, s: [u64; 4]) {
        *self.lock() = Rng::from_state(s);
    }
    pub fn reseed(&self, seed: u64) {
        *self.lock() = Rng::new(seed);
    }
}
