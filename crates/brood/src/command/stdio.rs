//! [`Stdio`]: what a child's stdin, stdout or stderr is connected to, and the
//! pipe ends the parent keeps.

use std::fs::File;
use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

/// The parent's end of a child's stdin pipe ([`Popen::stdin`](crate::Popen::stdin)):
/// a plain [`std::io::PipeWriter`]. Drop it to close the child's stdin.
///
/// ```
/// # brood::init();
/// use std::io::{Read, Write};
/// let mut p = brood::Command::new("cat")
///     .stdin(brood::Stdio::piped())
///     .stdout(brood::Stdio::piped())
///     .spawn()?;
/// let mut stdin: brood::ChildStdin = p.stdin.take().unwrap();
/// stdin.write_all(b"by hand").unwrap();
/// drop(stdin);
/// let mut stdout: brood::ChildStdout = p.stdout.take().unwrap();
/// let mut text = String::new();
/// stdout.read_to_string(&mut text).unwrap();
/// assert_eq!(text, "by hand");
/// p.wait()?;
/// # Ok::<(), brood::Error>(())
/// ```
pub type ChildStdin = PipeWriter;
/// The parent's end of a child's stdout pipe ([`Popen::stdout`](crate::Popen::stdout)):
/// a plain [`std::io::PipeReader`]; see [`ChildStdin`] for an example.
pub type ChildStdout = PipeReader;
/// The parent's end of a child's stderr pipe ([`Popen::stderr`](crate::Popen::stderr)):
/// a plain [`std::io::PipeReader`].
///
/// ```
/// # brood::init();
/// use std::io::Read;
/// let mut p = brood::Command::new("sh")
///     .args(["-c", "echo warning >&2"])
///     .stderr(brood::Stdio::piped())
///     .spawn()?;
/// let mut text = String::new();
/// p.stderr.take().unwrap().read_to_string(&mut text).unwrap();
/// assert_eq!(text, "warning\n");
/// p.wait()?;
/// # Ok::<(), brood::Error>(())
/// ```
pub type ChildStderr = PipeReader;

/// What one of a child's standard streams is connected to (`subprocess.PIPE`,
/// `DEVNULL`, `None`, or a file).
///
/// ```
/// # brood::init();
/// use brood::{Command, Stdio};
/// use std::io::Read;
///
/// let mut child = Command::new("echo").arg("piped").stdout(Stdio::piped()).spawn()?;
/// let mut text = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
/// assert_eq!(text, "piped\n");
/// child.wait()?;
/// # Ok::<(), brood::Error>(())
/// ```
///
/// A clone is the same connection: [`Stdio::piped`] still makes a new pipe
/// at each start, and a descriptor is shared by the clones (closed with the
/// last of them).
#[derive(Debug, Clone)]
pub struct Stdio(pub(crate) Kind);

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Inherit,
    Null,
    Piped,
    /// Shared by the clones of a `Command`; each start installs it.
    Fd(Arc<OwnedFd>),
    /// stderr only: a copy of whatever stdout is.
    MergeIntoStdout,
}

impl Stdio {
    /// A new pipe; the parent's end appears in [`Popen`](crate::Popen)'s
    /// `stdin`/`stdout`/`stderr` (`subprocess.PIPE`).
    ///
    /// ```
    /// # brood::init();
    /// let mut child = brood::Command::new("cat").stdin(brood::Stdio::piped()).spawn()?;
    /// assert!(child.stdin.is_some());
    /// child.stdin = None; // closing stdin ends `cat`
    /// assert!(child.wait()?.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn piped() -> Stdio {
        Stdio(Kind::Piped)
    }

    /// `/dev/null` (`subprocess.DEVNULL`).
    ///
    /// ```
    /// # brood::init();
    /// let out = brood::Command::new("echo").arg("lost").stdout(brood::Stdio::null()).run()?;
    /// assert!(out.stdout.is_empty());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn null() -> Stdio {
        Stdio(Kind::Null)
    }

    /// The parent's own stream (the default for [`Command::spawn`](crate::Command::spawn)).
    ///
    /// ```
    /// # brood::init();
    /// let status = brood::Command::new("true").stdout(brood::Stdio::inherit()).spawn()?.wait()?;
    /// assert!(status.success());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn inherit() -> Stdio {
        Stdio(Kind::Inherit)
    }

    /// For stderr only: the same descriptor as the child's stdout (`2>&1`,
    /// Python's `stderr=subprocess.STDOUT`). With a piped stdout both streams
    /// share one pipe, so what the child writes keeps its order; the merged text
    /// arrives in [`Popen::stdout`](crate::Popen::stdout) (and in
    /// [`Output::stdout`](crate::Output::stdout), with stderr empty).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Stdio};
    /// let out = Command::new("sh")
    ///     .args(["-c", "echo out; echo err >&2; echo out again"])
    ///     .stderr(Stdio::merge_into_stdout())
    ///     .output()?;
    /// assert_eq!(out.stdout, b"out\nerr\nout again\n");
    /// assert!(out.stderr.is_empty());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn merge_into_stdout() -> Stdio {
        Stdio(Kind::MergeIntoStdout)
    }
}

/// Connects the stream to this file. The `Command` keeps the descriptor open (so
/// that it can spawn again) until it is dropped.
impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio(Kind::Fd(Arc::new(file.into())))
    }
}

/// Connects the stream to this descriptor, kept open by the `Command`.
impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(Kind::Fd(Arc::new(fd)))
    }
}

/// Connects the stream to a pipe's read end (for example another child's stdout).
impl From<PipeReader> for Stdio {
    fn from(pipe: PipeReader) -> Stdio {
        Stdio(Kind::Fd(Arc::new(pipe.into())))
    }
}

/// Connects the stream to a pipe's write end.
impl From<PipeWriter> for Stdio {
    fn from(pipe: PipeWriter) -> Stdio {
        Stdio(Kind::Fd(Arc::new(pipe.into())))
    }
}

/// The descriptors of one spawn: what the child installs on 0, 1, 2 and what the
/// parent keeps. Dropping it closes the child's ends in the parent.
#[derive(Default)]
pub(crate) struct Wiring {
    /// The fd to dup2 onto 0, 1, 2 in the child (-1: inherit).
    pub(crate) sources: [RawFd; 3],
    /// Descriptors opened for this spawn only (child ends of pipes, /dev/null,
    /// copies moved above 2): closed in the parent once the child has exec'd.
    owned: Vec<OwnedFd>,
    pub(crate) stdin: Option<ChildStdin>,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

impl Wiring {
    /// Opens what `streams` (stdin, stdout, stderr) ask for. Every source fd the
    /// child will `dup2` is made ≥ 3 here, so that in the child no `dup2` onto
    /// 0–2 can overwrite another stream's source.
    pub(crate) fn new(streams: [&Kind; 3]) -> std::io::Result<Wiring> {
        let mut w = Wiring {
            sources: [-1; 3],
            ..Wiring::default()
        };
        let mut null: Option<RawFd> = None;
        for (i, kind) in streams.into_iter().enumerate() {
            let fd = match kind {
                Kind::Inherit => continue,
                // dup2(1, 2) after stdout is in place (only stderr gets here:
                // spawn refuses it for the others).
                Kind::MergeIntoStdout => 1,
                Kind::Fd(fd) => above_stdio(fd.as_fd(), &mut w.owned)?,
                Kind::Null => match null {
                    Some(fd) => fd,
                    None => {
                        let file = std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open("/dev/null")?;
                        let fd = above_stdio(file.as_fd(), &mut w.owned)?;
                        w.owned.push(file.into());
                        null = Some(fd);
                        fd
                    }
                },
                Kind::Piped => {
                    let (reader, writer) = std::io::pipe()?;
                    // The parent's end: a `Process` forked while it is open
                    // must not keep it (see `sys::fork::child_end`).
                    let ours = if i == 0 {
                        writer.as_fd()
                    } else {
                        reader.as_fd()
                    };
                    crate::sys::fork::child_end(ours);
                    let child_end: OwnedFd = if i == 0 {
                        w.stdin = Some(writer);
                        reader.into()
                    } else {
                        if i == 1 {
                            w.stdout = Some(reader);
                        } else {
                            w.stderr = Some(reader);
                        }
                        writer.into()
                    };
                    let fd = above_stdio(child_end.as_fd(), &mut w.owned)?;
                    w.owned.push(child_end);
                    fd
                }
            };
            w.sources[i] = fd;
        }
        Ok(w)
    }
}

/// `fd` itself if it is ≥ 3, else a close-on-exec copy ≥ 3 (kept in `owned`).
/// Low descriptors appear when the parent runs with 0, 1 or 2 closed.
fn above_stdio(fd: BorrowedFd<'_>, owned: &mut Vec<OwnedFd>) -> std::io::Result<RawFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd.as_raw_fd());
    }
    let copy = crate::sys::pipe::dup_high(fd)?;
    let raw = copy.as_raw_fd();
    owned.push(copy);
    Ok(raw)
}
