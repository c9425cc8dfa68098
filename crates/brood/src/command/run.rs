//! [`Command::run`] (`subprocess.run`: spawn, communicate, check), and std's
//! [`Command::output`] and [`Command::status`].

use super::stdio::Kind as StdioKind;
use super::{Command, Popen};
use crate::{Error, ExitStatus, Result};
use std::time::Instant;

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
    ///   does not. **With a timeout and no [`tree`](Command::tree) chosen, the
    ///   program leads a group of its own** (and [`policy`](Command::policy)
    ///   says [`Tree::Group`](crate::Tree::Group)), so that nothing it started
    ///   outlives the timeout; an explicit [`Tree::Own`](crate::Tree::Own)
    ///   keeps Python's way, the program killed alone; when stdin is the terminal whose foreground this
    ///   process holds, the program gets the foreground too (handed over in the
    ///   child before it starts, so reading the terminal never stops it, and
    ///   Ctrl-C reaches the program rather than this process), and the
    ///   terminal comes back when it ends. The same holds for
    ///   [`output`](Command::output) and [`status`](Command::status).
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
        let (popen, output) = self.collect(StdioKind::Inherit)?;
        if self.check && !output.status.success() {
            return Err(Error::Failed {
                program: popen.program().to_string(),
                pid: popen.pid(),
                status: output.status,
                stdout: output.stdout,
                stderr: output.stderr,
            });
        }
        Ok(output)
    }

    /// std's `Command::output`: starts the program, captures stdout and stderr
    /// (unless they were set explicitly), waits and returns the [`Output`]
    /// whatever the status — [`check`](Command::check) is `run`'s only.
    ///
    /// As in std, stdin is `/dev/null` unless set (a pipe with
    /// [`input`](Command::input)). [`timeout`](Command::timeout) applies as
    /// for [`run`](Command::run).
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]).output()?;
    /// assert_eq!(out.status.code(), Some(3));
    /// assert_eq!((out.stdout, out.stderr), (Vec::new(), b"err\n".to_vec()));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn output(&mut self) -> Result<Output> {
        Ok(self.collect(StdioKind::Null)?.1)
    }

    /// std's `Command::status`: starts the program with every stream inherited
    /// (unless set), waits, and returns how it ended, whatever that was.
    ///
    /// [`timeout`](Command::timeout) applies: past it, the program (its tree
    /// with [`Tree::Group`](crate::Tree::Group)) is SIGKILLed and reaped, and
    /// `status` returns [`Error::Timeout`]. [`input`](Command::input) is
    /// refused ([`Error::InputWithStdin`]): stdin is inherited.
    ///
    /// ```
    /// # brood::init();
    /// let status = brood::Command::new("sh").args(["-c", "exit 5"]).status()?;
    /// assert_eq!(status.code(), Some(5));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn status(&mut self) -> Result<ExitStatus> {
        if self.input.is_some() {
            return Err(Error::InputWithStdin {
                program: super::prepare::display_program(&self.program),
            });
        }
        let popen = self.spawn()?;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        match popen.child().wait_until(deadline)? {
            Some(status) => Ok(status),
            None => {
                let _ = popen.kill();
                let _ = popen.wait();
                Err(Error::Timeout {
                    program: popen.program().to_string(),
                    pid: popen.pid(),
                    timeout: self.timeout.unwrap_or_default(),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                })
            }
        }
    }

    /// Spawns with stdout and stderr piped unless set, stdin `stdin` unless set
    /// (a pipe with input), and gathers everything until the program ends.
    fn collect(&mut self, stdin: StdioKind) -> Result<(Popen, Output)> {
        let stdin = if self.input.is_some() {
            StdioKind::Piped
        } else {
            stdin
        };
        if self.input.is_some() && self.stdin.is_some() {
            return Err(Error::InputWithStdin {
                program: super::prepare::display_program(&self.program),
            });
        }
        // With a timeout and no tree chosen, the program leads a group of its
        // own, so that the timeout's kill reaches everything it started; at a
        // terminal it also gets the foreground (or reading the terminal would
        // stop it), and the terminal comes back to us when it ends.
        let own_group = self.timeout_leads_group();
        // (The terminal comes back through `foreground`'s own take-back.)
        let saved = (self.lifecycle, self.foreground);
        if own_group {
            self.lifecycle.set_tree(crate::Tree::Group);
            let tty_stdin = self.stdin.is_none() && matches!(stdin, StdioKind::Inherit);
            self.foreground = tty_stdin && crate::terminal::ours();
        }
        let spawned = self.spawn_with([stdin, StdioKind::Piped, StdioKind::Piped]);
        (self.lifecycle, self.foreground) = saved;
        let mut popen = spawned?;
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
        let output = Output {
            status,
            stdout,
            stderr,
        };
        Ok((popen, output))
    }
}
