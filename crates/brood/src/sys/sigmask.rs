//! The calling thread's signal mask, blocked around `fork` so that no signal is
//! handled in the new child before it has reset the handlers it must not keep;
//! emptied in a `Process` child before its function runs; carried to the
//! spawner thread for the job it runs for a caller.
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

/// Unblocks every signal in the calling thread: the mask every `Process`
/// child starts its function with, whatever thread and mask started it.
/// Async-signal-safe.
pub fn unblock_all() {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// The calling thread's mask, unchanged.
pub fn current() -> SavedMask {
    // SAFETY: a null new set changes nothing; the old one is written to `old`.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        SavedMask(old)
    }
}

impl SavedMask {
    /// Makes this the calling thread's mask; returns the one it replaced.
    pub fn apply(&self) -> SavedMask {
        // SAFETY: setting a mask pthread_sigmask produced; the old one is
        // written to `old`.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, &mut old);
            SavedMask(old)
        }
    }

    /// Puts the saved mask back. Async-signal-safe.
    pub fn restore(&self) {
        // SAFETY: restoring a mask that pthread_sigmask itself produced.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}
