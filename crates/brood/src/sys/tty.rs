//! The controlling terminal's foreground process group: `tcgetpgrp(3)` and
//! `tcsetpgrp(3)` on a descriptor.
//!
//! # References
//! tcgetpgrp(3), tcsetpgrp(3), credentials(7) (process groups and the
//! terminal), termios(3) (`SIGTTOU` for a background `tcsetpgrp`).

use std::os::fd::{AsRawFd, BorrowedFd};

/// The foreground process group of the terminal on `fd`; `None` when `fd` is
/// not a terminal (or not this session's).
pub fn foreground(fd: BorrowedFd<'_>) -> Option<u32> {
    // SAFETY: tcgetpgrp only reads the descriptor's terminal state.
    let pgid = unsafe { libc::tcgetpgrp(fd.as_raw_fd()) };
    (pgid > 0).then_some(pgid as u32)
}

/// Makes `pgid` the foreground group of the terminal on `fd`, from the
/// background too: SIGTTOU, which the kernel sends a background group that
/// does this, is blocked for the call (a blocked SIGTTOU lets it through).
pub fn set_foreground(fd: BorrowedFd<'_>, pgid: u32) -> std::io::Result<()> {
    let saved = super::sigmask::block_all();
    // SAFETY: tcsetpgrp only changes the terminal's foreground group.
    let rc = unsafe { libc::tcsetpgrp(fd.as_raw_fd(), pgid as libc::pid_t) };
    let result = if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    };
    saved.restore();
    result
}

/// `getpgrp()`: the caller's process group.
pub fn own_group() -> u32 {
    rustix::process::getpgrp().as_raw_nonzero().get() as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pipe_has_no_foreground_and_cannot_be_given_one() {
        let (r, _w) = crate::sys::pipe::pipe().unwrap();
        use std::os::fd::AsFd;
        assert_eq!(super::foreground(r.as_fd()), None);
        let e = super::set_foreground(r.as_fd(), super::own_group()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }
}
