//! Process groups and sessions: how a signal reaches a child's whole tree.
//!
//! A child started with `Tree::Group` calls `setpgid(0, 0)` (and the parent calls
//! `setpgid(pid, pid)` too, so that neither order of the two can lose); with
//! `Tree::Session` it calls `setsid()`. Either way its pid is the group id and
//! `kill(-pgid, sig)` reaches every process still in the group, grandchildren
//! included, unless they moved to a group of their own.
//!
//! # References
//! setpgid(2), setsid(2), kill(2).

use std::io;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setpgid(pid, pgid)`; `(0, 0)` makes the caller lead a new group.
/// Async-signal-safe.
pub fn setpgid(pid: u32, pgid: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::setpgid(pid as libc::pid_t, pgid as libc::pid_t) })
}

/// `setsid()`: lead a new session (and group). Async-signal-safe.
pub fn setsid() -> io::Result<()> {
    // SAFETY: plain syscall without arguments.
    let rc = unsafe { libc::setsid() };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `kill(-pgid, sig)`: signal every process of the group.
pub fn kill_group(pgid: u32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        // kill(-1) and kill(0) mean "everyone" and "my own group": never.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: plain syscall with integer arguments; pgid > 1 checked above.
    check(unsafe { libc::kill(-(pgid as libc::pid_t), sig) })
}

/// Does any process remain in group `pgid`? (`kill(-pgid, 0)`.)
pub fn group_exists(pgid: u32) -> bool {
    match kill_group(pgid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}
