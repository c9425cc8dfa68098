//! [`Command::spawn`]: prepare in the parent, clone with a shared address space,
//! turn the child's report into a typed error, register the child with the reaper.

use super::prepare::{Prepared, display_program, prepare};
use super::stdio::{Kind as StdioKind, Wiring};
use super::{Command, Popen};
use crate::child::WaitSource;
use crate::policy::Tree;
use crate::sys;
use crate::sys::clone::{self, ExecPlan, NewGroup, SpawnFailure, Step};
use crate::{Error, Result, Signal, SpawnError};

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
        crate::shutdown::refuse_if_begun()?;
        crate::child::ready_to_reap()?;
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
        for (stream, kind) in ["stdin", "stdout"].into_iter().zip(streams) {
            if matches!(kind, StdioKind::MergeIntoStdout) {
                return Err(spawn_error(SpawnError::MergeNotStderr { stream }));
            }
        }
        let policy = self.policy();
        let group = match (policy.tree, self.pgroup) {
            (Tree::Own, None) => NewGroup::No,
            (Tree::Own, Some(pgid)) => NewGroup::Join(pgid),
            (Tree::Group | Tree::Cgroup, None) => NewGroup::Group,
            (Tree::Session, None) => NewGroup::Session,
            (tree, Some(pgid)) => {
                return Err(spawn_error(SpawnError::ProcessGroupWithTree { pgid, tree }));
            }
        };
        let wiring = crate::fdlimit::with_room(|| Wiring::new(streams)).map_err(|source| {
            crate::fdlimit::limit_or("the pipes of a child's stdio", source, |source| {
                Error::Stdio {
                    program: program.clone(),
                    source,
                }
            })
        })?;

        let (candidates, argv, envp) = (prepared.candidates(), prepared.argv(), prepared.envp());
        // Tree::Cgroup: the child's own cgroup, which it joins before execve.
        let cgroup = crate::cgroups::prepare(&policy)?;
        let plan = ExecPlan {
            candidates: &candidates,
            argv: &argv,
            envp: &envp,
            stdio: wiring.sources,
            cwd: prepared.cwd.as_deref(),
            group,
            groups: self.groups.as_deref(),
            gid: self.gid,
            uid: self.uid,
            death_signal: policy.death_signal().map_or(0, Signal::as_raw),
            nofile: Some(crate::fdlimit::child_limit()),
            limits: policy.limits.for_child(),
            keeper: crate::deathwatch::registration(&policy)
                .map_err(|e| {
                    Error::io(
                        "starting the keeper that signals the tree at parent death",
                        e,
                    )
                })?
                .unwrap_or(-1),
            cgroup: cgroup
                .as_ref()
                .map_or(-1, crate::cgroups::Prepared::procs_fd),
            parent: sys::getpid() as libc::pid_t,
            foreground: self.foreground,
            start_signals: self
                .start_signals
                .map(|(ignored, blocked)| clone::StartSignals::new(ignored, blocked)),
        };
        // PR_SET_PDEATHSIG follows the creating *thread*: with a death signal
        // the clone happens on one that lives as long as the process. `plan`
        // borrows `prepared` and `wiring`, alive while we block in run_for.
        // Handed the terminal: it comes back when the child has ended.
        let hands_terminal = self.foreground
            && matches!(policy.tree, Tree::Group | Tree::Cgroup)
            && crate::terminal::ours();
        let hooks = &self.pre_exec;
        // No descriptor for the child's pidfd (or the report pipe): the first
        // time, raise the soft limit and clone again (the child's limit,
        // `plan.nofile`, is the program's either way).
        let out_of_fds =
            |f: &SpawnFailure| matches!(f, SpawnFailure::Clone(e) if crate::fdlimit::is_emfile(e));
        let started = crate::spawner::run_for(&policy, || {
            crate::fdlimit::retry(
                || {
                    if hooks.is_empty() {
                        clone::spawn(&plan)
                    } else {
                        // Clones of this command share its closures: the
                        // forking thread holds them across the fork, so that
                        // the child has them to itself (and other clones wait
                        // for this spawn).
                        let mut held: Vec<_> = hooks
                            .iter()
                            .map(|h| h.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
                            .collect();
                        let mut hooks: Vec<&mut clone::PreExec> =
                            held.iter_mut().map(|h| &mut **h).collect();
                        clone::spawn_forked(&plan, &mut hooks)
                    }
                },
                out_of_fds,
            )
        })
        .map_err(|e| spawn_error(SpawnError::Fork(e)));
        let started = match started {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(SpawnFailure::Clone(e))) if crate::fdlimit::is_emfile(&e) => Err(
                crate::fdlimit::error("creating the child (clone with its pidfd)", e),
            ),
            Ok(Err(f)) => Err(spawn_error(cause(f, &prepared, self))),
            Err(e) => Err(e),
        };
        let (pid, fd) = match started {
            Ok(s) => s,
            Err(e) => {
                crate::cgroups::started(None, cgroup);
                // The child may have taken the terminal before it failed.
                if hands_terminal {
                    crate::terminal::take_back();
                }
                return Err(e);
            }
        };
        crate::cgroups::started(Some(pid), cgroup);
        if hands_terminal {
            crate::terminal::handed_to(pid);
        }

        let child = match crate::exit::adopt(pid, fd, policy, WaitSource::Own) {
            Ok(child) => child,
            Err(e) => {
                // Not registered, so nobody would reap it: end it here. It is
                // our unreaped child, so its pid is safe to use (opening a new
                // pidfd could fail for the very reason registering did).
                let _ = sys::reap::kill_and_reap_own(pid);
                crate::terminal::child_ended(pid);
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

/// The typed cause of a failed start.
fn cause(failure: SpawnFailure, prepared: &Prepared, cmd: &Command) -> SpawnError {
    match failure {
        SpawnFailure::Clone(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
            SpawnError::ProcessLimit
        }
        SpawnFailure::Clone(e) => SpawnError::Fork(e),
        SpawnFailure::Child { step, error } => match (step, error.raw_os_error()) {
            (Step::Exec, Some(libc::ENOENT)) => match prepared.existing_candidate() {
                // The file is there: what is missing is its interpreter.
                Some(path) if path.is_file() => SpawnError::InterpreterNotFound {
                    interpreter: super::interp::interpreter_of(&path),
                    path,
                },
                _ => SpawnError::NotFound {
                    searched: prepared.searched.clone(),
                },
            },
            (Step::Exec, Some(libc::ENOTDIR)) => SpawnError::NotFound {
                searched: prepared.searched.clone(),
            },
            (Step::Exec, Some(libc::EACCES)) => match prepared.existing_candidate() {
                Some(path) if path.is_dir() => SpawnError::IsADirectory { path },
                _ => SpawnError::PermissionDenied,
            },
            (Step::Exec, Some(libc::EAGAIN)) => SpawnError::ProcessLimit,
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
