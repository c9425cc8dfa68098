//! The signal dispositions and mask this process was started with.
//!
//! Rust's runtime sets SIGPIPE to `SIG_IGN` (and installs SIGSEGV/SIGBUS
//! handlers) before `main`, so by then whether our parent left SIGPIPE ignored
//! is lost. `brood run` must pass on exactly what it inherited (under `nohup`,
//! SIGHUP stays ignored; a blocked signal stays blocked), so the state is read
//! by a constructor in `.init_array`, which the C runtime runs before Rust's.
//!
//! # References
//! sigaction(2), sigprocmask(2), the ELF `.init_array` section.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bit `n - 1`: signal `n` was `SIG_IGN` at start.
static IGNORED: AtomicU64 = AtomicU64::new(0);
/// Bit `n - 1`: signal `n` was blocked at start.
static BLOCKED: AtomicU64 = AtomicU64::new(0);

/// Highest signal number (`_NSIG - 1`).
const MAX_SIGNAL: i32 = 64;

#[used]
#[unsafe(link_section = ".init_array")]
static CAPTURE: extern "C" fn() = capture;

/// Runs before `main` (and before Rust's runtime set-up), in a single thread.
extern "C" fn capture() {
    let mut ignored = 0u64;
    let mut blocked = 0u64;
    // SAFETY: sigaction with a null new action and sigprocmask with a null new
    // mask only read this process's state into our own zeroed structures.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        let have_mask = libc::sigprocmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) == 0;
        for sig in 1..=MAX_SIGNAL {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
            {
                ignored |= 1 << (sig - 1);
            }
            if have_mask && libc::sigismember(&mask, sig) == 1 {
                blocked |= 1 << (sig - 1);
            }
        }
    }
    IGNORED.store(ignored, Ordering::Relaxed);
    BLOCKED.store(blocked, Ordering::Relaxed);
}

/// The signals this process started with, before anything of ours ran.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inherited {
    /// Bit `n - 1`: signal `n` was ignored.
    pub ignored: u64,
    /// Bit `n - 1`: signal `n` was blocked.
    pub blocked: u64,
}

impl Inherited {
    /// Was signal `sig` ignored at start?
    pub fn is_ignored(&self, sig: i32) -> bool {
        (1..=MAX_SIGNAL).contains(&sig) && self.ignored >> (sig - 1) & 1 == 1
    }
}

/// What [`capture`] read at start.
pub fn inherited() -> Inherited {
    Inherited {
        ignored: IGNORED.load(Ordering::Relaxed),
        blocked: BLOCKED.load(Ordering::Relaxed),
    }
}
