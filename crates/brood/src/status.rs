//! [`ExitStatus`]: how a child ended.

use crate::Signal;
use std::fmt;

/// How a child ended: with an exit code, or killed by a signal.
///
/// [`ExitStatus::exitcode`] gives Python's `Popen.returncode` /
/// `Process.exitcode` convention: the code, or `-N` for signal N.
///
/// ```
/// use brood::{ExitStatus, Signal};
/// let ok = ExitStatus::Exited(0);
/// assert!(ok.success());
/// let killed = ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false };
/// assert_eq!(killed.exitcode(), -9);
/// assert_eq!(killed.to_string(), "killed by SIGKILL");
/// assert_eq!(ExitStatus::Exited(3).to_string(), "exited with 3");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The child called `exit` (or returned from `main`) with this code (0–255).
    Exited(i32),
    /// A signal ended the child.
    Signaled {
        /// The signal that ended it.
        signal: Signal,
        /// Whether the kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// The exit code, if the child exited rather than being killed.
    pub fn code(&self) -> Option<i32> {
        match *self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Signaled { .. } => None,
        }
    }

    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<Signal> {
        match *self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled { signal, .. } => Some(signal),
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }

    /// Python's convention: the exit code, or `-N` when signal N killed the child.
    pub fn exitcode(&self) -> i32 {
        match *self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled { signal, .. } => -signal.as_raw(),
        }
    }

    /// Decodes a `wait(2)` status word (`WIFEXITED`/`WIFSIGNALED`).
    ///
    /// Returns `None` for a stopped or continued status, which is not an ending.
    ///
    /// ```
    /// use brood::{ExitStatus, Signal};
    /// assert_eq!(ExitStatus::from_wait_status(3 << 8), Some(ExitStatus::Exited(3)));
    /// assert_eq!(ExitStatus::from_wait_status(9).and_then(|s| s.signal()), Some(Signal::KILL));
    /// ```
    pub fn from_wait_status(raw: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(raw) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(raw)))
        } else if libc::WIFSIGNALED(raw) {
            Some(ExitStatus::Signaled {
                signal: Signal::from_raw(libc::WTERMSIG(raw))?,
                core_dumped: libc::WCOREDUMP(raw),
            })
        } else {
            None
        }
    }

    /// Encodes the status back into a `wait(2)` status word (the inverse of
    /// [`ExitStatus::from_wait_status`]); used to carry statuses between processes.
    pub fn to_wait_status(&self) -> i32 {
        match *self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled {
                signal,
                core_dumped,
            } => signal.as_raw() | if core_dumped { 0x80 } else { 0 },
        }
    }

    /// The exit code a supervisor should exit with to report this status the way
    /// shells do: the code itself, or `128 + N` for signal N.
    pub fn shell_code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled { signal, .. } => 128 + signal.as_raw(),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with {code}"),
            ExitStatus::Signaled {
                signal,
                core_dumped: false,
            } => write!(f, "killed by {signal}"),
            ExitStatus::Signaled {
                signal,
                core_dumped: true,
            } => write!(f, "killed by {signal} (core dumped)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn wait_status_round_trips(code in 0i32..256, sig in 1i32..32, core: bool) {
            let exited = ExitStatus::Exited(code);
            prop_assert_eq!(ExitStatus::from_wait_status(exited.to_wait_status()), Some(exited));
            if sig != libc::SIGSTOP && sig != 0x7f {
                let signaled = ExitStatus::Signaled { signal: Signal::from_raw(sig).unwrap(), core_dumped: core };
                prop_assert_eq!(ExitStatus::from_wait_status(signaled.to_wait_status()), Some(signaled));
            }
        }
    }
}
