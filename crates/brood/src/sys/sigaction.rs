//! Signal dispositions of processes brood itself runs (the fork server, a
//! re-executed child before `main`): `signal(2)` with `SIG_IGN` / `SIG_DFL`
//! only — brood installs no handler code of its own here.
//!
//! # References
//! signal(2), sigaction(2), signal(7).

/// `signal(sig, SIG_IGN)`: e.g. SIGPIPE, so that writing to a pipe whose reader
/// left is an error (EPIPE), not a death — as in any Rust `main`.
pub fn ignore(sig: i32) {
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
}

/// `signal(sig, SIG_DFL)`: e.g. SIGCHLD in the fork server, which must reap its
/// children itself even when its client ignored SIGCHLD (an ignored SIGCHLD
/// is inherited through exec and makes the kernel reap children at once).
pub fn default(sig: i32) {
    // SAFETY: restoring the default disposition installs no handler code.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Whether `sig` is ignored now (e.g. inherited so through exec).
pub fn is_ignored(sig: i32) -> bool {
    // SAFETY: reading the current action into a zeroed struct we own; a null
    // new action changes nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// The classic signals (1–31) whose disposition is `SIG_IGN` now, bit
/// `sig - 1` each: one `sigaction` call per signal (the fork server asks once).
pub fn ignored_classic() -> u64 {
    (1..=31)
        .filter(|&sig| is_ignored(sig))
        .fold(0, |set, sig| set | 1 << (sig - 1))
}

/// Moves the classic signals (1–31) from the ignored set `have` to `want`:
/// `SIG_IGN` for those newly in it, `SIG_DFL` for those that left it.
/// Async-signal-safe (a fork-server child applies its client's set).
pub fn set_ignored_classic(have: u64, want: u64) {
    for sig in 1..=31 {
        let bit = 1u64 << (sig - 1);
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (have ^ want) & bit == 0 {
            continue;
        }
        if want & bit != 0 {
            ignore(sig)
        } else {
            default(sig)
        }
    }
}

/// Puts every real-time signal that is ignored back to its default action
/// (the fork server, whose children get only their client's classic
/// signals; see `forkserver`).
pub fn default_realtime() {
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        if is_ignored(sig) {
            default(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fork, pidfd};

    #[test]
    fn an_ignored_signal_is_survived_and_a_default_one_kills() {
        // In a forked copy, so this test's own dispositions are untouched.
        let ended = fork::ending_of(|| {
            super::ignore(libc::SIGUSR1);
            let seen = super::is_ignored(libc::SIGUSR1);
            // SAFETY: raise with a valid signal number.
            unsafe { libc::raise(libc::SIGUSR1) };
            super::default(libc::SIGUSR1);
            if !seen || super::is_ignored(libc::SIGUSR1) {
                return 3;
            }
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGUSR1) };
            0
        });
        // Survived the ignored one, killed by the default one.
        assert_eq!(ended, pidfd::Reap::Exited(libc::SIGUSR1));
    }
}
