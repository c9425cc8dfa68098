//! [`Error`]: everything that can go wrong, naming the program, the pid and the cause.

use crate::ExitStatus;
use std::io;
use std::time::Duration;

/// The result type of brood's fallible calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the program or pid it concerns and the cause.
///
/// ```
/// use brood::Error;
/// let e = Error::ReapedElsewhere { pid: 4242 };
/// assert_eq!(
///     e.to_string(),
///     "child 4242 was reaped by someone else (a foreign waitpid(-1), or SIGCHLD set to SIG_IGN): its status is lost"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Someone other than brood waited for the child (`waitpid(-1)`, `wait()`, or
    /// `SIGCHLD` set to `SIG_IGN`), so its exit status is gone. brood never guesses
    /// a status and never signals that pid again.
    #[error(
        "child {pid} was reaped by someone else (a foreign waitpid(-1), or SIGCHLD set to SIG_IGN): its status is lost"
    )]
    ReapedElsewhere {
        /// The child's pid (which may by now belong to another process).
        pid: u32,
    },

    /// The fork server that was this child's parent died before it reported
    /// the child's status, so the status is lost (the process itself may still
    /// run: a `Survive` child outlives its server). The next start launches a
    /// new server.
    #[error("the fork server died, so the status of process {pid} is lost")]
    ServerDied {
        /// The child.
        pid: u32,
    },

    /// The function cannot cross into another process image (it is not code of
    /// the executable), or a received one does not belong to this executable.
    #[error(transparent)]
    Crossing(#[from] crate::sys::image::CrossingError),

    /// The program could not be started.
    #[error("cannot start {program:?}: {cause}")]
    Spawn {
        /// The program as it was given.
        program: String,
        /// Why.
        cause: SpawnError,
    },

    /// `fork(2)` (or `clone(2)`) failed: out of memory, or another cause than
    /// the process limit (which is [`Error::ProcessLimit`]).
    #[error("cannot fork: {0}")]
    Fork(#[source] io::Error),

    /// The process could not be created because a limit on processes was
    /// reached (`EAGAIN` from fork/clone): `RLIMIT_NPROC` for this user, a pids
    /// cgroup, or the kernel's `threads-max`. Root is not bound by
    /// `RLIMIT_NPROC`.
    #[error(
        "cannot create a process ({step}): the process limit was reached (RLIMIT_NPROC, a pids cgroup, or kernel.threads-max)"
    )]
    ProcessLimit {
        /// What was being started (`"fork"`, `"the fork server"`, …).
        step: &'static str,
    },

    /// This process has as many descriptors open as its hard limit allows
    /// (`EMFILE` with the soft limit already raised to the hard one: see
    /// the crate's notes on limits). That one start fails; children already
    /// running are not affected.
    #[error(
        "cannot start a child ({step}): this process has {limit} descriptors open, its hard limit (RLIMIT_NOFILE)"
    )]
    DescriptorLimit {
        /// What needed a descriptor.
        step: &'static str,
        /// The hard limit reached.
        limit: u64,
    },

    /// A [`Supervisor`](crate::Supervisor) gave up: the child `child` ended
    /// and restarting it would have made more than `max` restarts within
    /// `within`. Every child was stopped.
    #[error(
        "the supervisor gave up: child {child:?} ended ({last}) and restarting it would exceed {max} restarts within {within:?}"
    )]
    RestartIntensity {
        /// The child whose end was one too many.
        child: String,
        /// The intensity: at most this many restarts…
        max: usize,
        /// …within this time.
        within: std::time::Duration,
        /// How that child ended, or why its last restart failed (for a
        /// child with a readiness sign: it ended, or its time passed,
        /// before it was ready).
        last: String,
    },

    /// A supervised child could not be started.
    #[error("the supervisor could not start child {child:?}: {source}")]
    ChildStart {
        /// The child's id.
        child: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },

    /// Two children of one [`Supervisor`](crate::Supervisor) have the same id.
    #[error("two supervised children are named {child:?}")]
    DuplicateChild {
        /// The id.
        child: String,
    },

    /// [`Tree::Cgroup`](crate::Tree::Cgroup) was asked for where brood cannot
    /// make cgroups (see [`containment`](crate::containment)).
    #[error("Tree::Cgroup cannot be used here: {reason}")]
    CgroupUnavailable {
        /// Why, as [`containment`](crate::containment) found it.
        reason: String,
    },

    /// A system call about a child failed in a way brood cannot recover from.
    #[error("{op} failed for pid {pid}: {source}")]
    Os {
        /// What brood was doing (`"pidfd_open"`, `"waitid"`, …).
        op: &'static str,
        /// The child concerned.
        pid: u32,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// Plain I/O on a child's pipes failed.
    #[error("{what}: {source}")]
    Io {
        /// What brood was doing.
        what: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// `communicate` or `run` ran past its timeout. The child is left running (for
    /// `communicate`) or was ended (for `run`); what it wrote so far is kept.
    #[error("{program:?} (pid {pid}) did not finish within {timeout:?}")]
    Timeout {
        /// The program.
        program: String,
        /// Its pid.
        pid: u32,
        /// The timeout that passed.
        timeout: Duration,
        /// What the child wrote to its stdout so far.
        stdout: Vec<u8>,
        /// What the child wrote to its stderr so far.
        stderr: Vec<u8>,
    },

    /// `run` with `check` saw the program fail (Python's `CalledProcessError`).
    /// The message ends with the tail of the captured stderr (its last 5
    /// lines, at most 500 bytes), which usually says why; the whole of it is
    /// in `stderr`.
    ///
    /// ```
    /// # brood::init();
    /// let err = brood::Command::new("sh").args(["-c", "echo 'no such table' >&2; exit 3"]).run();
    /// let text = err.unwrap_err().to_string();
    /// assert!(text.ends_with(r#"exited with 3; its stderr ends: "no such table""#), "{text}");
    /// ```
    #[error("{program:?} (pid {pid}) {status}{}", stderr_tail(stderr))]
    Failed {
        /// The program.
        program: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// Its captured stdout.
        stdout: Vec<u8>,
        /// Its captured stderr.
        stderr: Vec<u8>,
    },

    // Misuse of a builder, and start-ups that cannot happen as asked.
    /// [`Process::start`](crate::Process::start) was called again: the argument
    /// moved into the first child (Python's "cannot start a process twice").
    #[error("process {name:?} was already started; a Process starts once")]
    AlreadyStarted {
        /// The process's name.
        name: String,
    },

    /// A [`Pool`](crate::Pool) was asked for with no worker.
    #[error("a pool needs at least one worker (asked for {size})")]
    PoolSize {
        /// The size asked for.
        size: usize,
    },

    /// [`fork`](crate::fork) with [`OnParentDeath::Signal`](crate::OnParentDeath)
    /// was called off the main thread, where the kernel would send the signal
    /// when that thread ends; [`fork_with`](crate::ForkBuilder::fork_with) forks
    /// from a durable thread instead.
    #[error(
        "fork() with OnParentDeath::Signal on thread {tid} of pid {pid}, not the main thread: the signal would fire when this thread ends; use fork_with"
    )]
    ForkOffMainThread {
        /// The calling thread.
        tid: u32,
        /// This process.
        pid: u32,
    },

    /// The process has begun to shut down ([`exit`](crate::exit), a return
    /// from `main`, or a signal [`signals::graceful`](crate::signals::graceful)
    /// took over): no child starts any more — it would escape the sweep that
    /// applies every child's exit policy. `pid` is set when the child already
    /// existed (it was ended at once).
    #[error("the process is shutting down: no new child may start{}", pid.map(|p| format!(" (pid {p} was ended)")).unwrap_or_default())]
    ShuttingDown {
        /// The child that was started and ended, if it got that far.
        pid: Option<u32>,
    },

    /// SIGINT (Ctrl-C) came while a [`Pool`](crate::Pool) call waited: the
    /// workers running its items were killed; the pool replaces them (and
    /// any the same Ctrl-C killed) at its next call.
    #[error("interrupted by SIGINT (Ctrl-C) during a pool call")]
    Interrupted,

    /// An item of [`Pool::try_map`](crate::Pool::try_map) (or another `try_`
    /// call) failed: the call gives all values or this, the first failure,
    /// with the item's index in the input.
    #[error("item {index} of the pool call failed: {source}")]
    TaskFailed {
        /// The item's index in the input.
        index: usize,
        /// Why it has no value.
        source: crate::pool::failure::TaskError,
    },

    /// The [`Pool`](crate::Pool) was closed or terminated: it takes no more work.
    #[error("the pool was closed or terminated")]
    PoolClosed,

    /// The argument of a [`Process`](crate::Process) or of a pool's
    /// [initializer](crate::PoolBuilder::initializer) cannot be encoded to
    /// cross into the child (say a [`SharedSlice`](crate::SharedSlice),
    /// which crosses only in a pool task's argument or result). Refused
    /// before any child exists.
    #[error("cannot encode the argument of {of}: {reason}")]
    ArgumentEncode {
        /// Whose argument (`process "name"`, `the pool's initializer`).
        of: String,
        /// Why, as the value said it.
        reason: String,
    },

    /// A pool worker's [initializer](crate::PoolBuilder::initializer)
    /// panicked (or could not decode its argument): the worker is gone, and
    /// the pool is not started (Python's pool would restart such workers
    /// forever).
    #[error("the initializer of pool worker {pid} failed: {message}")]
    PoolInitializer {
        /// The worker.
        pid: u32,
        /// The panic message (with its location), or why it could not run.
        message: String,
    },

    /// [`Limits::address_space`](crate::Limits::address_space) is at or below
    /// the address space this process already maps, which a forked pool
    /// worker starts with: it could map nothing more (not even its channel).
    /// Refused before any worker exists.
    #[error(
        "Limits::address_space({limit} bytes) is at or below the {mapped} bytes of memory (address space) this process maps, which a forked worker starts with: it could not allocate anything; use StartMethod::ForkServer or Spawn, whose workers start small, or a larger limit"
    )]
    AddressSpaceBelowParent {
        /// The limit asked for.
        limit: u64,
        /// This process's address space (`VmSize`) when it was refused.
        mapped: u64,
    },

    /// A pool worker never connected back: it ended first, or did not connect
    /// within the time allowed.
    #[error("pool worker {pid} {how} before connecting{}", if *.init_hint { " (for re-executed workers: is brood::init() the first line of main, or brood::init_before_main!() in this test?)" } else { "" })]
    WorkerDidNotConnect {
        /// The worker.
        pid: u32,
        /// What happened instead (`"exited with 0"`, `"did not connect within 30s"`).
        how: String,
        /// Whether a missing `brood::init()` is the likely cause.
        init_hint: bool,
    },

    /// A process brood re-executed to run a function (this one, or a child)
    /// did not take it: [`init`](crate::init) did not run first in `main`,
    /// or the child's set-up failed before it took its request.
    #[error(
        "pid {pid} was started by brood to run a function but did not take it: brood::init() must be the first call in main (or brood::init_before_main!() at the top of a test file), so that it sees {marker}; if it was, the child's stderr says which step of its set-up failed"
    )]
    NotInitialised {
        /// The process that did not take its function.
        pid: u32,
        /// The environment variable brood left for `init`.
        marker: &'static str,
    },

    /// [`signals::graceful`](crate::signals::graceful) was given a signal that
    /// cannot be caught (SIGKILL, SIGSTOP).
    #[error("{signal} cannot be caught")]
    Uncatchable {
        /// The signal.
        signal: crate::Signal,
    },

    /// [`signals::graceful`](crate::signals::graceful) could not take the
    /// signals over.
    #[error("cannot take over signals ({step}): {source}")]
    Signals {
        /// What failed (`"installing the handlers"`, `"starting the signal thread"`).
        step: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// [`Command::run`](crate::Command::run) or
    /// [`output`](crate::Command::output) was given
    /// [`input`](crate::Command::input) while stdin was also set explicitly.
    #[error("{program:?} was given input, but its stdin was set explicitly")]
    InputWithStdin {
        /// The program.
        program: String,
    },

    /// The standard streams asked for could not be set up (a pipe, `/dev/null`,
    /// a descriptor copy).
    #[error("cannot set up the standard streams of {program:?}: {source}")]
    Stdio {
        /// The program.
        program: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },

    /// [`Command::spawn_ready`](crate::Command::spawn_ready): the program
    /// started but never showed its sign of readiness. brood ended it (its
    /// whole tree with [`Tree::Group`](crate::Tree::Group) or
    /// [`Tree::Cgroup`](crate::Tree::Cgroup)) and reaped it: nothing is left
    /// running.
    #[error("{program:?} (pid {pid}) did not become ready: {why}{}; its last output: {tail:?}",
        status.as_ref().map(|s| format!(" (its last status: {s:?})")).unwrap_or_default())]
    NotReady {
        /// The program.
        program: String,
        /// Its pid (now ended).
        pid: u32,
        /// What happened instead.
        why: NotReady,
        /// The last `STATUS=` it sent over `NOTIFY_SOCKET`, if any.
        status: Option<String>,
        /// The end of what it wrote on the streams brood watched (at most
        /// 4 KiB, stdout and stderr in the order they came).
        tail: String,
    },
}

/// What happened instead of a sign of readiness (see [`Error::NotReady`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The program ended first.
    #[error("it ended first ({0})")]
    Exited(ExitStatus),
    /// The time allowed passed first.
    #[error("no sign within {0:?}")]
    Timeout(Duration),
    /// It sent `STOPPING=1` over `NOTIFY_SOCKET` before `READY=1`.
    #[error("it announced STOPPING=1 before READY=1")]
    Stopping,
}

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// No such file, or not found on `PATH`.
    #[error("program not found (searched {searched})")]
    NotFound {
        /// Where brood looked (`"PATH"` or the path itself).
        searched: String,
    },
    /// The file exists but may not be executed (EACCES), or is not executable.
    #[error("permission denied")]
    PermissionDenied,
    /// The working directory given with `current_dir` cannot be entered.
    #[error("cannot enter working directory {dir:?}: {source}")]
    CurrentDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// An argument, environment entry or path contains a NUL byte, which cannot
    /// cross `execve(2)`.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which one (`"argument 2"`, `"environment variable FOO"`, …).
        what: String,
    },
    /// The arguments and environment together exceed the kernel's limit (E2BIG).
    #[error(
        "argument list and environment too long ({bytes} bytes; the kernel's limit is about {limit})"
    )]
    TooLong {
        /// Bytes of arguments and environment.
        bytes: usize,
        /// The limit (`ARG_MAX`).
        limit: usize,
    },
    /// One argument or environment entry is longer than the kernel accepts for a
    /// single string (`MAX_ARG_STRLEN`, 128 KiB), which `execve` reports as E2BIG.
    #[error("{what} is too long ({bytes} bytes; the kernel accepts at most {limit} per entry)")]
    EntryTooLong {
        /// Which one (`"argument 2"`, `"environment variable FOO"`, …).
        what: String,
        /// Its length, NUL included.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// An environment variable name is empty or contains `=`, so the child could
    /// not read it back.
    #[error("environment variable name {key:?} is empty or contains '='")]
    InvalidEnvKey {
        /// The name.
        key: String,
    },
    /// Setting up the child failed at some step before `execve`.
    #[error("{step} failed in the child: {source}")]
    Setup {
        /// The step (`"dup2"`, `"setsid"`, `"prctl(PR_SET_PDEATHSIG)"`…).
        step: &'static str,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// [`Stdio::merge_into_stdout`](crate::Stdio::merge_into_stdout) was given
    /// for a stream other than stderr.
    #[error("{stream} cannot be merged into stdout (only stderr can)")]
    MergeNotStderr {
        /// `"stdin"` or `"stdout"`.
        stream: &'static str,
    },
    /// [`Command::process_group`](crate::Command::process_group) together with
    /// [`Tree::Group`](crate::Tree::Group) or [`Tree::Session`](crate::Tree::Session),
    /// which already choose the child's group.
    #[error(
        "process_group({pgid}) conflicts with {tree:?}, which already places the child in a new group"
    )]
    ProcessGroupWithTree {
        /// The group asked for.
        pgid: i32,
        /// The tree policy.
        tree: crate::Tree,
    },
    /// `execve` failed for another reason.
    #[error("execve failed: {0}")]
    Exec(#[source] io::Error),
    /// Creating the process failed.
    #[error("cannot create the process: {0}")]
    Fork(#[source] io::Error),
    /// Creating the process failed because a limit on processes was reached
    /// (`EAGAIN`: `RLIMIT_NPROC`, a pids cgroup, `kernel.threads-max`).
    #[error(
        "cannot create the process: the process limit was reached (RLIMIT_NPROC, a pids cgroup, or kernel.threads-max)"
    )]
    ProcessLimit,
    /// The program is a directory.
    #[error("{path:?} is a directory")]
    IsADirectory {
        /// The path that was tried.
        path: std::path::PathBuf,
    },
    /// The program exists, but the interpreter it names does not: the `#!`
    /// line of a script, or the dynamic loader of a binary. A `#!` line that
    /// ends in a DOS line ending (`\r\n`) names a program whose name ends in
    /// `\r`, and the message says so.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Error, SpawnError};
    /// use std::os::unix::fs::PermissionsExt;
    /// let script = std::env::temp_dir().join(format!("dos-{}", std::process::id()));
    /// std::fs::write(&script, "#!/bin/sh\r\necho hi\r\n")?;
    /// std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    /// let err = Command::new(&script).spawn().unwrap_err();
    /// std::fs::remove_file(&script)?;
    /// assert!(err.to_string().contains("DOS line ending"), "{err}");
    /// let Error::Spawn { cause: SpawnError::InterpreterNotFound { interpreter, .. }, .. } = err else {
    ///     panic!("{err}")
    /// };
    /// assert_eq!(interpreter.as_deref(), Some(std::path::Path::new("/bin/sh\r")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error("{path:?} exists, but {}", missing_interpreter(interpreter.as_deref()))]
    InterpreterNotFound {
        /// The program that was found.
        path: std::path::PathBuf,
        /// The interpreter the kernel looked for, byte for byte: the program
        /// of the `#!` line, or the binary's dynamic loader (`PT_INTERP`);
        /// `None` if the file could not be read again.
        interpreter: Option<std::path::PathBuf>,
    },
    /// The sign of readiness asked of
    /// [`Command::spawn_ready`](crate::Command::spawn_ready) cannot be
    /// watched with these settings (a pattern on a stream sent to a file, a
    /// notification descriptor at 0, 1 or 2…).
    #[error("cannot watch for readiness: {reason}")]
    ReadySign {
        /// Why.
        reason: String,
    },
}

/// What [`SpawnError::InterpreterNotFound`] says is missing.
fn missing_interpreter(interpreter: Option<&std::path::Path>) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Some(path) = interpreter else {
        return "its interpreter was not found".into();
    };
    match path.as_os_str().as_bytes().strip_suffix(b"\r") {
        Some(name) => format!(
            "its #! line ends in a DOS line ending (\\r\\n), so its interpreter is {path:?}, which was not found (convert the file to Unix line endings, e.g. with dos2unix; {:?} is meant)",
            String::from_utf8_lossy(name)
        ),
        None if path.exists() => {
            format!(
                "its interpreter {path:?} could not be run (its own interpreter or loader is missing)"
            )
        }
        None => format!("its interpreter {path:?} was not found"),
    }
}

/// The most lines of a failed program's stderr that [`Error::Failed`]'s message shows.
const STDERR_TAIL_LINES: usize = 5;
/// The most bytes of a failed program's stderr that [`Error::Failed`]'s message shows.
const STDERR_TAIL_BYTES: usize = 500;

/// `; its stderr ends: "…"` with the last lines of `stderr`, or nothing when
/// it is empty (not captured, or the program wrote nothing).
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim_end();
    if text.is_empty() {
        return String::new();
    }
    let mut start = text
        .rmatch_indices('\n')
        .nth(STDERR_TAIL_LINES - 1)
        .map_or(0, |(i, _)| i + 1);
    if text.len() - start > STDERR_TAIL_BYTES {
        start = text.len() - STDERR_TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
    }
    let cut = if start > 0 { "…" } else { "" };
    format!(
        "; its stderr ends: {:?}",
        format!("{cut}{}", &text[start..])
    )
}

impl Error {
    /// A failed fork: the process limit, or another cause.
    pub(crate) fn fork(step: &'static str, e: io::Error) -> Error {
        if e.raw_os_error() == Some(libc::EAGAIN) {
            Error::ProcessLimit { step }
        } else {
            Error::Fork(e)
        }
    }

    /// The pid the error concerns, when there is one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Error::ReapedElsewhere { pid }
            | Error::ServerDied { pid }
            | Error::Os { pid, .. }
            | Error::Timeout { pid, .. }
            | Error::NotReady { pid, .. }
            | Error::Failed { pid, .. } => Some(*pid),
            _ => None,
        }
    }

    pub(crate) fn os(op: &'static str, pid: u32, source: impl Into<io::Error>) -> Error {
        Error::Os {
            op,
            pid,
            source: source.into(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}
