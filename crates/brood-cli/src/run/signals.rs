//! Which signals `brood run` takes over, and what it does with each one.

use crate::sys::inherited::Inherited;
use crate::sys::signalfd::Received;
use brood::Signal;
use std::collections::BTreeMap;

/// What to do with one received signal.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A child changed state: reap orphans, look at the command's stops.
    Child,
    /// Forward this (possibly rewritten) signal; for job control, then stop.
    Forward {
        /// What the command gets.
        send: Signal,
        /// SIGTSTP/SIGTTIN/SIGTTOU: stop ourselves after forwarding (dumb-init).
        then_stop: bool,
    },
    /// Rewritten to 0: dropped.
    Drop,
}

/// Every signal number `brood run` blocks and reads: all that can be caught
/// (1–31 except SIGKILL and SIGSTOP, and the real-time ones above the two glibc
/// keeps for itself), except those ignored at start, which stay ignored.
/// SIGCHLD is always taken (it is how orphans are reaped).
pub fn taken(inherited: &Inherited) -> Vec<i32> {
    let reserved = |sig: i32| (32..libc::SIGRTMIN()).contains(&sig);
    (1..=libc::SIGRTMAX())
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP && !reserved(sig))
        .filter(|&sig| sig == libc::SIGCHLD || !inherited.is_ignored(sig))
        .collect()
}

/// Is `sig` one of the terminal's job-control stops?
pub fn is_job_control(sig: i32) -> bool {
    matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// Signals whose default action is to do nothing: their arrival never ends a
/// restart's back-off.
pub fn is_harmless(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH
    ) || is_job_control(sig)
}

/// Did we raise `got` on ourselves? A write to a closed pipe does (the
/// kernel's SIGPIPE comes as `SI_USER` from our own pid), and so would a
/// `raise`: never the command's business, and never worth a log line (which
/// could raise another).
pub fn is_own(got: &Received) -> bool {
    got.pid == std::process::id() && got.code <= 0
}

/// The action for `sig`, after `--rewrite`.
pub fn action(sig: i32, rewrite: &BTreeMap<i32, Option<Signal>>) -> Action {
    if sig == libc::SIGCHLD {
        return Action::Child;
    }
    let send = match rewrite.get(&sig) {
        Some(None) => return Action::Drop,
        Some(Some(to)) => *to,
        None => match Signal::from_raw(sig) {
            Some(s) => s,
            None => return Action::Drop,
        },
    };
    Action::Forward {
        send,
        then_stop: is_job_control(sig),
    }
}

/// `SIGTERM`, or `SIG40` for a real-time signal.
pub fn name(sig: i32) -> String {
    Signal::from_raw(sig).map_or_else(|| format!("signal {sig}"), |s| s.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_28_classic_catchable_signals_and_sigchld() {
        let taken = taken(&Inherited::default());
        let classic: Vec<i32> = taken.iter().copied().filter(|&s| s < 32).collect();
        assert_eq!(classic.len(), 29, "{classic:?}");
        assert!(!taken.contains(&libc::SIGKILL) && !taken.contains(&libc::SIGSTOP));
        assert!(taken.contains(&libc::SIGRTMAX()));
    }

    #[test]
    fn inherited_ignored_stay_ignored_but_sigchld_is_taken() {
        let inherited = Inherited {
            ignored: 1 << (libc::SIGHUP - 1) | 1 << (libc::SIGCHLD - 1),
            blocked: 0,
        };
        let taken = taken(&inherited);
        assert!(!taken.contains(&libc::SIGHUP));
        assert!(taken.contains(&libc::SIGCHLD));
    }

    #[test]
    fn rewriting_and_job_control() {
        let mut rewrite = BTreeMap::new();
        rewrite.insert(libc::SIGTERM, Some(Signal::QUIT));
        rewrite.insert(libc::SIGINT, None);
        assert_eq!(
            action(libc::SIGTERM, &rewrite),
            Action::Forward {
                send: Signal::QUIT,
                then_stop: false
            }
        );
        assert_eq!(action(libc::SIGINT, &rewrite), Action::Drop);
        assert_eq!(
            action(libc::SIGTSTP, &rewrite),
            Action::Forward {
                send: Signal::TSTP,
                then_stop: true
            }
        );
        assert_eq!(action(libc::SIGCHLD, &rewrite), Action::Child);
    }
}
