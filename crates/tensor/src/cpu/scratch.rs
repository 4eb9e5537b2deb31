//! Per-thread scratch buffers that outlive one kernel call.
//!
//! Kernels such as the convolutions need large temporary matrices (unfolded images, gathered
//! gradients) on every call. Allocating them fresh costs a zero fill and, for large sizes, page
//! faults each time; here each thread keeps a few buffers and hands them out again. Contents
//! are left over from earlier use: a kernel must write every element it reads.

use crate::dtype::Float;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Buffers kept per thread, and the largest size kept (in 8-byte words): bigger ones are freed
/// so that one huge call does not pin its memory for the life of the thread.
const KEPT: usize = 4;
const KEPT_WORDS: usize = 16 << 20;

thread_local! {
    static POOL: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer of `T`; returned to its thread's pool on drop.
pub struct Scratch<T: Float> {
    words: Vec<u64>,
    len: usize,
    _t: PhantomData<T>,
}

/// A buffer of at least `len` elements of `T` with unspecified (but valid) contents.
pub fn take<T: Float>(len: usize) -> Scratch<T> {
    let size = std::mem::size_of::<T>();
    // every Float is f32 or f64: 4 or 8 bytes, aligned at most to 8 (checked at compile time
    // for the two implementations; this guards any future one)
    assert!(
        size == 4 || size == 8,
        "scratch: unsupported element size {size}"
    );
    let need = (len * size).div_ceil(8);
    let mut words = POOL
        .with(|p| {
            let mut p = p.borrow_mut();
            // the smallest kept buffer that is large enough, else the largest (to grow)
            let fit = (0..p.len())
                .filter(|&i| p[i].len() >= need)
                .min_by_key(|&i| p[i].len())
                .or_else(|| (0..p.len()).max_by_key(|&i| p[i].len()));
            fit.map(|i| p.swap_remove(i))
        })
        .unwrap_or_default();
    if words.len() < need {
        words.resize(need, 0);
    }
    Scratch {
        words,
        len,
        _t: PhantomData,
    }
}

impl<T: Float> Scratch<T> {
    /// A buffer of no elements that holds no memory (a placeholder to be replaced by `take`).
    pub fn empty() -> Self {
        Scratch {
            words: Vec::new(),
            len: 0,
            _t: PhantomData,
        }
    }
}

impl<T: Float> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the words hold at least `len` elements of T (size 4 or 8, alignment <= 8 =
        // the words' alignment), and every bit pattern is a valid f32 / f64.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Float> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `self` is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Float> Drop for Scratch<T> {
    fn drop(&mut self) {
        let words = std::mem::take(&mut self.words);
        if words.is_empty() || words.len() > KEPT_WORDS {
            return;
        }
        // `try_with`: during thread teardown the pool may already be gone; then just free.
        let _ = POOL.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < KEPT {
                    p.push(words);
                } else if let Some(small) = p.iter_mut().min_by_key(|b| b.len()) {
                    if small.len() < words.len() {
                        *small = words;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized() {
        let ptr = {
            let mut a = take::<f32>(1000);
            assert_eq!(a.len(), 1000);
            a[999] = 1.0;
            a.as_ptr() as usize
        };
        let b = take::<f32>(500);
        assert_eq!(b.len(), 500);
        assert_eq!(
            b.as_ptr() as usize,
            ptr,
            "the freed buffer is handed out again"
        );
        let c = take::<f64>(700);
        assert_eq!(c.len(), 700);
        assert_ne!(c.as_ptr() as usize, b.as_ptr() as usize);
    }
}
