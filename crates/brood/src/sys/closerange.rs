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

/// In a forked child: closes every descriptor in `fds` — those at [`HIGH`]
/// and above with one `close_range(HIGH, ~0)`, the others one by one — and
/// every other descriptor at [`HIGH`] and above, of which there must be none
/// (the fork server's invariant: only [`move_high`] puts descriptors there).
/// Allocates nothing and writes no memory of the caller's but the stack: in
/// a forked child each page written is a copy-on-write fault.
pub fn close_inherited(fds: impl IntoIterator<Item = OwnedFd>) {
    for fd in fds {
        if fd.as_raw_fd() >= HIGH {
            // Closed by the range below, not one by one.
            let _ = fd.into_raw_fd();
        } else {
            drop(fd);
        }
    }
    // SAFETY: by this function's contract every descriptor ≥ HIGH was owned
    // by `fds`, whose ownership ended above: nothing refers to them now.
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

/// Binds `close_range` in this process (an empty range), so that each forked
/// child does not resolve the symbol itself (the dynamic linker's lookup and
/// its write are a dozen copy-on-write faults per child).
pub fn warm() {
    // SAFETY: first > last: the kernel closes nothing (EINVAL).
    unsafe { libc::syscall(libc::SYS_close_range, u32::MAX, 0u32, 0u32) };
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    fn is_open(fd: i32) -> bool {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok()
    }

    #[test]
    fn a_descriptor_moved_high_is_the_same_file_above_the_line() {
        let (r, w) = crate::sys::pipe::pipe().unwrap();
        let low = r.as_raw_fd();
        let high = super::move_high(r);
        assert!(high.as_raw_fd() >= super::HIGH, "{}", high.as_raw_fd());
        assert!(!is_open(low), "the low number was given back");
        rustix::io::write(&w, b"x").unwrap();
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&high, &mut b).unwrap(), 1);
    }
}
