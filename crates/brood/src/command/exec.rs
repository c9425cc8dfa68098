//! [`Command::spawn`]: prepare in the parent, clone with a shared address space,
//! turn the child's report into a typed error, register the child with the reaper.

use super::prepare::{display_program, prepare, Prepared};
use super::stdio::{Kind as StdioKind, Wiring};
use super::{Command, Popen};
use crate::child::WaitSource;
use crate::globals::globals;
use crate::policy::Tree;
use crate::sys::clone::{self, ExecPlan, NewGroup, SpawnFailure, Step};
use crate::sys::{self, pidfd};
use crate::{Child, Error, Result, Signal, SpawnError};
use std::os::fd::AsFd;

impl Command {
    /// Starts the program and returns its [`Popen`] as soon as it has called
    /// `execve` (`subprocess.Popen(...)`).
    ///
    /// Every failure to start — no such program, no permission, a missing working
    /// directory, a NUL byte, an argument list over the kernel's limit — is an
    /// [`Error::Spawn`] naming the program and the cause, reported here rather
    /// than as exit code 127.
    ///
    /// The child is made with `clone(CLONE_VM | CLONE_VFORK)` as `posix_spawn`
    /// does, so the cost does not grow with this process's memory, policies
    /// included. A child with [`OnParentDeath::Signal`](crate::OnParentDeath) is
    /// created from a thread that lives as long as the process, so that it is not
    /// signalled when the calling thread ends.
    ///
    /// ```
    /// # brood::init();
    /// let child = brood::Command::new("sh").args(["-c", "exit 3"]).spawn()?;
    /// assert_eq!(child.wait()?.code(), Some(3));
    ///
    /// let err = brood::Command::new("no-such-program-here").spawn().unwrap_err();
    /// assert!(err.to_string().starts_with("cannot start \"no-such-program-here\": program not found"));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn spawn(&mut self) -> Result<Popen> {
        self.spawn_with([StdioKind::Inherit, StdioKind::Inherit, StdioKind::Inherit])
    }

    /// Spawns with `defaults` for the streams that were not set explicitly.
    pub(crate) fn spawn_with(&mut self, defaults: [StdioKind; 3]) -> Result<Popen> {
        let program = display_program(&self.program);
        let spawn_error = |cause| Error::Spawn {
            program: program.clone(),
            cause,
        };
        let prepared = prepare(self).map_err(spawn_error)?;
        let [din, dout, derr] = &defaults;
        let streams = [
            self.stdin.as_ref().map_or(din, |s| &s.0),
            self.stdout.as_ref().map_or(dout, |s| &s.0),
            self.stderr.as_ref().map_or(derr, |s| &s.0),
        ];
        let wiring = Wiring::new(streams).map_err(|e| {
            Error::io(
                format!("cannot set up the standard streams of {program:?}"),
                e,
            )
        })?;

        let policy = self.policy;
        let plan = ExecPlan {
            candidates: prepared.candidates(),
            argv: prepared.argv(),
            envp: prepared.envp(),
            stdio: wiring.sources,
            cwd: prepared.cwd_ptr(),
            group: match policy.tree {
                Tree::Own => NewGroup::No,
                Tree::Group => NewGroup::Group,
                Tree::Session => NewGroup::Session,
            },
            death_signal: policy.death_signal().map_or(0, Signal::as_raw),
            parent: sys::getpid() as libc::pid_t,
            foreground: self.foreground,
            start_signals: self
                .start_signals
                .map(|(ignored, blocked)| clone::StartSignals::new(ignored, blocked)),
        };
        // PR_SET_PDEATHSIG follows the creating *thread*: with a death signal
        // the clone happens on one that lives as long as the process.
        let plan = SendPlan(&plan);
        let started = globals()
            .spawner
            .run_for(&policy, move || {
                let plan = plan;
                // SAFETY: every pointer in the plan points into `prepared` or
                // `wiring`, alive and unchanged while we block in run_for.
                unsafe { clone::spawn(plan.0) }
            })
            .map_err(|e| spawn_error(SpawnError::Fork(e)))?;
        let (pid, fd) = started.map_err(|f| spawn_error(cause(f, &prepared, self)))?;

        let child = match Child::adopt(pid, fd, policy, WaitSource::Own) {
            Ok(child) => child,
            Err(e) => {
                // Not registered, so nobody would reap it: end it here.
                if let Ok(fd) = pidfd::open(pid) {
                    let _ = pidfd::send_signal(fd.as_fd(), Signal::KILL);
                    let _ = pidfd::wait_exited(fd.as_fd(), None);
                    let _ = pidfd::try_reap(fd.as_fd());
                }
                return Err(e);
            }
        };
        let Wiring {
            stdin,
            stdout,
            stderr,
            ..
        } = wiring;
        Ok(Popen::new(child, program, stdin, stdout, stderr))
    }
}

/// Lets the durable thread borrow the plan. The plan holds raw pointers (hence not
/// `Send`) into memory the caller keeps alive and unchanged while it blocks in
/// `Spawner::run_for`.
struct SendPlan<'a>(&'a ExecPlan<'a>);

// SAFETY: the pointed-to strings and fds are only read, and the caller blocks
// until the durable thread is done with them (run_for's contract).
unsafe impl Send for SendPlan<'_> {}

/// The typed cause of a failed start.
fn cause(failure: SpawnFailure, prepared: &Prepared, cmd: &Command) -> SpawnError {
    match failure {
        SpawnFailure::Clone(e) => SpawnError::Fork(e),
        SpawnFailure::Child { step, error } => match (step, error.raw_os_error()) {
            (Step::Exec, Some(libc::ENOENT | libc::ENOTDIR)) => SpawnError::NotFound {
                searched: prepared.searched.clone(),
            },
            (Step::Exec, Some(libc::EACCES)) => SpawnError::PermissionDenied,
            (Step::Exec, Some(libc::E2BIG)) => SpawnError::TooLong {
                bytes: prepared.bytes,
                limit: prepared.limit,
            },
            (Step::Exec, _) => SpawnError::Exec(error),
            (Step::Chdir, _) => SpawnError::CurrentDir {
                dir: cmd.cwd.clone().unwrap_or_default(),
                source: error,
            },
            (step, _) => SpawnError::Setup {
                step: step.name(),
                source: error,
            },
        },
    }
}
