//! [`Popen`]: a started [`Command`](crate::Command) — a [`Child`] plus the parent's
//! ends of its pipes and what `communicate` has gathered so far.

use super::communicate::Progress;
use super::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::{Child, ExitStatus, Result, Signal};
use std::time::Duration;

/// A running (or finished) program started by [`Command::spawn`](crate::Command::spawn):
/// Python's `subprocess.Popen`.
///
/// Python's verbs are its own methods: [`pid`](Popen::pid), [`poll`](Popen::poll),
/// [`wait`](Popen::wait), [`wait_timeout`](Popen::wait_timeout),
/// [`returncode`](Popen::returncode), [`is_alive`](Popen::is_alive),
/// [`send_signal`](Popen::send_signal), [`terminate`](Popen::terminate),
/// [`kill`](Popen::kill), [`terminate_timeout`](Popen::terminate_timeout); the
/// rest of the [`Child`] (pidfd, policy, signalling the tree) is behind
/// [`child`](Popen::child). The pipes asked for with [`Stdio::piped`](crate::Stdio::piped)
/// are in `stdin`, `stdout` and `stderr`; take them to use them directly, or let
/// [`communicate`](Popen::communicate) drive them all without deadlock.
///
/// Dropping a `Popen` closes its pipes but neither waits for nor ends the
/// program (its [`OnExit`](crate::OnExit) applies when we exit); brood still
/// reaps it when it ends, so it never becomes a zombie.
///
/// ```
/// # brood::init();
/// use brood::{Command, Signal, Stdio};
///
/// let mut p = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
/// assert_eq!(p.returncode(), None);
/// let (out, _) = p.communicate(Some(b"echo"), None)?;
/// assert_eq!(out, b"echo");
/// assert_eq!(p.returncode(), Some(0));
///
/// let sleeper = Command::new("sleep").arg("30").spawn()?;
/// sleeper.send_signal(Signal::TERM)?;
/// sleeper.wait()?;
/// assert_eq!(sleeper.returncode(), Some(-15));
/// # Ok::<(), brood::Error>(())
/// ```
pub struct Popen {
    child: Child,
    program: String,
    /// The write end of the child's stdin, if it was [`Stdio::piped`](crate::Stdio::piped).
    /// Set it to `None` (drop it) to close the child's stdin.
    pub stdin: Option<ChildStdin>,
    /// The read end of the child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The read end of the child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    pub(super) progress: Progress,
}

impl Popen {
    pub(super) fn new(
        child: Child,
        program: String,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> Popen {
        Popen {
            child,
            program,
            stdin,
            stdout,
            stderr,
            progress: Progress::default(),
        }
    }

    /// The program, as given to [`Command::new`](crate::Command::new).
    ///
    /// ```
    /// # brood::init();
    /// let p = brood::Command::new("true").spawn()?;
    /// assert_eq!(p.program(), "true");
    /// # p.wait()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The [`Child`] itself (cheap to clone; it outlives the `Popen`).
    ///
    /// ```
    /// # brood::init();
    /// let child: brood::Child = brood::Command::new("true").spawn()?.child().clone();
    /// assert!(child.wait()?.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// Gives up the pipes and keeps only the [`Child`].
    ///
    /// ```
    /// # brood::init();
    /// let child = brood::Command::new("true").spawn()?.into_child();
    /// assert!(child.wait()?.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn into_child(self) -> Child {
        self.child
    }

    /// The child's process id (`Popen.pid`).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The status if the program ended, without blocking (`Popen.poll()`); see
    /// [`Child::poll`].
    pub fn poll(&self) -> Result<Option<ExitStatus>> {
        self.child.poll()
    }

    /// Waits until the program ends (`Popen.wait()`); see [`Child::wait`].
    pub fn wait(&self) -> Result<ExitStatus> {
        self.child.wait()
    }

    /// Waits at most `timeout`; `None` if the program still runs
    /// (`Popen.wait(timeout)`); see [`Child::wait_timeout`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.child.wait_timeout(timeout)
    }

    /// True until the program has ended.
    pub fn is_alive(&self) -> bool {
        self.child.is_alive()
    }

    /// Sends `sig` to the program alone, through its pidfd
    /// (`Popen.send_signal`); see [`Child::send_signal`].
    pub fn send_signal(&self, sig: Signal) -> Result<()> {
        self.child.send_signal(sig)
    }

    /// SIGTERM (to the whole tree with [`Tree::Group`](crate::Tree::Group) or
    /// [`Tree::Session`](crate::Tree::Session)); `Popen.terminate()`.
    pub fn terminate(&self) -> Result<()> {
        self.child.terminate()
    }

    /// SIGKILL (to the whole tree with a group or session); `Popen.kill()`.
    pub fn kill(&self) -> Result<()> {
        self.child.kill()
    }

    /// SIGTERM, then SIGKILL after `grace`; returns how the program ended. Cannot
    /// hang on a program that ignores SIGTERM; see [`Child::terminate_timeout`].
    pub fn terminate_timeout(&self, grace: Duration) -> Result<ExitStatus> {
        self.child.terminate_timeout(grace)
    }

    /// Python's `Popen.returncode`: `None` while the program runs, then its exit
    /// code, or `-N` if signal N killed it. It does not block. Unlike Python's
    /// attribute it is always current (brood reaps the child the moment it ends,
    /// so no `poll()` is needed first). `None` too if someone else reaped the
    /// child; [`Child::poll`] tells that case apart.
    ///
    /// ```
    /// # brood::init();
    /// let p = brood::Command::new("sh").args(["-c", "exit 4"]).spawn()?;
    /// p.wait()?;
    /// assert_eq!(p.returncode(), Some(4));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn returncode(&self) -> Option<i32> {
        self.child.poll().ok().flatten().map(|s| s.exitcode())
    }
}

impl std::fmt::Debug for Popen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Popen")
            .field("program", &self.program)
            .field("child", &self.child)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}
