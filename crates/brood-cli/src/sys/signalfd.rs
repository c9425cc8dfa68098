//! Signals received as data: every signal `brood run` handles is blocked in all
//! its threads (before the first thread is made, so each inherits the mask) and
//! read from a `signalfd` by the supervising loop. Nothing runs in signal-handler
//! context, and — unlike a handler — a blocked signal is never dropped for PID 1
//! in a pid namespace (the kernel discards signals with the default action sent
//! to a namespace's init, but never a blocked one).
//!
//! # References
//! signalfd(2), pthread_sigmask(3), sigaction(2), pid_namespaces(7) ("signals
//! to init").

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A set of signal numbers.
#[derive(Copy, Clone)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// The set of `signals` (numbers glibc reserves for itself are left out).
    pub fn of(signals: impl IntoIterator<Item = i32>) -> SigSet {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset only write it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in signals {
                libc::sigaddset(&mut set, sig);
            }
            SigSet(set)
        }
    }
}

/// Blocks `set` in the calling thread (threads made afterwards inherit it).
pub fn block(set: &SigSet) -> io::Result<()> {
    // SAFETY: adds a valid set to the calling thread's mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Sets `sig`'s disposition to the default action (for SIGCHLD inherited as
/// `SIG_IGN`, which would make the kernel reap our children behind our back).
pub fn set_default(sig: i32) -> io::Result<()> {
    // SAFETY: installs SIG_DFL, which runs no code of ours.
    let old = unsafe { libc::signal(sig, libc::SIG_DFL) };
    if old == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One signal read from a [`SignalFd`].
#[derive(Copy, Clone, Debug)]
pub struct Received {
    /// The signal number.
    pub signo: i32,
    /// The sender's pid (0 from the kernel, e.g. a terminal's Ctrl-C or hang-up).
    pub pid: u32,
    /// `si_code`: `SI_USER`, `SI_KERNEL`, `CLD_EXITED`, …
    pub code: i32,
}

/// A non-blocking, close-on-exec `signalfd` for a set of blocked signals.
pub struct SignalFd(OwnedFd);

impl SignalFd {
    /// A signalfd reading `set` (which must be blocked, see [`block`]).
    pub fn new(set: &SigSet) -> io::Result<SignalFd> {
        // SAFETY: creates a new descriptor from a valid set.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal, or `None` when none is pending.
    pub fn read(&self) -> io::Result<Option<Received>> {
        // SAFETY: signalfd_siginfo is plain data for which all zeroes is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: reads at most `size` bytes into `info`, which we own.
            let n = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n == size as isize {
                return Ok(Some(Received {
                    signo: info.ssi_signo as i32,
                    pid: info.ssi_pid,
                    code: info.ssi_code,
                }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ if n >= 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "short read from signalfd",
                    ));
                }
                _ => return Err(err),
            }
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
