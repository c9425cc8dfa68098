//! [`Popen::communicate`]: feed stdin and drain stdout and stderr at the same
//! time, with `poll(2)` over non-blocking pipes, so that neither side can block
//! the other however much data flows each way.

use super::Popen;
use crate::sys::{self, pipe::set_nonblocking};
use crate::{Error, Result};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Bytes written to stdin per `write` call (a non-blocking pipe takes what fits).
const WRITE_CHUNK: usize = 1 << 20;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 1 << 16;

/// What `communicate` has done so far, kept across a timeout so that a later call
/// continues where the last one stopped (as Python's does).
#[derive(Default)]
pub(super) struct Progress {
    started: bool,
    /// Input not written yet when a call timed out.
    pending: Vec<u8>,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl Popen {
    /// Python's `Popen.communicate(input, timeout)`: writes `input` to the child's
    /// stdin and closes it, reads stdout and stderr until both end, waits for the
    /// child, and returns what it wrote to each (empty for a stream that is not
    /// [`piped`](crate::Stdio::piped)).
    ///
    /// It never deadlocks, whatever the sizes: the three pipes are driven together
    /// with `poll(2)`. With `timeout`, when it passes the call returns
    /// [`Error::Timeout`] holding the output read so far and leaves the child
    /// running: call `communicate(None, …)` again to continue (the final result
    /// holds all output from the start, as in Python) or end the child.
    ///
    /// Output ends when every writer has closed the pipe: a grandchild that
    /// inherited it keeps it open, and `communicate` waits for it too (as Python's
    /// does). Give such a child [`Tree::Group`](crate::Tree::Group) and a timeout.
    ///
    /// Errors: `input` given when stdin is not piped, or given again after a first
    /// call, is an [`Error::Io`] (`InvalidInput`). A child that closes its stdin
    /// early is not an error: the rest of the input is dropped, as in Python.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Error, Stdio, Tree};
    /// use std::time::Duration;
    ///
    /// let mut p = Command::new("sh")
    ///     .args(["-c", "cat; echo done >&2"])
    ///     .stdin(Stdio::piped())
    ///     .stdout(Stdio::piped())
    ///     .stderr(Stdio::piped())
    ///     .spawn()?;
    /// let (out, err) = p.communicate(Some(b"ping"), Some(Duration::from_secs(10)))?;
    /// assert_eq!((out.as_slice(), err.as_slice()), (&b"ping"[..], &b"done\n"[..]));
    ///
    /// // On timeout the child keeps running, and what it wrote so far is kept.
    /// let mut slow = Command::new("sh")
    ///     .args(["-c", "echo early; sleep 30"])
    ///     .stdout(Stdio::piped())
    ///     .tree(Tree::Group) // so that kill() reaches `sleep` too
    ///     .spawn()?;
    /// match slow.communicate(None, Some(Duration::from_secs(1))) {
    ///     Err(Error::Timeout { stdout, .. }) => assert_eq!(stdout, b"early\n"),
    ///     other => panic!("{other:?}"),
    /// }
    /// assert!(slow.is_alive());
    /// slow.kill()?;
    /// slow.wait()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // This call's input: borrowed from the caller, copied only on a timeout.
        let saved = self.begin(input)?;
        let mut input = self.call_input(&saved, input);

        let pumped = self.pump(&mut input, deadline);
        if !matches!(pumped, Ok(true)) {
            self.suspend(input);
        }
        match pumped {
            Ok(true) => {}
            Ok(false) => return Err(self.timeout_error(timeout)),
            Err(e) => return Err(e),
        }
        if self.child().wait_until(deadline)?.is_none() {
            return Err(self.timeout_error(timeout));
        }
        Ok(self.take_output())
    }

    /// Checks the input of a call and marks communicate as started; the input
    /// an earlier call left unwritten (`None` on the first call, whose input
    /// is the caller's).
    pub(super) fn begin(&mut self, input: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let first = !self.progress.started;
        if input.is_some_and(|i| !i.is_empty()) {
            if !first {
                return Err(invalid(
                    "cannot send more input after communicate has started",
                ));
            }
            if self.stdin.is_none() {
                return Err(invalid(
                    "communicate was given input, but the child's stdin is not piped",
                ));
            }
        }
        self.progress.started = true;
        let saved = std::mem::take(&mut self.progress.pending);
        Ok((!first).then_some(saved))
    }

    /// This call's input: the caller's on the first call, else what an earlier
    /// one left (`saved`, from [`begin`](Popen::begin)); with none, stdin is
    /// closed now.
    pub(super) fn call_input<'a>(
        &mut self,
        saved: &'a Option<Vec<u8>>,
        input: Option<&'a [u8]>,
    ) -> &'a [u8] {
        let input = saved.as_deref().unwrap_or(input.unwrap_or_default());
        if input.is_empty() {
            self.stdin = None;
        }
        input
    }

    /// Keeps the input not written yet for the next call, and gives the pipes
    /// back blocking (after a timeout, an error, or a cancelled async call).
    pub(super) fn suspend(&mut self, input: &[u8]) {
        self.progress.pending = input.to_vec();
        self.set_pipes_blocking();
    }

    /// What was read, once the child has ended.
    pub(super) fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        (
            std::mem::take(&mut self.progress.out),
            std::mem::take(&mut self.progress.err),
        )
    }

    pub(super) fn timeout_error(&self, timeout: Option<Duration>) -> Error {
        Error::Timeout {
            program: self.program().to_string(),
            pid: self.pid(),
            timeout: timeout.unwrap_or_default(),
            stdout: self.progress.out.clone(),
            stderr: self.progress.err.clone(),
        }
    }

    /// Moves data until every pipe is closed (`Ok(true)`) or `deadline` passes
    /// (`Ok(false)`). A pipe is closed (set to `None`) when its job is done.
    fn pump(&mut self, input: &mut &[u8], deadline: Option<Instant>) -> Result<bool> {
        self.set_pipes_nonblocking()?;
        loop {
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
            let mut which: Vec<usize> = Vec::with_capacity(3);
            for (i, fd) in self.pipe_fds().into_iter().enumerate() {
                if let Some(fd) = fd {
                    let events = if i == 0 { libc::POLLOUT } else { libc::POLLIN };
                    fds.push(libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events,
                        revents: 0,
                    });
                    which.push(i);
                }
            }
            if fds.is_empty() {
                return Ok(true);
            }
            let wait_ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(false);
                    }
                    // Round up, so that we do not spin on a sub-millisecond rest.
                    left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
                }
            };
            match sys::pipe::poll(&mut fds, wait_ms) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error("poll", e)),
            }
            for (pfd, &i) in fds.iter().zip(&which) {
                if pfd.revents == 0 {
                    continue;
                }
                match i {
                    0 => {
                        self.feed(input)?;
                    }
                    i => {
                        self.drain(i)?;
                    }
                }
            }
        }
    }

    pub(super) fn set_pipes_nonblocking(&self) -> Result<()> {
        for fd in self.pipe_fds().into_iter().flatten() {
            set_nonblocking(fd, true).map_err(|e| self.io_error("fcntl(O_NONBLOCK)", e))?;
        }
        Ok(())
    }

    /// Writes the next chunk of input; closes stdin when all is written or the
    /// child closed its end (EPIPE — SIGPIPE is ignored in Rust programs).
    /// False when the pipe is full (EAGAIN): wait until it is writable.
    pub(super) fn feed(&mut self, input: &mut &[u8]) -> Result<bool> {
        let Some(stdin) = self.stdin.as_ref() else {
            return Ok(true);
        };
        let chunk = &input[..input.len().min(WRITE_CHUNK)];
        let n = match sys::pipe::write_some(stdin.as_fd(), chunk) {
            Ok(n) => n,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(false),
                    Some(libc::EINTR) => Ok(true),
                    Some(libc::EPIPE) => {
                        self.stdin = None;
                        *input = &[];
                        Ok(true)
                    }
                    _ => Err(self.io_error("write to stdin", e)),
                };
            }
        };
        *input = &input[n..];
        if input.is_empty() {
            self.stdin = None;
        }
        Ok(true)
    }

    /// Reads what is there from stdout (1) or stderr (2); closes it at EOF.
    /// False when there is nothing to read (EAGAIN): wait until it is readable.
    pub(super) fn drain(&mut self, which: usize) -> Result<bool> {
        let (pipe, buf) = if which == 1 {
            (
                self.stdout.as_ref().map(|p| p.as_fd()),
                &mut self.progress.out,
            )
        } else {
            (
                self.stderr.as_ref().map(|p| p.as_fd()),
                &mut self.progress.err,
            )
        };
        let Some(fd) = pipe else { return Ok(true) };
        buf.reserve(READ_CHUNK);
        let n = match sys::pipe::read_into_spare(fd, buf, READ_CHUNK) {
            Ok(n) => n,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(false),
                    Some(libc::EINTR) => Ok(true),
                    _ => Err(self.io_error(
                        if which == 1 {
                            "read stdout"
                        } else {
                            "read stderr"
                        },
                        e,
                    )),
                };
            }
        };
        if n == 0 {
            if which == 1 {
                self.stdout = None;
            } else {
                self.stderr = None;
            }
            return Ok(true);
        }
        Ok(true)
    }

    pub(super) fn pipe_fds(&self) -> [Option<BorrowedFd<'_>>; 3] {
        [
            self.stdin.as_ref().map(|p| p.as_fd()),
            self.stdout.as_ref().map(|p| p.as_fd()),
            self.stderr.as_ref().map(|p| p.as_fd()),
        ]
    }

    /// After a timeout the pipes stay with the caller: give them back blocking.
    fn set_pipes_blocking(&self) {
        for fd in self.pipe_fds().into_iter().flatten() {
            let _ = set_nonblocking(fd, false);
        }
    }

    pub(super) fn io_error(&self, what: &str, e: io::Error) -> Error {
        Error::io(
            format!("{what} of {:?} (pid {})", self.program(), self.pid()),
            e,
        )
    }
}

fn invalid(msg: &str) -> Error {
    Error::io(msg, io::Error::from(io::ErrorKind::InvalidInput))
}
