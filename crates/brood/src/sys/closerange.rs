//! Closing many descriptors at once: `close_range(2)` (Linux 5.9), one call
//! per run of consecutive numbers instead of one `close` per descriptor.
//!
//! A fork-server child inherits one pidfd per sibling in flight — ten
//! thousand at scale — and must drop them all before it runs anything
//! (they would also eat its descriptor limit). One `close` each made every
//! fork cost milliseconds; the server keeps them at [`HIGH`] and above
//! ([`move_high`]) so that its child drops them with one call.
//!
//! # References
//! close_range(2).

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};

/// Where [`move_high`] puts descriptors: above everything a process that
/// allocates few others (lowest number first) will ever hold.
pub const HIGH: RawFd = 1024;

/// `fcntl(F_DUPFD_CLOEXEC, HIGH)`: the same file at a number ≥ [`HIGH`], so
/// that a forked child can drop them all with one [`close_high`]. Where the
/// limit leaves no room up there, `fd` comes back as it was (then close it
/// with [`close_all`]).
pub fn move_high(fd: OwnedFd) -> OwnedFd {
    match rustix::io::fcntl_dupfd_cloexec(&fd, HIGH) {
        Ok(high) => high,
        Err(_) => fd,
    }
}

/// Closes every descriptor numbered [`HIGH`] or more with one
/// `close_range(HIGH, ~0)`. `high` must be all of them: the caller gives
/// up their ownership here, and nothing else may be open up there (the fork
/// server's invariant: only [`move_high`] puts descriptors there).
pub fn close_high(high: impl IntoIterator<Item = OwnedFd>) {
    for fd in high {
        debug_assert!(fd.as_raw_fd() >= HIGH);
        // Closed by the range below, not one by one.
        let _ = fd.into_raw_fd();
    }
    // SAFETY: by this function's contract every descriptor ≥ HIGH was owned
    // by `high`, whose ownership ended above: nothing refers to them now.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, HIGH as u32, u32::MAX, 0u32) };
    if rc != 0 {
        // No close_range (Linux < 5.9): nothing better than one at a time,
        // up to the limit.
        let (soft, _) = crate::sys::rlimit::nofile();
        for fd in HIGH..soft.min(i32::MAX as u64) as RawFd {
            // SAFETY: as above (EBADF for the numbers not open is harmless).
            unsafe { libc::close(fd) };
        }
    }
}

/// Closes every descriptor in `fds`, runs of consecutive numbers with one
/// `close_range` each (plain `close` on a kernel without it).
pub fn close_all(fds: impl IntoIterator<Item = OwnedFd>) {
    // Owned, so closing them here is ours to do; from now on nothing else
    // refers to these numbers.
    let mut raw: Vec<RawFd> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    raw.sort_unstable();
    let mut i = 0;
    while i < raw.len() {
        let mut j = i;
        while j + 1 < raw.len() && raw[j + 1] == raw[j] + 1 {
            j += 1;
        }
        close_run(raw[i], raw[j]);
        i = j + 1;
    }
}

/// Closes `first..=last`, which the caller owns entirely.
fn close_run(first: RawFd, last: RawFd) {
    // SAFETY: every number in the run came from an OwnedFd given up by
    // `close_all`, so no other owner will use or close it again.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
    if rc != 0 {
        for fd in first..=last {
            // SAFETY: as above; the kernel did not close them (ENOSYS).
            unsafe { libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, OwnedFd};

    fn is_open(fd: i32) -> bool {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok()
    }

    #[test]
    fn closes_runs_and_single_descriptors_and_nothing_else() {
        let mut fds: Vec<OwnedFd> = Vec::new();
        for _ in 0..8 {
            let (r, w) = crate::sys::pipe::pipe().unwrap();
            fds.push(r);
            fds.push(w);
        }
        // Keep every third one open: the others form runs and singletons.
        let (mut kept, mut closed) = (Vec::new(), Vec::new());
        for (i, fd) in fds.into_iter().enumerate() {
            if i % 3 == 0 {
                kept.push(fd)
            } else {
                closed.push(fd)
            }
        }
        let gone: Vec<i32> = closed.iter().map(|f| f.as_raw_fd()).collect();
        super::close_all(closed);
        assert!(gone.iter().all(|&fd| !is_open(fd)), "closed: {gone:?}");
        assert!(
            kept.iter().all(|f| is_open(f.as_raw_fd())),
            "the kept ones stay open"
        );
    }
}
