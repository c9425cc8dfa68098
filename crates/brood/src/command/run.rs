//! [`Command::run`]: `subprocess.run` — spawn, communicate, check.

use super::stdio::Kind as StdioKind;
use super::Command;
use crate::{Error, ExitStatus, Result};

/// What [`Command::run`] returns: how the program ended and what it wrote
/// (Python's `CompletedProcess`).
///
/// ```
/// # brood::init();
/// let out: brood::Output = brood::Command::new("echo").arg("hi").run()?;
/// assert!(out.status.success());
/// assert_eq!(out.stdout, b"hi\n");
/// assert!(out.stderr.is_empty());
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// How the program ended.
    pub status: ExitStatus,
    /// Its stdout, if captured (empty otherwise).
    pub stdout: Vec<u8>,
    /// Its stderr, if captured (empty otherwise).
    pub stderr: Vec<u8>,
}

impl Command {
    /// Python's `subprocess.run`: starts the program, writes [`input`](Command::input)
    /// if any, captures stdout and stderr (unless they were set explicitly), waits
    /// and returns the [`Output`].
    ///
    /// - stdin is a pipe when there is input, else inherited (unless set).
    /// - [`check`](Command::check) is **on by default** (Python's is off): a
    ///   non-zero exit or a signal gives [`Error::Failed`] with the status and the
    ///   output. Turn it off with `.check(false)`.
    /// - [`timeout`](Command::timeout): past it, the program is SIGKILLed — its whole
    ///   tree with [`Tree::Group`](crate::Tree::Group) /
    ///   [`Tree::Session`](crate::Tree::Session) — reaped, and `run` returns
    ///   [`Error::Timeout`] with the output read so far. Python kills only the
    ///   child, and hangs if a grandchild keeps the pipes open; with a group, brood
    ///   does not.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Error};
    ///
    /// let out = Command::new("sh").args(["-c", "echo out; echo err >&2"]).run()?;
    /// assert_eq!((out.stdout, out.stderr), (b"out\n".to_vec(), b"err\n".to_vec()));
    ///
    /// match Command::new("sh").args(["-c", "echo partial; exit 2"]).run() {
    ///     Err(Error::Failed { status, stdout, .. }) => {
    ///         assert_eq!(status.code(), Some(2));
    ///         assert_eq!(stdout, b"partial\n");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn run(&mut self) -> Result<Output> {
        let stdin = if self.input.is_some() {
            StdioKind::Piped
        } else {
            StdioKind::Inherit
        };
        if self.input.is_some() && self.stdin.is_some() {
            return Err(Error::InputWithStdin {
                program: super::prepare::display_program(&self.program),
            });
        }
        let mut popen = self.spawn_with([stdin, StdioKind::Piped, StdioKind::Piped])?;
        let (stdout, stderr) = match popen.communicate(self.input.as_deref(), self.timeout) {
            Ok(output) => output,
            Err(e) => {
                // Timeout or I/O failure: the program must not outlive `run`.
                let _ = popen.kill();
                let _ = popen.wait();
                return Err(e);
            }
        };
        let status = popen.wait()?;
        if self.check && !status.success() {
            return Err(Error::Failed {
                program: popen.program().to_string(),
                pid: popen.pid(),
                status,
                stdout,
                stderr,
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}
