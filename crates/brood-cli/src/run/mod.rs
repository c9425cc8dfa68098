//! `brood run`: one command supervised as its init would, so that it leaves no
//! orphan and no zombie and signals reach it as if nothing stood between.
//!
//! What tini, dumb-init and `timeout` do, in one:
//! - **signals** (`signals.rs`, `supervise.rs`): every catchable signal except
//!   SIGCHLD is blocked in all our threads and read from a signalfd, then
//!   forwarded to the command's process group (or the command alone), after
//!   `--rewrite`; job-control stops are passed on and then stop us too. Signals
//!   ignored at start stay ignored; the command starts with the dispositions and
//!   mask we inherited, and with the terminal's foreground, both set in the
//!   child before `execve`.
//! - **subreaper / PID 1** (`reap.rs`): every orphan is re-parented here and
//!   reaped the moment it ends;
//! - **the whole tree ends with the command** (`scope.rs`): SIGTERM to every
//!   descendant (as PID 1: every process in the namespace), SIGKILL after the
//!   grace; or `--wait-all` for them to end on their own;
//! - **restarts** (`restart.rs`) with back-off and an intensity limit;
//! - **exit status** (`exit.rs`): the shell's convention, and codes of our own.

mod exit;
mod options;
mod reap;
mod restart;
mod scope;
mod signals;
mod starting;
mod supervise;
mod terminal;
mod verbose;

pub use options::RunArgs;

use crate::procfs;
use crate::sys::{inherited, signalfd};
use brood::{Error, ExitStatus, SpawnError};
use restart::{Decision, Restarts};
use std::time::Instant;
use supervise::{Ended, Supervisor};

/// Why `brood run` could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No command was given.
    #[error("no command given (usage: brood run [OPTIONS] [--] COMMAND [ARGS…])")]
    NoCommand,
    /// The program does not exist (exit 127).
    #[error("{program}: not found (searched {searched})")]
    NotFound {
        /// The program as given.
        program: String,
        /// Where it was looked for.
        searched: String,
    },
    /// The program exists but cannot be executed (exit 126).
    #[error("{program}: cannot execute: {cause}")]
    CannotExecute {
        /// The program as given.
        program: String,
        /// The kernel's answer.
        cause: SpawnError,
    },
    /// `--ready`: the command did not become ready (exit 122).
    #[error("{0}")]
    NotReady(#[source] Error),
    /// Starting or watching the command failed otherwise.
    #[error(transparent)]
    Brood(#[from] Error),
    /// A system call of our own failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl RunError {
    pub(crate) fn from_spawn(e: Error) -> RunError {
        match e {
            Error::Spawn {
                program,
                cause: SpawnError::NotFound { searched },
            } => RunError::NotFound { program, searched },
            Error::Spawn {
                program,
                cause:
                    cause @ (SpawnError::PermissionDenied
                    | SpawnError::IsADirectory { .. }
                    | SpawnError::InterpreterNotFound { .. }
                    | SpawnError::Exec(_)
                    | SpawnError::TooLong { .. }
                    | SpawnError::EntryTooLong { .. }),
            } => RunError::CannotExecute { program, cause },
            e @ Error::NotReady { .. } => RunError::NotReady(e),
            e => RunError::Brood(e),
        }
    }

    /// The exit code it stands for.
    pub fn code(&self) -> u8 {
        match self {
            RunError::NotFound { .. } => exit::NOT_FOUND,
            RunError::CannotExecute { .. } => exit::CANNOT_EXECUTE,
            RunError::NotReady(_) => exit::NOT_READY,
            _ => exit::FAILED,
        }
    }
}

/// Runs `brood run` with these arguments; returns its exit code. Errors are
/// printed here, as `brood run: PROGRAM: cause`.
pub fn main(args: RunArgs) -> u8 {
    let opts = args.into_options();
    match run(&opts) {
        Ok(code) => code,
        Err(e) => {
            verbose::say(format_args!("{e}"));
            e.code()
        }
    }
}

/// Supervises the command (with its restarts) and returns the exit code.
fn run(opts: &options::RunOptions) -> Result<u8, RunError> {
    let inherited = inherited::inherited();
    // Before any thread exists, so that every thread (brood's reaper and
    // spawner included) inherits the mask and only the signalfd sees them.
    let set = signalfd::SigSet::of(signals::taken(&inherited));
    signalfd::block(&set).map_err(|source| RunError::Os {
        what: "blocking signals",
        source,
    })?;
    if inherited.is_ignored(libc::SIGCHLD) {
        // SIG_IGN would make the kernel reap our children behind our back.
        signalfd::set_default(libc::SIGCHLD).map_err(|source| RunError::Os {
            what: "resetting SIGCHLD",
            source,
        })?;
    }
    let signals = signalfd::SignalFd::new(&set).map_err(|source| RunError::Os {
        what: "signalfd",
        source,
    })?;
    let scope = scope::Scope::detect();
    let log = verbose::Log::new(opts.verbose);
    if !scope.pid1 {
        brood::os::set_child_subreaper(true).map_err(|source| RunError::Os {
            what: "prctl(PR_SET_CHILD_SUBREAPER)",
            source,
        })?;
    }
    if !scope.procfs {
        log.decision(format_args!(
            "/proc is not this pid namespace's: ending {} instead of walking descendants",
            if scope.pid1 {
                "everyone with kill(-1)"
            } else {
                "the command's group"
            }
        ));
    }
    let parent = brood::os::getppid();
    if let Some(sig) = opts.die_with_parent {
        brood::os::set_parent_death_signal(Some(sig)).map_err(|source| RunError::Os {
            what: "prctl(PR_SET_PDEATHSIG)",
            source,
        })?;
    }
    let mut sup = Supervisor {
        opts,
        signals,
        log,
        terminal: terminal::Terminal::detect(),
        scope,
        inherited,
        deadline: opts.timeout.map(|t| Instant::now() + t),
        parent,
        shutting_down: false,
        kill_at: None,
        hung_up: false,
        notify_socket: std::env::var_os("NOTIFY_SOCKET"),
    };
    // The parent may have died before PR_SET_PDEATHSIG was armed.
    if opts.die_with_parent.is_some() && brood::os::getppid() != parent {
        sup.on_parent_died();
    }

    let mut restarts = Restarts::new(opts.restart, opts.max_restarts, opts.within);
    loop {
        let started = Instant::now();
        let (ended, group) = match sup.run_once() {
            Ok(ended) => ended,
            Err(e) => {
                // Whatever a failed restart left behind still ends.
                sup.ending(None, 0).end(opts.grace);
                return Err(e);
            }
        };
        let leftovers = after_command(&sup, group, opts);
        let code = match ended {
            Ended::TimedOut => return Ok(exit::TIMED_OUT),
            Ended::Exited(ExitStatus::Exited(_)) if sup.hung_up => exit::HUNG_UP,
            Ended::Exited(status) => final_code(status, opts, &leftovers),
        };
        if sup.shutting_down {
            return Ok(code);
        }
        match restarts.decide(code == 0, Instant::now(), started.elapsed()) {
            Decision::Stop => return Ok(code),
            Decision::GiveUp { restarts } => {
                sup.log.notice(format_args!(
                    "giving up: {restarts} restart(s) within {:?}; last exit code {code}",
                    opts.within
                ));
                return Ok(code);
            }
            Decision::After { delay, nth } => {
                sup.log.notice(format_args!(
                    "exit code {code}; restart {nth} of at most {} within {:?}, in {delay:?}",
                    opts.max_restarts, opts.within
                ));
                if !sup.back_off(delay)? {
                    return Ok(if sup.deadline.is_some_and(|d| Instant::now() >= d) {
                        exit::TIMED_OUT
                    } else {
                        code
                    });
                }
            }
        }
    }
}

/// After the command exited: list leftovers (`--check-leftovers`), then end
/// them (or wait for them with `--wait-all`). Returns the leftovers' pids.
fn after_command(sup: &Supervisor<'_>, group: u32, opts: &options::RunOptions) -> Vec<u32> {
    let ending = sup.ending(None, group);
    let left = sup.scope.living();
    if opts.check_leftovers {
        for s in &left {
            sup.log.notice(format_args!(
                "left behind: pid {} ({}) {}",
                s.pid,
                s.comm,
                procfs::cmdline(s.pid)
            ));
        }
    }
    if opts.wait_all && ending.scope.anyone_left(group) {
        sup.log.decision(format_args!(
            "--wait-all: waiting for the {} process(es) left",
            left.len()
        ));
        if !ending.wait_gone(sup.deadline) {
            sup.log
                .notice(format_args!("--wait-all: the timeout passed; ending them"));
        }
    }
    ending.end(opts.grace);
    left.iter().map(|s| s.pid).collect()
}

fn final_code(status: ExitStatus, opts: &options::RunOptions, leftovers: &[u32]) -> u8 {
    let code = exit::of_status(status, &opts.success_codes);
    if code == 0 && opts.check_leftovers && !leftovers.is_empty() {
        exit::LEFTOVERS
    } else {
        code
    }
}
