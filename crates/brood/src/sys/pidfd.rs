//! Process file descriptors (pidfds): a handle on one process that can never be
//! confused with a later process that reuses the pid.
//!
//! - `pidfd_open(2)` (Linux 5.3) opens one for an existing pid.
//! - `pidfd_send_signal(2)` (Linux 5.1) signals exactly that process; after it has
//!   been reaped the call fails with `ESRCH`, so a reused pid is never hit.
//! - `poll(2)` on a pidfd reports it readable once the process has exited (zombie
//!   or reaped).
//! - `waitid(P_PIDFD, fd, …)` (Linux 5.4) reaps it; `ECHILD` then means someone
//!   else already reaped it.
//!
//! # References
//! pidfd_open(2), pidfd_send_signal(2), waitid(2), poll(2).

use rustix::event::{PollFd, PollFlags};
use rustix::process::{WaitIdOptions, WaitIdStatus};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `syscall(SYS_pidfd_open, pid, 0)`: a pidfd for `pid`, close-on-exec.
pub fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Wraps a raw pidfd received from the kernel (`CLONE_PIDFD`) or another process.
///
/// # Safety
/// `fd` must be an open pidfd that nothing else owns.
pub unsafe fn from_raw(fd: i32) -> OwnedFd {
    // SAFETY: the caller promises sole ownership of an open descriptor.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0)`.
pub fn send_signal(fd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    if !(1..=64).contains(&sig) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: 1..=64 are the kernel's signal numbers; the value is only sent
    // (rustix's caveat about libc-reserved real-time signals concerns handlers
    // and masks in *this* process, which sending to another does not touch).
    let sig = unsafe { rustix::process::Signal::from_raw_unchecked(sig) };
    Ok(rustix::process::pidfd_send_signal(fd, sig)?)
}

/// What a non-blocking reap found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reap {
    /// Still running (or stopped).
    Running,
    /// We reaped it now; how it ended, as a classic wait status (`WIFEXITED`…).
    Exited(i32),
    /// `ECHILD`: it was not (or no longer) ours to reap — someone else reaped it.
    Gone,
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`: reap the process if it has ended.
pub fn try_reap(fd: BorrowedFd<'_>) -> io::Result<Reap> {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
    loop {
        match rustix::process::waitid(rustix::process::WaitId::PidFd(fd), opts) {
            Ok(None) => return Ok(Reap::Running),
            Ok(Some(st)) => return Ok(wait_status(&st).map_or(Reap::Running, Reap::Exited)),
            Err(rustix::io::Errno::CHILD) => return Ok(Reap::Gone),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn wait_status(st: &WaitIdStatus) -> Option<i32> {
    if st.exited() {
        st.exit_status().map(|code| (code & 0xff) << 8)
    } else if st.killed() || st.dumped() {
        let core = if st.dumped() { 0x80 } else { 0 };
        st.terminating_signal().map(|sig| sig | core)
    } else {
        // A zero si_pid (nothing to report) also lands here.
        None
    }
}

/// Is the process behind `fd` a child of the caller (reaped or not yet)?
/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG | WNOWAIT)`: reaps nothing; `ECHILD`
/// means it is not (or no longer) ours to wait for.
pub fn is_own_child(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    loop {
        match rustix::process::waitid(rustix::process::WaitId::PidFd(fd), opts) {
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::CHILD) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `poll(2)` the pidfd for readability: true once the process has exited.
/// `timeout` None waits without limit. EINTR is retried with the time left.
pub fn wait_exited(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    wait_readable(fd, timeout)
}

/// `poll(2)` any fd for readability (or hang-up) up to `timeout`.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    Ok(wait_any(&[fd], timeout)?.is_some())
}

/// Has the process behind the pidfd exited? (A zero-timeout poll.)
pub fn has_exited(fd: impl AsFd) -> io::Result<bool> {
    wait_exited(fd.as_fd(), Some(Duration::ZERO))
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a second descriptor for the same pidfd, for a
/// reactor that registers descriptors by number (tokio's refuses to register
/// one number twice, so each async waiter watches its own copy).
#[cfg(feature = "tokio")]
pub fn duplicate(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// `poll(2)` descriptors for readability (or hang-up) up to `timeout`: the
/// index of the first that is ready (the lowest when several are), `None` on
/// timeout. EINTR is retried with the time left.
pub fn wait_any(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Option<usize>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut polled: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        let left = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            }
        });
        match rustix::event::poll(&mut polled, left.as_ref()) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(polled.iter().position(|p| !p.revents().is_empty())),
            Err(rustix::io::Errno::INTR) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
