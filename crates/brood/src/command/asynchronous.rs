//! The async side of [`Popen`] (feature `tokio`): its pipe ends as tokio's own
//! pipe types, and [`Popen::communicate_async`], which drives the three pipes
//! on the reactor with the same rules as [`Popen::communicate`].

use super::Popen;
use crate::Result;
use crate::sys::reactor::Registered;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::io::unix::AsyncFdReadyGuard;
use tokio::net::unix::pipe;

/// The parent's end of a child's stdin as an `AsyncWrite`:
/// [`tokio::net::unix::pipe::Sender`], from [`Popen::take_stdin_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub type AsyncChildStdin = pipe::Sender;
/// The parent's end of a child's stdout as an `AsyncRead`:
/// [`tokio::net::unix::pipe::Receiver`], from [`Popen::take_stdout_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub type AsyncChildStdout = pipe::Receiver;
/// The parent's end of a child's stderr as an `AsyncRead`, from
/// [`Popen::take_stderr_async`].
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub type AsyncChildStderr = pipe::Receiver;

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl Popen {
    /// Takes the stdin pipe as an async writer (tokio's pipe `Sender`); `None`
    /// if stdin is not piped or was taken. Must be called inside a tokio
    /// runtime (an error otherwise, and the pipe stays). Dropping it closes
    /// the child's stdin.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use brood::{Command, Stdio};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut p = Command::new("tr").args(["a-z", "A-Z"])
    ///     .stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    /// let mut stdin = p.take_stdin_async()?.unwrap();
    /// let mut stdout = p.take_stdout_async()?.unwrap();
    /// stdin.write_all(b"quiet").await.unwrap();
    /// drop(stdin);
    /// let mut text = String::new();
    /// stdout.read_to_string(&mut text).await.unwrap();
    /// assert_eq!(text, "QUIET");
    /// assert!(p.child().wait_async().await?.success());
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn take_stdin_async(&mut self) -> Result<Option<AsyncChildStdin>> {
        self.take_async(|p| &mut p.stdin, "stdin", pipe::Sender::from_owned_fd)
    }

    /// Takes the stdout pipe as an async reader (tokio's pipe `Receiver`);
    /// `None` if stdout is not piped or was taken. Inside a tokio runtime.
    pub fn take_stdout_async(&mut self) -> Result<Option<AsyncChildStdout>> {
        self.take_async(|p| &mut p.stdout, "stdout", pipe::Receiver::from_owned_fd)
    }

    /// Takes the stderr pipe as an async reader; see
    /// [`take_stdout_async`](Popen::take_stdout_async).
    pub fn take_stderr_async(&mut self) -> Result<Option<AsyncChildStderr>> {
        self.take_async(|p| &mut p.stderr, "stderr", pipe::Receiver::from_owned_fd)
    }

    /// Takes one pipe end and registers it with the current runtime; leaves
    /// it in place when there is no runtime.
    fn take_async<E: Into<OwnedFd>, T>(
        &mut self,
        end: fn(&mut Popen) -> &mut Option<E>,
        what: &str,
        register: fn(OwnedFd) -> std::io::Result<T>,
    ) -> Result<Option<T>> {
        if end(self).is_none() {
            return Ok(None);
        }
        self.in_runtime(what)?;
        let Some(fd) = end(self).take() else {
            return Ok(None);
        };
        register(fd.into())
            .map(Some)
            .map_err(|e| self.io_error(&format!("registering {what}"), e))
    }

    fn in_runtime(&self, what: &str) -> Result<()> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Ok(()),
            Err(e) => Err(self.io_error(
                &format!("making {what} async: not inside a tokio runtime"),
                std::io::Error::other(e),
            )),
        }
    }

    /// [`Popen::communicate`] without blocking a thread (feature `tokio`):
    /// writes `input` and closes stdin, reads stdout and stderr until both
    /// end, awaits the child, and returns what it wrote to each.
    ///
    /// The same guarantees: it never deadlocks, whatever the sizes (the three
    /// pipes are driven together on the reactor), and when `timeout` passes it
    /// returns [`Error::Timeout`](crate::Error::Timeout) with the output read so far, leaving the
    /// child running; a later call (async or not) continues where it stopped,
    /// and its result holds all output from the start. A timeout needs tokio's
    /// timer (`enable_time`/`enable_all`).
    ///
    /// Dropping the future is like a timeout: the child is not touched, the
    /// output read and the input not yet written are kept for the next call.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use brood::{Command, Error, Stdio, Tree};
    /// use std::time::Duration;
    /// let mut p = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    /// let (out, _) = p.communicate_async(Some(b"ping"), None).await?;
    /// assert_eq!(out, b"ping");
    ///
    /// let mut slow = Command::new("sh").args(["-c", "echo early; sleep 30"])
    ///     .stdout(Stdio::piped()).tree(Tree::Group).spawn()?;
    /// match slow.communicate_async(None, Some(Duration::from_millis(300))).await {
    ///     Err(Error::Timeout { stdout, .. }) => assert_eq!(stdout, b"early\n"),
    ///     other => panic!("{other:?}"),
    /// }
    /// slow.kill()?;
    /// slow.child().wait_async().await?;
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn communicate_async(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let saved = self.begin(input)?;
        let input = self.call_input(&saved, input);
        let mut pumping = Pumping {
            popen: self,
            input,
            done: false,
        };
        let finished = pumping.run(deadline).await?;
        pumping.done = finished;
        drop(pumping);
        if !finished {
            return Err(self.timeout_error(timeout));
        }
        let waited = self.child().wait_async();
        let status = match deadline {
            None => Some(waited.await?),
            Some(d) => tokio::time::timeout_at(d.into(), waited)
                .await
                .ok()
                .transpose()?,
        };
        if status.is_none() {
            return Err(self.timeout_error(timeout));
        }
        Ok(self.take_output())
    }
}

/// One `communicate_async` moving data. Dropped before the pipes are all
/// done (a timeout, an error, a cancelled future), it keeps the unwritten
/// input for the next call and gives the pipes back blocking.
struct Pumping<'p, 'i> {
    popen: &'p mut Popen,
    input: &'i [u8],
    done: bool,
}

impl Drop for Pumping<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            self.popen.suspend(self.input);
        }
    }
}

enum Woke<'w> {
    Pipe(usize, AsyncFdReadyGuard<'w, OwnedFd>),
    Deadline,
}

impl Pumping<'_, '_> {
    /// Moves data until every pipe is closed (true) or `deadline` passes
    /// (false).
    async fn run(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let p = &mut *self.popen;
        p.set_pipes_nonblocking()?;
        // Each pipe watched through its own copy of the descriptor, so that
        // the Popen keeps its ends whatever happens to this future.
        let mut watched: [Option<Registered>; 3] = [None, None, None];
        for (i, fd) in p.pipe_fds().into_iter().enumerate() {
            if let Some(fd) = fd {
                let interest = if i == 0 {
                    Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let reg = fd
                    .try_clone_to_owned()
                    .and_then(|copy| Registered::new(copy, interest))
                    .map_err(|e| p.io_error("registering a pipe", e))?;
                watched[i] = Some(reg);
            }
        }
        let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
        loop {
            let open = p.pipe_fds().map(|fd| fd.is_some());
            for (w, open) in watched.iter_mut().zip(open) {
                if !open {
                    *w = None;
                }
            }
            if watched.iter().all(Option::is_none) {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            let w = &watched;
            let woke = std::future::poll_fn(|cx| {
                for (i, reg) in w.iter().enumerate() {
                    let Some(reg) = reg else { continue };
                    let ready = if i == 0 {
                        reg.get().poll_write_ready(cx)
                    } else {
                        reg.get().poll_read_ready(cx)
                    };
                    match ready {
                        Poll::Ready(Ok(guard)) => return Poll::Ready(Ok(Woke::Pipe(i, guard))),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                if let Some(s) = sleep.as_mut()
                    && s.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Ok(Woke::Deadline));
                }
                Poll::Pending
            })
            .await
            .map_err(|e| p.io_error("waiting for the pipes", e))?;
            match woke {
                Woke::Deadline => return Ok(false),
                Woke::Pipe(i, mut guard) => {
                    let moved = if i == 0 {
                        p.feed(&mut self.input)?
                    } else {
                        p.drain(i)?
                    };
                    if !moved {
                        guard.clear_ready();
                    }
                }
            }
        }
    }
}
