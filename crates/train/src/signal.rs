//! Ctrl-C and SIGTERM as a request to stop at the next step boundary, while a run is going on.
//! [`install`] registers handlers that set a flag the Trainer reads after every step (it then
//! writes its checkpoint and returns [`TrainError::Interrupted`](crate::TrainError::Interrupted));
//! a second signal while the flag is set ends the process at once, as users expect of a second
//! Ctrl-C. Dropping the guard unregisters them, so outside a run the signals do what they did.

use signal_hook::SigId;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Keeps the handlers registered while it lives.
pub struct StopGuard {
    ids: Vec<SigId>,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Registers the handlers (the flag cleared) until the guard is dropped.
pub fn install() -> StopGuard {
    let f = flag();
    f.store(false, Ordering::Relaxed);
    let mut ids = Vec::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // order matters: the conditional exit sees the flag before this signal sets it
        ids.extend(signal_hook::flag::register_conditional_shutdown(sig, 130, f.clone()).ok());
        ids.extend(signal_hook::flag::register(sig, f.clone()).ok());
    }
    StopGuard { ids }
}

/// Whether a stop was requested since [`install`].
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
