//! `kill(2)` where a pidfd cannot be had: a process group, every process of our
//! pid namespace (`kill(-1)`, for PID 1), and ourselves.
//!
//! # References
//! kill(2), pid_namespaces(7).

use std::io;

fn check(rc: i32) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `kill(-1, sig)`: every process we may signal except ourselves — in a pid
/// namespace of which we are PID 1, every other process in it.
pub fn everyone(sig: i32) -> io::Result<()> {
    // SAFETY: sends a signal; touches no memory.
    check(unsafe { libc::kill(-1, sig) })
}

/// Is there any process other than us that `kill(-1)` would reach? (For PID 1:
/// is the namespace empty yet? Zombies count until reaped.)
pub fn anyone_else() -> bool {
    // SAFETY: signal 0 sends nothing; it checks only.
    let rc = unsafe { libc::kill(-1, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// `kill(-pgid, sig)`.
pub fn group(pgid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: sends a signal to a process group; touches no memory.
    check(unsafe { libc::kill(-(pgid as libc::pid_t), sig) })
}

/// Stops this whole process (SIGSTOP, which cannot be blocked) until a SIGCONT.
pub fn stop_self() {
    // SAFETY: sends SIGSTOP to ourselves.
    unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
}
