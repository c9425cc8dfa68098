//! `atexit(3)`: run brood's exit policies when the program leaves normally
//! (returns from `main` or calls `exit`), as Python's `atexit` runs
//! `multiprocessing`'s exit function.
//!
//! libc runs the hook from `exit(3)` on the thread that called it. `_exit(2)`
//! (brood's `exit_now`, Python's `os._exit`) skips it by definition.
//!
//! # References
//! atexit(3), exit(3).

use std::sync::OnceLock;

static HOOK: OnceLock<fn()> = OnceLock::new();

extern "C" fn call_hook() {
    if let Some(hook) = HOOK.get() {
        hook();
    }
}

/// `atexit(hook)`: call `hook` when the process exits normally. Only the first
/// registration in a process image counts; `hook` must not unwind (it runs
/// inside libc, where unwinding aborts).
pub fn register(hook: fn()) {
    if HOOK.set(hook).is_ok() {
        // SAFETY: `call_hook` is a plain `extern "C" fn()` with no captured state,
        // which is all atexit asks for; it only reads a `OnceLock` set before.
        unsafe { libc::atexit(call_hook) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::fork::{self, Forked};
    use super::super::{pidfd, pipe};
    use std::os::fd::AsFd;

    #[test]
    fn the_hook_runs_at_exit_and_not_at_exit_now() {
        for normal in [true, false] {
            let (r, w) = pipe::pipe().unwrap();
            // SAFETY: the child only registers a hook and leaves.
            match unsafe { fork::fork() }.unwrap() {
                Forked::Child => {
                    use std::os::fd::IntoRawFd;
                    // Keep the write end open in the child for the hook to use.
                    static FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
                    FD.store(w.into_raw_fd(), std::sync::atomic::Ordering::SeqCst);
                    super::register(|| {
                        let fd = pipe::borrow_std(FD.load(std::sync::atomic::Ordering::SeqCst));
                        let _ = pipe::write_all(fd, b"hook");
                    });
                    if normal {
                        std::process::exit(0)
                    } else {
                        fork::exit_now(0)
                    }
                }
                Forked::Parent(pid) => {
                    drop(w);
                    let mut buf = [0u8; 8];
                    let n = pipe::read(r.as_fd(), &mut buf).unwrap();
                    assert_eq!(&buf[..n], if normal { &b"hook"[..] } else { &b""[..] });
                    let fd = pidfd::open(pid).unwrap();
                    pidfd::wait_exited(fd.as_fd(), None).unwrap();
                    assert_eq!(pidfd::try_reap(fd.as_fd()).unwrap(), pidfd::Reap::Exited(0));
                }
            }
        }
    }
}
