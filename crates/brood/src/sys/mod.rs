//! The platform layer: every kernel mechanism brood relies on, one file each.
//!
//! Nothing outside this module makes a system call about process lifecycles; the
//! rest of the crate is written against these small functions so that another
//! platform (macOS: kqueue `EVFILT_PROC` and a death pipe) can follow by providing
//! the same functions.
//!
//! | mechanism | file | Linux needed |
//! | --- | --- | --- |
//! | process file descriptors: open, signal, wait, poll | [`pidfd`] | 5.4 (`pidfd_open` 5.3, `waitid(P_PIDFD)` 5.4) |
//! | parent-death signal, child subreaper | [`prctl`] | 2.1.57 / 3.4 |
//! | process groups and sessions | [`pgrp`] | any |
//! | `/proc`: a process's state, parent, start time, children | [`procfs`] | 3.5 for `children` (else a scan) |
//! | fork, `_exit`, thread identity | [`fork`] | any |
//! | pipes, descriptor plumbing | [`pipe`] | 2.6.35 (`F_SETPIPE_SZ`, optional) |
//! | private sockets passing descriptors, peer credentials | [`socket`] | 2.6.23 (`MSG_CMSG_CLOEXEC`) |
//! | `clone(CLONE_VM \| CLONE_VFORK \| CLONE_PIDFD)` then `execve` | [`clone`] | 5.2 |
//! | the coarse monotonic clock (a pool worker's pacing) | [`clock`] | 2.6.32 |
//! | registering a descriptor with tokio's reactor (feature `tokio`) | `reactor` | any |
//! | cgroup v2: a child's own cgroup, `cgroup.kill`, the `flock` that marks a live owner's directory | [`cgroup`] | 4.5 (v2); 5.14 for `cgroup.kill` |
//! | readiness notifications: `NOTIFY_SOCKET` with the sender's credentials, s6's descriptor | [`notify`] | 2.2 (`SO_PASSCRED`) |
//! | what a process or a cgroup used: `/proc/<pid>/stat` and `status`, `cpu.stat` | [`usage`] | any; 4.15 for `cpu.stat` without the cpu controller |
//! | the executable's build id (its `PT_NOTE`s) or content hash, the same on every machine | [`buildid`] | any |
//! | which pid namespace children go to (after `unshare(CLONE_NEWPID)` no thread starts) | [`ns`] | 4.12 (`pid_for_children`; before, never seen) |

#[cfg(not(target_os = "linux"))]
compile_error!(
    "brood supports Linux today; see the platform table in src/sys/mod.rs for what another OS must provide"
);

pub mod atexit;
pub mod buildid;
pub mod cgroup;
pub mod clock;
pub mod clone;
pub mod closerange;
pub mod env;
pub mod fork;
pub mod forklocal;
pub mod image;
pub mod interrupt;
pub mod keeper;
pub mod madvise;
pub mod notify;
pub mod ns;
pub mod pgrp;
pub mod pidfd;
pub mod pipe;
pub mod prctl;
pub mod procfs;
pub mod proctitle;
pub mod random;
#[cfg(feature = "tokio")]
pub mod reactor;
pub mod reap;
pub mod rlimit;
pub mod shm;
pub mod sigaction;
pub mod sigmask;
pub mod signal;
pub mod socket;
pub mod thread;
pub mod tty;
pub mod usage;
pub mod watch;

/// The calling process's pid: `getpid(2)`.
pub fn getpid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// The parent's pid: `getppid(2)` (0 when the parent is in another pid namespace).
pub fn getppid() -> u32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
}

/// Is there a process with this pid? `kill(pid, 0)`: true for a zombie too, and true
/// when it exists but belongs to someone we may not signal (EPERM).
pub fn pid_exists(pid: u32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks existence/permission.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
