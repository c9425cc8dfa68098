//! `fork(2)`, `_exit(2)` and thread identity.
//!
//! # References
//! fork(2), _exit(2), gettid(2), proc(5) (`/proc/self/stat` field 20, num_threads).

use std::convert::Infallible;
use std::io;

/// Which side of a fork we are on.
pub enum Forked {
    /// In the new child.
    Child,
    /// In the caller; the child's pid.
    Parent(u32),
}

/// `fork()`.
///
/// # Safety
/// In a multi-threaded process the child may only call async-signal-safe functions
/// until it execs or exits, unless the caller knows no other thread held a lock
/// (malloc's are handled by glibc; others, such as stdout's, are not).
pub unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: the caller takes on fork's contract (see above).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as u32)),
    }
}

/// `fork()`, with the child side confined to `child`, which cannot return (it
/// ends in `_exit` or `execve`): so the child never runs the caller's code after
/// the fork. Returns the child's pid in the parent.
///
/// What `child` may do is `fork_with`'s contract: in a multi-threaded parent,
/// nothing that needs a lock another thread may have held at the fork.
pub fn fork_then(child: impl FnOnce() -> Infallible) -> io::Result<u32> {
    // SAFETY: the child side runs `child`, which never returns (its type has no
    // value), so the caller's frames never run twice.
    match unsafe { fork() }? {
        // `child()` has no value, so nothing after the call runs.
        #[allow(unreachable_code)]
        Forked::Child => match child() {},
        Forked::Parent(pid) => Ok(pid),
    }
}

/// `_exit(code)`: leave at once, running no `atexit` handler and flushing nothing.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// `gettid()`.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// Is the caller the process's main thread (tid == pid)?
pub fn is_main_thread() -> bool {
    gettid() == super::getpid()
}

/// How many threads this process has: field 20 of `/proc/self/stat`.
pub fn thread_count() -> io::Result<usize> {
    let stat = super::procfs::stat_self().map_err(io::Error::other)?;
    Ok(stat.num_threads as usize)
}
