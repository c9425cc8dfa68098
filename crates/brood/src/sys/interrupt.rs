//! Ctrl-C while a pool call waits: SIGINT to a self-pipe.
//!
//! While at least one [`InterruptWatch`] lives, SIGINT runs a handler that
//! bumps a counter and writes a byte to a pipe; a waiting pool call polls
//! the pipe beside its workers, so the interruption wakes it at once. When
//! the last watch goes, the disposition it replaced comes back. Only the
//! default disposition is replaced: a program that handles or ignores SIGINT
//! itself (tokio's `ctrl_c`, a `ctrlc` handler, `nohup`) decided what Ctrl-C
//! means, and brood leaves it so.
//!
//! A child forked while the handler is installed gets the default back
//! before it runs anything ([`reset_in_child`]): its Ctrl-C must not write to
//! its parent's pipe.
//!
//! # References
//! sigaction(2), signal-safety(7), pipe(2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// SIGINTs received while the handler was installed.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The pipe's write end, for the handler (-1: none).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// Whether our handler is installed (read in a forked child).
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Shared {
    watchers: usize,
    /// The pipe (read, write) and the action we replaced, while installed.
    installed: Option<(OwnedFd, OwnedFd, libc::sigaction)>,
}

static STATE: Mutex<Shared> = Mutex::new(Shared {
    watchers: 0,
    installed: None,
});

extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe: an atomic add, an atomic load and write(2); errno
    // is saved and restored around the write.
    COUNT.fetch_add(1, Ordering::SeqCst);
    let fd = WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: errno is this thread's; write(2) on a descriptor that stays
        // open while the handler is installed, from a valid one-byte buffer.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Ctrl-C, watched for as long as this lives (see the module doc).
pub struct InterruptWatch {
    /// The count when the watch began; `None` when SIGINT is the program's.
    since: Option<u64>,
    read: Option<BorrowedFd<'static>>,
}

impl InterruptWatch {
    /// Starts watching, installing the handler if this is the first watch
    /// and SIGINT has its default disposition.
    pub fn new() -> io::Result<InterruptWatch> {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if st.watchers == 0 {
            // SAFETY: reading the current action into a zeroed struct we own.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: as above; a null new action only reads.
            if unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if old.sa_sigaction == libc::SIG_DFL {
                let (r, w) = super::pipe::wake_pipe()?;
                WRITE_FD.store(w.as_raw_fd(), Ordering::SeqCst);
                // SAFETY: a zeroed sigaction with our handler, an empty mask
                // and SA_RESTART: the handler is async-signal-safe (above).
                let rc = unsafe {
                    let mut act: libc::sigaction = std::mem::zeroed();
                    act.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
                    act.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut act.sa_mask);
                    libc::sigaction(libc::SIGINT, &act, std::ptr::null_mut())
                };
                if rc != 0 {
                    WRITE_FD.store(-1, Ordering::SeqCst);
                    return Err(io::Error::last_os_error());
                }
                INSTALLED.store(true, Ordering::SeqCst);
                st.installed = Some((r, w, old));
            }
        }
        st.watchers += 1;
        let read = st.installed.as_ref().map(|(r, _, _)| {
            // SAFETY: the read end stays open until the last watch is dropped,
            // and this watch is one of them.
            unsafe { BorrowedFd::borrow_raw(r.as_raw_fd()) }
        });
        Ok(InterruptWatch {
            since: read.map(|_| COUNT.load(Ordering::SeqCst)),
            read,
        })
    }

    /// The descriptor that turns readable on SIGINT; `None` when SIGINT is
    /// the program's own.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.read
    }

    /// Whether SIGINT came since this watch began.
    pub fn fired(&self) -> bool {
        self.since
            .is_some_and(|since| COUNT.load(Ordering::SeqCst) > since)
    }

    /// Empties the pipe (after a wake-up).
    pub fn drain(&self) {
        if let Some(fd) = self.read {
            super::pipe::drain(fd);
        }
    }
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        st.watchers -= 1;
        if st.watchers > 0 {
            return;
        }
        if let Some((r, w, old)) = st.installed.take() {
            // SAFETY: putting back the action read when the handler went in.
            unsafe { libc::sigaction(libc::SIGINT, &old, std::ptr::null_mut()) };
            INSTALLED.store(false, Ordering::SeqCst);
            WRITE_FD.store(-1, Ordering::SeqCst);
            drop((r, w));
        }
    }
}

/// In a freshly forked child: the default SIGINT back if our handler was
/// installed in the parent. Async-signal-safe (an atomic load, `signal(2)`).
pub fn reset_in_child() {
    if INSTALLED.load(Ordering::SeqCst) {
        super::sigaction::default(libc::SIGINT);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fork, pidfd};
    use super::*;

    #[test]
    fn a_watch_sees_sigint_and_the_default_comes_back() {
        // In a forked copy, so this test's own dispositions are untouched.
        let ended = fork::ending_of(|| {
            let w = InterruptWatch::new().unwrap();
            let nested = InterruptWatch::new().unwrap();
            // SAFETY: raise with a valid signal number.
            unsafe { libc::raise(libc::SIGINT) };
            let mut fds = [libc::pollfd {
                fd: w.fd().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            }];
            let woke = super::super::pipe::poll(&mut fds, 1000).unwrap_or(0) == 1;
            if !(woke && w.fired() && nested.fired()) {
                return 10;
            }
            drop(nested);
            drop(w);
            // SAFETY: as above; now the default action ends us.
            unsafe { libc::raise(libc::SIGINT) };
            11
        });
        assert_eq!(ended, pidfd::Reap::Exited(libc::SIGINT));
    }

    #[test]
    fn a_program_that_ignores_sigint_keeps_it() {
        let ended = fork::ending_of(|| {
            super::super::sigaction::ignore(libc::SIGINT);
            let w = InterruptWatch::new().unwrap();
            // SAFETY: raise with a valid signal number.
            unsafe { libc::raise(libc::SIGINT) };
            if w.fd().is_none() && !w.fired() {
                0
            } else {
                10
            }
        });
        assert_eq!(ended, pidfd::Reap::Exited(0));
    }
}
