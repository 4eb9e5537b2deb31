//! Keeping freed memory in the process (glibc only).
//!
//! A training step allocates and frees the same large buffers again and again. glibc's malloc
//! serves blocks above its mmap threshold (128 KiB, raised on the fly up to 32 MiB) with fresh
//! `mmap`s and returns freed heap tops to the system, so every step pays page faults and the
//! kernel's page zeroing on memory it just gave back: 8-13% of a GPT training step here.
//! [`keep_freed_memory`] raises both thresholds so freed blocks stay in the heap for the next
//! step. The process's peak memory is unchanged (it is reached anyway); memory is returned to
//! the system at exit instead of during the run. A program calls it once, at start.

/// Makes glibc malloc keep freed blocks of up to 1 GiB for reuse; a no-op on other platforms.
/// Returns whether the setting was applied.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's <malloc.h>: M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes allocator tuning parameters; any values are accepted
        // (it returns 0 when it rejects one).
        unsafe {
            mallopt(-3, 1 << 30) == 1 && mallopt(-1, i32::MAX) == 1 && mallopt(-2, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
