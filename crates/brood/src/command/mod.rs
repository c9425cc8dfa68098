//! [`Command`] → [`Popen`]: `subprocess.Popen` on the shape of
//! `std::process::Command`, with brood's lifecycle policies, started at a cost that
//! stays flat however large the parent grows.
//!
//! - `mod.rs`: the builder.
//! - `stdio.rs`: [`Stdio`] and the descriptors of one spawn.
//! - `prepare.rs`: argv, envp and PATH turned into C in the parent, with the checks.
//! - `exec.rs`: `spawn` — the clone, the typed errors, adoption by the reaper.
//! - `popen.rs`: [`Popen`]; `communicate.rs`: [`Popen::communicate`];
//!   `run.rs`: [`Command::run`] and [`Output`].
//! - `asynchronous.rs` (feature `tokio`): async pipe ends and
//!   `Popen::communicate_async`.

#[cfg(feature = "tokio")]
mod asynchronous;
mod communicate;
mod exec;
mod interp;
mod popen;
mod prepare;
mod ready;
mod run;
mod stdio;

#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncChildStderr, AsyncChildStdin, AsyncChildStdout};
pub use popen::Popen;
pub use run::Output;
pub use stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};

use crate::Signal;
use crate::policy::{Kind, Lifecycle};
use crate::sys::clone::PreExec;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A program to start: its arguments, environment, working directory, standard
/// streams and lifecycle policies (`subprocess.Popen`'s arguments, with the
/// builder of `std::process::Command`).
///
/// Policies start at Python's behaviour for `Popen` ([`Kind::Command`]): the child
/// is left running when we exit and survives our death. Unlike Python, a child
/// that ends is reaped at once, so it never lingers as a zombie.
///
/// The program is found like `execvp` does (and Python): a name without `/` is
/// searched on the child's `PATH` if the environment was changed, on ours
/// otherwise (`/bin:/usr/bin` when there is none); a path with `/` is used as is,
/// relative to [`current_dir`](Command::current_dir) when one is set. Descriptors
/// other than 0, 1 and 2 are not closed: as in `std`, brood relies on
/// close-on-exec, which Rust sets on every descriptor it opens.
///
/// ```
/// # brood::init();
/// use brood::{Command, Stdio};
///
/// let mut child = Command::new("sh")
///     .arg("-c")
///     .arg("echo $GREETING from $(pwd)")
///     .env("GREETING", "hello")
///     .current_dir("/")
///     .stdout(Stdio::piped())
///     .spawn()?;
/// let (out, _) = child.communicate(None, None)?;
/// assert_eq!(out, b"hello from /\n");
/// assert_eq!(child.returncode(), Some(0));
/// # Ok::<(), brood::Error>(())
/// ```
///
/// A `Command` is a template: [`Clone`] it to start the same program again
/// with changes, or from a [`ChildSpec::command`](crate::ChildSpec::command)
/// closure. A clone's streams are what the original's were: a
/// [`Stdio::piped`] makes a new pipe at each start; a descriptor given with
/// `Stdio::from(file)` is shared by the clones (it stays open until the last
/// of them is dropped). [`pre_exec`](Command::pre_exec) closures are shared
/// too: clones starting at the same time from several threads take their
/// turn for them.
///
/// ```
/// # brood::init();
/// let mut base = brood::Command::new("sh");
/// base.arg("-c").env("GREETING", "hi");
/// let out = base.clone().arg("echo $GREETING one").run()?;
/// assert_eq!(out.stdout, b"hi one\n");
/// let out = base.clone().arg("echo $GREETING two").run()?;
/// assert_eq!(out.stdout, b"hi two\n");
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    /// Changes to the environment: `None` removes the variable.
    env: BTreeMap<OsString, Option<OsString>>,
    env_clear: bool,
    cwd: Option<PathBuf>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    lifecycle: Lifecycle,
    /// `argv[0]`, when it is not the program.
    arg0: Option<OsString>,
    uid: Option<u32>,
    gid: Option<u32>,
    groups: Option<Vec<u32>>,
    pgroup: Option<i32>,
    /// Closures for the child before `execve`; any makes the spawn a full fork.
    /// Shared by clones of the command.
    pre_exec: Vec<Arc<Mutex<PreExec>>>,
    /// Take the terminal's foreground in the child, before `execve`.
    foreground: bool,
    /// (ignored, blocked) signal bit sets (bit `n - 1` for signal `n`) the
    /// program starts with; `None`: handlers reset, nothing blocked.
    start_signals: Option<(u64, u64)>,
    // For `run` only.
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
    check: bool,
}

impl Command {
    /// A command that runs `program` with no arguments, our environment and
    /// working directory, inherited standard streams and Python's `Popen` policies.
    ///
    /// ```
    /// # brood::init();
    /// let status = brood::Command::new("true").spawn()?.wait()?;
    /// assert!(status.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            env_clear: false,
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            lifecycle: Lifecycle::new(Kind::Command),
            arg0: None,
            uid: None,
            gid: None,
            groups: None,
            pgroup: None,
            pre_exec: Vec::new(),
            foreground: false,
            start_signals: None,
            input: None,
            timeout: None,
            check: true,
        }
    }

    /// Adds one argument.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("echo").arg("a b").run()?;
    /// assert_eq!(out.stdout, b"a b\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("printf").args(["%s-%s", "x", "y"]).run()?;
    /// assert_eq!(out.stdout, b"x-y");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("sh").args(["-c", "echo $X"]).env("X", "1").run()?;
    /// assert_eq!(out.stdout, b"1\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets several environment variables.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("sh")
    ///     .args(["-c", "echo $A$B"])
    ///     .envs([("A", "1"), ("B", "2")])
    ///     .run()?;
    /// assert_eq!(out.stdout, b"12\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("sh")
    ///     .args(["-c", "echo ${HOME-unset}"])
    ///     .env_remove("HOME")
    ///     .run()?;
    /// assert_eq!(out.stdout, b"unset\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Command::env)
    /// adds afterwards). The program is then searched on `/bin:/usr/bin` unless a
    /// `PATH` is set.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("env").env_clear().env("ONLY", "me").run()?;
    /// assert_eq!(out.stdout, b"ONLY=me\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.env.clear();
        self.env_clear = true;
        self
    }

    /// The child's working directory. A relative program path is taken from there.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("pwd").current_dir("/tmp").run()?;
    /// assert_eq!(out.stdout, b"/tmp\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's standard input (default: inherited).
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("cat").stdin(brood::Stdio::null()).run()?;
    /// assert!(out.stdout.is_empty());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn stdin(&mut self, stdin: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(stdin.into());
        self
    }

    /// The child's standard output (default: inherited; captured by [`run`](Command::run)).
    ///
    /// ```
    /// # brood::init();
    /// let mut child = brood::Command::new("echo").arg("x").stdout(brood::Stdio::piped()).spawn()?;
    /// assert_eq!(child.communicate(None, None)?.0, b"x\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn stdout(&mut self, stdout: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(stdout.into());
        self
    }

    /// The child's standard error (default: inherited; captured by [`run`](Command::run)).
    ///
    /// ```
    /// # brood::init();
    /// let mut child = brood::Command::new("sh")
    ///     .args(["-c", "echo oops >&2"])
    ///     .stderr(brood::Stdio::piped())
    ///     .spawn()?;
    /// assert_eq!(child.communicate(None, None)?.1, b"oops\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn stderr(&mut self, stderr: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(stderr.into());
        self
    }

    crate::policy::lifecycle_methods! {
        on_exit {
            /// ```no_run
            /// # brood::init();
            /// brood::Command::new("sleep").arg("1").on_exit(brood::OnExit::Wait).spawn()?;
            /// brood::exit(0); // waits for `sleep` first
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        on_parent_death {
            /// ```
            /// # brood::init();
            /// use brood::{Command, OnParentDeath, Signal};
            /// let child = Command::new("sleep")
            ///     .arg("30")
            ///     .on_parent_death(OnParentDeath::Signal(Signal::KILL))
            ///     .spawn()?;
            /// child.kill()?;
            /// child.wait()?;
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        tree {
            /// ```
            /// # brood::init();
            /// let child = brood::Command::new("sleep").arg("30").tree(brood::Tree::Group).spawn()?;
            /// child.kill()?; // the whole group
            /// assert_eq!(child.wait()?.exitcode(), -9);
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        on_drop {
            /// ```
            /// # brood::init();
            /// use brood::{Command, OnDrop, Signal};
            /// let child = Command::new("sleep").arg("30").on_drop(OnDrop::Kill).spawn()?;
            /// let watcher = brood::os::PidFd::open(child.pid()).unwrap();
            /// drop(child); // the last handle: SIGKILL
            /// assert!(watcher.wait_exited(Some(std::time::Duration::from_secs(5))).unwrap());
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        set_policy {
            /// ```
            /// # brood::init();
            /// use brood::{Command, Kind, Policy};
            /// let child = Command::new("true").set_policy(Policy::for_kind(Kind::PoolWorker)).spawn()?;
            /// assert!(child.wait()?.success());
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
    }

    /// The lifecycle options the child will get: the kind's defaults with
    /// what was set on top — and, with a [`timeout`](Command::timeout) and no
    /// [`tree`](Command::tree) or [`process_group`](Command::process_group)
    /// chosen, [`Tree::Group`](crate::Tree::Group): [`run`](Command::run),
    /// [`output`](Command::output) and [`status`](Command::status) then make
    /// the program lead a group of its own, so that the timeout's kill reaches
    /// everything it started. ([`spawn`](Command::spawn) does not use the
    /// timeout, nor that group.) An explicit [`Tree::Own`](crate::Tree::Own)
    /// is kept: the timeout then kills the program alone, as Python does, and
    /// what it started lives on.
    ///
    /// ```
    /// use brood::{Command, Kind, OnExit, Policy, Tree};
    /// use std::time::Duration;
    /// assert_eq!(Command::new("ls").policy(), Policy::for_kind(Kind::Command));
    /// assert_eq!(Command::new("ls").on_exit(OnExit::Wait).policy().on_exit, OnExit::Wait);
    /// let mut cmd = Command::new("make");
    /// cmd.timeout(Duration::from_secs(60));
    /// assert_eq!(cmd.policy().tree, Tree::Group);
    /// assert_eq!(cmd.tree(Tree::Own).policy().tree, Tree::Own);
    /// ```
    pub fn policy(&self) -> crate::Policy {
        let mut lifecycle = self.lifecycle;
        if self.timeout_leads_group() {
            lifecycle.set_tree(crate::Tree::Group);
        }
        lifecycle.policy()
    }

    /// Whether `run` (and `output`, `status`) make the program lead a group:
    /// with a timeout, when neither a tree nor a group was chosen.
    fn timeout_leads_group(&self) -> bool {
        self.timeout.is_some() && !self.lifecycle.tree_is_set() && self.pgroup.is_none()
    }

    /// Hands the terminal on the child's stdin to the child's process group
    /// (`tcsetpgrp`) in the child itself, before `execve`, with every signal
    /// blocked — as tini does — so the program never starts in the background
    /// (an interactive shell that finds itself there stops itself with SIGTTIN).
    /// Needs [`Tree::Group`](crate::Tree::Group) and a terminal whose foreground this process's
    /// group holds; without a terminal on stdin it does nothing. When the
    /// child has ended (brood reaped it), the foreground comes back to this
    /// process's group — unless it had moved on to another group meanwhile —
    /// as a shell takes it back from a foreground job.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Stdio, Tree};
    /// // No terminal on stdin here: nothing to hand over, the child starts anyway.
    /// let child = Command::new("true")
    ///     .tree(Tree::Group)
    ///     .foreground(true)
    ///     .stdin(Stdio::null())
    ///     .spawn()?;
    /// assert!(child.wait()?.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn foreground(&mut self, on: bool) -> &mut Command {
        self.foreground = on;
        self
    }

    /// The exact signal state the program starts with: `ignored` signals set to
    /// `SIG_IGN`, every other one to its default action, and `blocked` as its
    /// signal mask. For a supervisor that catches or blocks signals itself but
    /// must pass on what it inherited (under `nohup`, SIGHUP stays ignored).
    /// Without it, every handler is reset, ignored signals stay ignored (except
    /// SIGPIPE, which Rust ignores on its own) and nothing is blocked.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Signal};
    /// let out = Command::new("grep")
    ///     .args(["-E", "^Sig(Ign|Blk)", "/proc/self/status"])
    ///     .start_signals([Signal::HUP], [Signal::USR1])
    ///     .run()?;
    /// let text = String::from_utf8_lossy(&out.stdout);
    /// let bits = |field: &str| {
    ///     let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    ///     u64::from_str_radix(line[field.len()..].trim(), 16).unwrap() & 0x7fff_ffff
    /// };
    /// assert_eq!(bits("SigBlk:"), 1 << (10 - 1)); // SIGUSR1 is 10
    /// assert_eq!(bits("SigIgn:"), 1 << (1 - 1)); // SIGHUP is 1
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn start_signals(
        &mut self,
        ignored: impl IntoIterator<Item = Signal>,
        blocked: impl IntoIterator<Item = Signal>,
    ) -> &mut Command {
        let bits = |set: &mut dyn Iterator<Item = Signal>| {
            set.fold(0u64, |acc, s| acc | 1u64 << (s.as_raw() - 1))
        };
        self.start_signals = Some((
            bits(&mut ignored.into_iter()),
            bits(&mut blocked.into_iter()),
        ));
        self
    }

    /// For [`run`](Command::run): bytes to write to the child's stdin (which is then
    /// a pipe), closed afterwards (`subprocess.run(input=…)`).
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("tr").args(["a-z", "A-Z"]).input("shout").run()?;
    /// assert_eq!(out.stdout, b"SHOUT");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn input(&mut self, input: impl Into<Vec<u8>>) -> &mut Command {
        self.input = Some(input.into());
        self
    }

    /// For [`run`](Command::run): how long the child may run; past it, the child
    /// (its whole tree with [`Tree::Group`](crate::Tree::Group)/[`Tree::Session`](crate::Tree::Session)) is SIGKILLed and
    /// `run` returns [`Error::Timeout`](crate::Error::Timeout). Unless a tree
    /// was chosen, the program then leads a group of its own, which
    /// [`policy`](Command::policy) reports as [`Tree::Group`](crate::Tree::Group).
    ///
    /// ```
    /// # brood::init();
    /// use std::time::Duration;
    /// let err = brood::Command::new("sleep")
    ///     .arg("10")
    ///     .timeout(Duration::from_millis(50))
    ///     .run()
    ///     .unwrap_err();
    /// assert!(matches!(err, brood::Error::Timeout { .. }));
    /// ```
    pub fn timeout(&mut self, timeout: Duration) -> &mut Command {
        self.timeout = Some(timeout);
        self
    }

    /// For [`run`](Command::run): whether a non-zero exit is an
    /// [`Error::Failed`](crate::Error::Failed). On by default — unlike Python's
    /// `check=False` — because an ignored failure is the more costly mistake.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("false").check(false).run()?;
    /// assert_eq!(out.status.code(), Some(1));
    /// assert!(brood::Command::new("false").run().is_err());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn check(&mut self, check: bool) -> &mut Command {
        self.check = check;
        self
    }

    /// The child's `argv[0]`, instead of the program as given (the program is
    /// still what is searched and executed), as std's `CommandExt::arg0` and
    /// Python's `executable=`.
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("sh").arg0("renamed").args(["-c", "echo $0"]).run()?;
    /// assert_eq!(out.stdout, b"renamed\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Command {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Runs the child as user `uid` (`setuid` before `execve`; Python's `user=`).
    /// Usually needs root. Set after [`groups`](Command::groups) and
    /// [`gid`](Command::gid), since it may drop the right to set them.
    ///
    /// A failure (EPERM without root) is an [`Error::Spawn`](crate::Error::Spawn)
    /// with [`SpawnError::Setup`](crate::SpawnError::Setup) naming `setuid`.
    ///
    /// ```no_run
    /// # brood::init();
    /// // As root: run `id` as nobody.
    /// let out = brood::Command::new("id").uid(65534).gid(65534).groups(&[]).run()?;
    /// assert!(out.stdout.starts_with(b"uid=65534"));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with group id `gid` (`setgid`; Python's `group=`).
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// The child's supplementary groups (`setgroups`; Python's `extra_groups=`);
    /// an empty list drops them all. Needs root.
    pub fn groups(&mut self, groups: &[u32]) -> &mut Command {
        self.groups = Some(groups.to_vec());
        self
    }

    /// Puts the child in process group `pgid` (`setpgid(0, pgid)`), or in a new
    /// group it leads with 0 — as std's `CommandExt::process_group` and Python's
    /// `process_group=`. Only the placement: signals from brood still reach the
    /// child alone. [`Tree::Group`](crate::Tree::Group) is the way to lead a group
    /// that `terminate` and `kill` reach as a whole; combining the two is a
    /// [`SpawnError::ProcessGroupWithTree`](crate::SpawnError::ProcessGroupWithTree).
    ///
    /// ```
    /// # brood::init();
    /// let child = brood::Command::new("sleep").arg("30").process_group(0).spawn()?;
    /// let stat = brood::os::procfs::stat(child.pid()).unwrap().unwrap();
    /// assert_eq!(stat.pgrp, Some(child.pid()));
    /// child.kill()?;
    /// child.wait()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn process_group(&mut self, pgid: i32) -> &mut Command {
        self.pgroup = Some(pgid);
        self
    }

    /// Runs `f` in the child after brood's own set-up (streams, directory,
    /// credentials, signals back to their defaults) and just before `execve`,
    /// as std's `CommandExt::pre_exec`. An error it returns fails the spawn with
    /// [`SpawnError::Setup`](crate::SpawnError::Setup) at step `pre_exec` (only
    /// its OS error code crosses back).
    ///
    /// **Cost:** a command with a `pre_exec` closure is started with a full
    /// `fork(2)` instead of brood's `clone(CLONE_VM | CLONE_VFORK)`: the closure
    /// may allocate or touch any state, which a child sharing the parent's
    /// memory must never do. A fork copies the parent's page tables, so its cost
    /// grows with the parent's memory, while the default path stays flat
    /// (`cargo bench -p brood --bench spawn` measures both, with a small and a
    /// 1 GiB parent).
    ///
    /// # Safety
    /// `f` runs in a forked copy of a possibly multi-threaded process: it must
    /// not take a lock (a `Mutex`, stdout, the allocator's in some libcs) that
    /// another thread may have held at the fork, nor rely on other threads.
    ///
    /// ```
    /// # brood::init();
    /// let mut cmd = brood::Command::new("sh");
    /// cmd.args(["-c", "echo $PPID"]);
    /// // SAFETY: the closure only makes a system call.
    /// unsafe {
    ///     cmd.pre_exec(|| {
    ///         if libc_like_getpid() > 0 { Ok(()) } else { Err(std::io::Error::other("no pid")) }
    ///     })
    /// };
    /// fn libc_like_getpid() -> u32 { std::process::id() }
    /// assert!(cmd.run()?.status.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    #[allow(unsafe_code)] // the public unsafe API; the raw work is in sys::clone
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: our caller accepted the same contract.
        self.pre_exec
            .push(Arc::new(Mutex::new(unsafe { PreExec::new(f) })));
        self
    }

    /// The program, as given.
    ///
    /// ```
    /// assert_eq!(brood::Command::new("ls").get_program(), "ls");
    /// ```
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without the program).
    ///
    /// ```
    /// let mut cmd = brood::Command::new("ls");
    /// cmd.args(["-l", "/"]);
    /// assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["-l", "/"]);
    /// ```
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(|a| a.as_os_str())
    }
}
