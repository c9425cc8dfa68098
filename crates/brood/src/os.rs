//! The kernel's view of processes, for programs that watch children from the
//! outside: a supervisor that adopts orphans, a test that checks a child really
//! ended, a tool that draws the process tree.
//!
//! brood itself needs none of this to run a child; it is the small, safe part
//! of brood's platform layer that is worth having outside it:
//!
//! | need | here | kernel mechanism |
//! | --- | --- | --- |
//! | who am I, who is my parent, does pid N exist | [`getpid`], [`getppid`], [`pid_exists`] | `getpid(2)`, `getppid(2)`, `kill(pid, 0)` |
//! | adopt orphaned descendants | [`set_child_subreaper`], [`is_child_subreaper`] | `PR_SET_CHILD_SUBREAPER` (Linux 3.4) |
//! | a handle on one process that a reused pid cannot fool | [`PidFd`], [`wait_exited`] | pidfds (Linux 5.3) |
//! | state, parent, group, start time, children of any process | [`procfs`] | `/proc` |
//!
//! ```
//! use brood::os::{self, procfs, PidFd};
//! use std::time::Duration;
//!
//! let mut child = std::process::Command::new("sleep").arg("30").spawn()?;
//! let stat = procfs::stat(child.id())?.expect("not reaped yet");
//! assert_eq!(stat.ppid, os::getpid());
//!
//! let pidfd = PidFd::open(child.id())?;
//! pidfd.send_signal(brood::Signal::KILL)?;
//! assert!(pidfd.wait_exited(Some(Duration::from_secs(5)))?);
//! // Ended but not reaped: a zombie, until `wait`.
//! assert!(procfs::stat(child.id())?.expect("a zombie").is_zombie());
//! child.wait()?;
//! assert!(procfs::stat(child.id())?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::Signal;
use crate::sys;

/// Reading processes through `/proc` (proc(5)).
///
/// Every function is a snapshot: a process may end between two reads. A process
/// that is not there (never was, or ended and was reaped, even in the middle of
/// a read) is `Ok(None)`, never an error.
pub mod procfs {
    pub use crate::sys::procfs::{
        MalformedStat, ProcfsError, Stat, State, children, children_by_scan, cmdline, environ,
        parse_stat, pids, stat, stat_self,
    };
    pub use crate::sys::usage::{ProcUsage, process as usage};
}

/// The calling process's pid, `getpid(2)`: the same as [`std::process::id`].
///
/// ```
/// assert_eq!(brood::os::getpid(), std::process::id());
/// ```
pub fn getpid() -> u32 {
    sys::getpid()
}

/// The parent's pid, `getppid(2)`; 0 when the parent is in another pid
/// namespace.
///
/// ```
/// let me = brood::os::procfs::stat_self()?;
/// assert_eq!(brood::os::getppid(), me.ppid);
/// # Ok::<(), brood::os::procfs::ProcfsError>(())
/// ```
pub fn getppid() -> u32 {
    sys::getppid()
}

/// Whether a process with this pid exists, `kill(pid, 0)`: true for a zombie
/// too, and for a process that exists but is not ours to signal.
///
/// A pid says nothing about *which* process: once reaped, the number may be
/// reused. Hold a [`PidFd`] (or compare [`procfs::Stat::start_time`]) to follow
/// one process.
///
/// ```
/// assert!(brood::os::pid_exists(std::process::id()));
/// assert!(!brood::os::pid_exists((1 << 22) + 1)); // above any pid_max
/// ```
pub fn pid_exists(pid: u32) -> bool {
    sys::pid_exists(pid)
}

/// Makes the calling process a child subreaper (`on`), or stops it being one:
/// `prctl(PR_SET_CHILD_SUBREAPER)`.
///
/// A descendant orphaned by its parent's end is then re-parented to this
/// process instead of to init, so this process sees it (its `ppid` becomes ours)
/// and must reap it. Not inherited by children; cleared by nothing but this call.
///
/// ```
/// brood::os::set_child_subreaper(true)?;
/// assert!(brood::os::is_child_subreaper()?);
/// brood::os::set_child_subreaper(false)?;
/// assert!(!brood::os::is_child_subreaper()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_child_subreaper(on: bool) -> io::Result<()> {
    sys::prctl::set_child_subreaper(on)
}

/// Whether the calling process is a child subreaper:
/// `prctl(PR_GET_CHILD_SUBREAPER)`.
pub fn is_child_subreaper() -> io::Result<bool> {
    sys::prctl::is_child_subreaper()
}

/// Asks the kernel to send `sig` to this process when its parent (thread)
/// dies: `prctl(PR_SET_PDEATHSIG, sig)`. Cleared by `fork`, kept across
/// `execve` of a program that is not set-uid. Compare [`getppid`] with the
/// parent you expect right after, to close the race with a parent that
/// already died.
///
/// ```
/// brood::os::set_parent_death_signal(Some(brood::Signal::TERM))?;
/// brood::os::set_parent_death_signal(None)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_parent_death_signal(sig: Option<Signal>) -> io::Result<()> {
    sys::prctl::set_parent_death_signal(sig.map_or(0, Signal::as_raw))
}

/// Whether any process is left in the process group `pgid`: `kill(-pgid, 0)`
/// (true also when they exist but belong to another user). Refuses `pgid` 0
/// and 1, which `kill` reads as "my group" and "everyone".
///
/// ```
/// let me = brood::os::procfs::stat_self()?.pgrp.unwrap();
/// assert!(me <= 1 || brood::os::group_exists(me));
/// # Ok::<(), brood::os::procfs::ProcfsError>(())
/// ```
pub fn group_exists(pgid: u32) -> bool {
    sys::pgrp::group_exists(pgid)
}

/// A process file descriptor: a handle on one process that can never be
/// confused with a later process that reuses its pid.
///
/// Signals through it reach that process or fail with `ESRCH` once it has been
/// reaped; it becomes readable (see [`PidFd::wait_exited`]) when the process
/// ends, whether or not it is ours to reap. Closed on drop, and close-on-exec.
///
/// ```
/// use brood::os::PidFd;
/// use std::time::Duration;
///
/// let mut child = std::process::Command::new("sleep").arg("30").spawn()?;
/// let pidfd = PidFd::open(child.id())?;
/// assert_eq!(pidfd.pid(), child.id());
/// assert!(!pidfd.wait_exited(Some(Duration::ZERO))?);
/// pidfd.send_signal(brood::Signal::TERM)?;
/// assert!(pidfd.wait_exited(None)?);
/// child.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// `pidfd_open(pid, 0)`. Fails with `ESRCH` when there is no such process
    /// (a zombie still has one).
    pub fn open(pid: u32) -> io::Result<PidFd> {
        Ok(PidFd {
            fd: sys::pidfd::open(pid)?,
            pid,
        })
    }

    /// The pid it was opened for (which, after the process is reaped, may name
    /// another process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `pidfd_send_signal(fd, sig)`: signals exactly this process; `ESRCH` once
    /// it has been reaped.
    pub fn send_signal(&self, sig: Signal) -> io::Result<()> {
        sys::pidfd::send_signal(self.fd.as_fd(), sig.as_raw())
    }

    /// Waits up to `timeout` (`None`: without limit) for the process to end;
    /// true if it has. Reaps nothing.
    pub fn wait_exited(&self, timeout: Option<Duration>) -> io::Result<bool> {
        wait_exited(self.fd.as_fd(), timeout)
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<PidFd> for OwnedFd {
    fn from(pidfd: PidFd) -> OwnedFd {
        pidfd.fd
    }
}

/// Waits up to `timeout` (`None`: without limit) for the process behind a pidfd
/// you already hold (such as [`Child::pidfd`](crate::Child::pidfd)) to end:
/// `poll(2)` for readability, interrupted waits resumed. True if it has ended.
/// Reaps nothing.
pub fn wait_exited(pidfd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    sys::pidfd::wait_exited(pidfd, timeout)
}
