//! The calling thread's signal mask, blocked around `fork` so that no signal is
//! handled in the new child before it has reset the handlers it must not keep.
//!
//! # References
//! pthread_sigmask(3), sigprocmask(2).

/// A saved signal mask, restored by [`SavedMask::restore`].
pub struct SavedMask(libc::sigset_t);

/// Blocks every signal in the calling thread and returns the previous mask.
/// Async-signal-safe.
pub fn block_all() -> SavedMask {
    // SAFETY: sigset_t is plain data; sigfillset initialises `all`, and
    // pthread_sigmask writes the old mask into `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        SavedMask(old)
    }
}

impl SavedMask {
    /// Puts the saved mask back. Async-signal-safe.
    pub fn restore(&self) {
        // SAFETY: restoring a mask that pthread_sigmask itself produced.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
