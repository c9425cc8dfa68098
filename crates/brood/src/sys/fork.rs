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

/// For tests of process-wide state (signal dispositions): runs `child` in a
/// forked copy, which `_exit`s with what it returns (or dies trying), and
/// returns how that copy ended, as `waitid` reports it.
#[cfg(test)]
pub fn ending_of(child: impl FnOnce() -> i32) -> super::pidfd::Reap {
    use std::os::fd::AsFd;
    let pid = fork_then(|| exit_now(child())).unwrap();
    let fd = super::pidfd::open(pid).unwrap();
    super::pidfd::wait_exited(fd.as_fd(), None).unwrap();
    super::pidfd::try_reap(fd.as_fd()).unwrap()
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
///
/// Asked before every fork, so the file stays open (one per process: an
/// inherited one would describe the parent) and each ask is one `pread`
/// instead of open, stat, two reads and close.
pub fn thread_count() -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    static STAT: super::forklocal::ForkLocal<std::sync::Mutex<Option<std::fs::File>>> =
        super::forklocal::ForkLocal::new(|| std::sync::Mutex::new(None));
    let mut file = STAT.get().lock().unwrap_or_else(|e| e.into_inner());
    if file.is_none() {
        *file = Some(std::fs::File::open("/proc/self/stat")?);
    }
    let mut buf = [0u8; 1024];
    let n = file.as_ref().map_or(Ok(0), |f| f.read_at(&mut buf, 0))?;
    if n == 0 || n == buf.len() {
        // Cannot happen for a stat line; read it the long way.
        let stat = super::procfs::stat_self().map_err(io::Error::other)?;
        return Ok(stat.num_threads as usize);
    }
    let stat = super::procfs::parse_stat(&buf[..n]).map_err(io::Error::other)?;
    Ok(stat.num_threads as usize)
}
