//! Why a start failed: the step of the child's set-up ([`Step`]), coded as
//! a number so that the child can report it through shared memory or a pipe
//! without allocating, and [`SpawnFailure`].

use std::io;

/// The step of the child's set-up that failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Resetting a signal handler to `SIG_DFL`.
    Sigaction,
    /// `setpgid(0, 0)`.
    Setpgid,
    /// `setsid()`.
    Setsid,
    /// `prctl(PR_SET_PDEATHSIG)`.
    DeathSignal,
    /// `dup2` of a stdio descriptor.
    Dup2,
    /// `chdir` to the working directory.
    Chdir,
    /// `setgroups` of the supplementary groups.
    Setgroups,
    /// `setgid`.
    Setgid,
    /// `setuid`.
    Setuid,
    /// Restoring the signal mask.
    Sigmask,
    /// A `pre_exec` closure returned an error.
    PreExec,
    /// `tcsetpgrp`: taking the terminal's foreground.
    Foreground,
    /// `setrlimit` or `setpriority` of the child's [`ChildLimits`](super::rlimit::ChildLimits).
    Limits,
    /// Registering the child's group with the keeper.
    Keeper,
    /// Joining the child's own cgroup.
    Cgroup,
    /// `execve` itself (for every candidate path).
    Exec,
}

impl Step {
    const ALL: [Step; 16] = [
        Step::Sigaction,
        Step::Setpgid,
        Step::Setsid,
        Step::DeathSignal,
        Step::Dup2,
        Step::Chdir,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Sigmask,
        Step::PreExec,
        Step::Exec,
        Step::Foreground,
        Step::Limits,
        Step::Keeper,
        Step::Cgroup,
    ];

    /// The system call, as error messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Sigaction => "sigaction",
            Step::Setpgid => "setpgid",
            Step::Setsid => "setsid",
            Step::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Step::Dup2 => "dup2",
            Step::Chdir => "chdir",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Sigmask => "sigprocmask",
            Step::PreExec => "pre_exec",
            Step::Foreground => "tcsetpgrp",
            Step::Limits => "setrlimit/setpriority",
            Step::Keeper => "write(keeper)",
            Step::Cgroup => "write(cgroup.procs)",
            Step::Exec => "execve",
        }
    }

    pub(super) fn code(self) -> i32 {
        Step::ALL
            .iter()
            .position(|&s| s == self)
            .map_or(0, |i| i as i32 + 1)
    }

    pub(super) fn from_code(code: i32) -> Option<Step> {
        Step::ALL
            .get(usize::try_from(code).ok()?.checked_sub(1)?)
            .copied()
    }
}

/// Why [`spawn`] did not start the program.
#[derive(Debug)]
pub enum SpawnFailure {
    /// `clone` itself failed (EAGAIN, ENOMEM, …): there is no child.
    Clone(io::Error),
    /// The child failed at `step` with this error, exited with 127 and was reaped.
    Child {
        /// What failed.
        step: Step,
        /// The kernel's answer.
        error: io::Error,
    },
}
