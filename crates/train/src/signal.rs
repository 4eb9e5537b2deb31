//! Ctrl-C and SIGTERM as a request to stop at the next step boundary. The first signal sets a
//! flag the Trainer reads after every step (it then writes its checkpoint and returns
//! [`TrainError::Interrupted`](crate::TrainError::Interrupted)); a second one while the flag is
//! set ends the process at once, as users expect of a second Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process) and returns the flag they set.
pub fn install() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // order matters: the conditional exit sees the flag before this signal sets it
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
    .clone()
}

/// Whether a stop was requested (false when the handlers were never installed).
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
