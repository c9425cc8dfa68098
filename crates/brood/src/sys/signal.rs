//! Signal dispositions of this process, and signals to itself.
//!
//! # References
//! signal(2), kill(2), getpid(2).

/// Restores the default action of `sig` (`signal(sig, SIG_DFL)`).
/// Async-signal-safe: usable in a freshly forked child.
pub fn reset_to_default(sig: i32) {
    // SAFETY: restoring SIG_DFL installs no handler of ours; an invalid number
    // is refused by the kernel with EINVAL.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Sends `sig` to this process (`kill(getpid(), sig)`). Async-signal-safe.
pub fn raise_in_self(sig: i32) {
    // SAFETY: signalling ourselves with a number the caller chose.
    unsafe { libc::kill(libc::getpid(), sig) };
}
