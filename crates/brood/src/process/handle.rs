//! [`Handle`]: a started [`Process`](super::Process) — join it for its result,
//! signal it, ask how it ended.

use super::method::StartMethod;
use crate::child::NO_PIDFD_TICK;
use crate::sys;
use crate::wire::frame::{self, Feed, FrameKind, FrameReader};
use crate::wire::{self, PanicReport};
use crate::{Child, Error, ExitStatus, Signal};
use rustix::event::{PollFd, PollFlags};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[cfg(feature = "tokio")]
mod asynchronous;

/// Why [`Handle::join`] has no value to give.
///
/// ```
/// # brood::init();
/// use brood::{JoinError, Process, StartMethod};
/// fn boom(_: ()) -> u8 { panic!("no luck") }
/// let h = Process::new(boom, ()).start_method(StartMethod::Fork).start()?;
/// match h.join() {
///     Err(JoinError::Panicked { message, .. }) => assert_eq!(message, "no luck"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The function panicked in the child; `message` is the panic's.
    #[error("process {pid} panicked{}: {message}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panicked {
        /// The child's pid.
        pid: u32,
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`), when known.
        location: Option<String>,
    },
    /// A signal killed the child before it sent a result.
    #[error("process {pid} was killed by {signal} before it sent a result")]
    Killed {
        /// The child's pid.
        pid: u32,
        /// The signal.
        signal: Signal,
    },
    /// The child exited without sending a result (it called `exit` itself, or
    /// could not start the function).
    #[error("process {pid} {status} without sending a result{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    NoResult {
        /// The child's pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// What the child said went wrong, when it could say.
        reason: Option<String>,
    },
    /// Someone else reaped the child (a foreign `waitpid(-1)`, or `SIGCHLD` set to
    /// `SIG_IGN`) before it sent a result: its status is lost, and brood does
    /// not guess. (A value or a panic that arrived is returned all the same.)
    #[error(
        "process {pid} was reaped by someone else (a foreign waitpid(-1), or SIGCHLD set to SIG_IGN): its status is lost"
    )]
    ReapedElsewhere {
        /// The child's pid.
        pid: u32,
    },
    /// The fork server that was the child's parent died, so the child's status
    /// is lost. The next `start()` starts a new server.
    #[error("the fork server died, so the status of process {pid} is lost")]
    ServerDied {
        /// The child's pid.
        pid: u32,
    },
    /// `join_timeout` ran out; the child is left running and can be joined again.
    #[error("process {pid} did not finish within {timeout:?} (it is still running)")]
    Timeout {
        /// The child's pid.
        pid: u32,
        /// The time waited.
        timeout: Duration,
    },
    /// The result arrived but could not be decoded.
    #[error("the result of process {pid} could not be decoded: {reason}")]
    Decode {
        /// The child's pid.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// Reading the result or waiting for the child failed.
    #[error("joining process {pid}: {source}")]
    Io {
        /// The child's pid.
        pid: u32,
        /// The cause.
        #[source]
        source: Error,
    },
    /// The result was already taken by an earlier `join`.
    #[error("process {pid} was already joined")]
    AlreadyJoined {
        /// The child's pid.
        pid: u32,
    },
}

/// The result channel's state, behind the handle's lock.
struct Reading {
    fd: Option<OwnedFd>,
    reader: FrameReader,
    frame: Option<(FrameKind, Vec<u8>)>,
    error: Option<String>,
    taken: bool,
}

/// How long [`Handle::exitcode`] and [`Handle::poll`] wait, at most, for the
/// fork server's report of a child that has ended.
const SETTLE: Duration = Duration::from_millis(20);

/// A started process: Python's `Process` object after `start()`, plus a typed
/// result.
///
/// Every method takes `&self`, so one thread may `join` while another calls
/// `terminate`. Dropping the handle does not stop the child: its
/// [`OnExit`](crate::OnExit) still applies when this process exits.
///
/// ```
/// # brood::init();
/// use brood::Process;
/// fn square(x: u64) -> u64 { x * x }
/// let h = Process::new(square, 12).start()?;
/// assert_eq!(h.join().unwrap(), 144);
/// assert_eq!(h.exitcode(), Some(0));
/// # Ok::<(), brood::Error>(())
/// ```
pub struct Handle<R> {
    child: Child,
    name: String,
    method: StartMethod,
    reading: Mutex<Reading>,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("child", &self.child)
            .finish()
    }
}

impl<R: DeserializeOwned + 'static> Handle<R> {
    pub(crate) fn new(
        child: Child,
        name: String,
        method: StartMethod,
        result: OwnedFd,
    ) -> Handle<R> {
        Handle {
            child,
            name,
            method,
            reading: Mutex::new(Reading {
                fd: Some(result),
                reader: FrameReader::default(),
                frame: None,
                error: None,
                taken: false,
            }),
            _r: PhantomData,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The name given with [`Process::name`](super::Process::name) (Python's
    /// default `Process-N` otherwise).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the child was started.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// The underlying [`Child`]: policies, pidfd, raw status.
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// Waits until the child ends and returns the function's result.
    ///
    /// Returns the value even if the child was killed after sending it, or its
    /// status is lost (reaped elsewhere: `SIGCHLD` ignored, say). Errors tell
    /// apart a panic (with its message), a child killed or exiting before it
    /// sent a result, a child reaped by someone else before it sent one, and
    /// decoding failures;
    /// see [`JoinError`]. The value can be taken once; a later `join` answers
    /// [`JoinError::AlreadyJoined`].
    pub fn join(&self) -> Result<R, JoinError> {
        self.join_until(None)
    }

    /// Like [`Handle::join`], waiting at most `timeout`. On
    /// [`JoinError::Timeout`] the child is left running and the handle can be
    /// joined again.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{JoinError, Process};
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// let h = Process::new(nap, 10_000).start()?;
    /// assert!(matches!(h.join_timeout(Duration::from_millis(20)), Err(JoinError::Timeout { .. })));
    /// assert!(h.is_alive());
    /// h.kill()?;
    /// assert!(matches!(h.join(), Err(JoinError::Killed { .. })));
    /// assert_eq!(h.exitcode(), Some(-9));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<R, JoinError> {
        self.join_until(Some(Instant::now() + timeout))
            .map_err(|e| match e {
                JoinError::Timeout { pid, .. } => JoinError::Timeout { pid, timeout },
                e => e,
            })
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<R, JoinError> {
        let pid = self.pid();
        let mut rd = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        if rd.taken {
            return Err(JoinError::AlreadyJoined { pid });
        }
        self.read_result(&mut rd, deadline)?;
        match self.child.wait_until(deadline) {
            Ok(Some(status)) => self.conclude(&mut rd, Ok(status)),
            Ok(None) => Err(JoinError::Timeout {
                pid,
                timeout: Duration::ZERO,
            }),
            Err(e) => self.conclude(&mut rd, Err(e)),
        }
    }

    /// The outcome, once the result channel was read and the child ended (or
    /// its status could not be had). A value or a panic that reached us is
    /// returned although the status is lost — the fork server died, or the
    /// child was reaped elsewhere (with `SIGCHLD` ignored the kernel reaps
    /// every child at once): a result that arrived is never thrown away.
    fn conclude(
        &self,
        rd: &mut Reading,
        waited: crate::Result<ExitStatus>,
    ) -> Result<R, JoinError> {
        let pid = self.pid();
        let status = match waited {
            Ok(status) => status,
            // The server died, or someone else reaped the child, after it
            // sent its value or panic: the outcome reached us, only the
            // status is lost (`exitcode`, `poll` and `wait` say so).
            Err(e @ (Error::ServerDied { .. } | Error::ReapedElsewhere { .. })) => {
                let delivered = rd.error.is_none()
                    && matches!(rd.frame, Some((FrameKind::Value | FrameKind::Panic, _)));
                if !delivered {
                    return Err(self.wait_error(e));
                }
                // Not consulted for a value or a panic.
                ExitStatus::Exited(0)
            }
            Err(e) => return Err(self.wait_error(e)),
        };
        if let Some(reason) = rd.error.take() {
            return Err(JoinError::Decode { pid, reason });
        }
        match rd.frame.take() {
            Some((FrameKind::Value, payload)) => {
                rd.taken = true;
                frame::decode::<R>(payload).map_err(|e| JoinError::Decode {
                    pid,
                    reason: e.to_string(),
                })
            }
            Some((FrameKind::Panic, payload)) => {
                let PanicReport { message, location } = PanicReport::decode(&payload);
                Err(JoinError::Panicked {
                    pid,
                    message,
                    location,
                })
            }
            Some((FrameKind::Failed, payload)) => Err(JoinError::NoResult {
                pid,
                status,
                reason: Some(wire::decode_reason(&payload)),
            }),
            Some((
                kind @ (FrameKind::Task
                | FrameKind::Quit
                | FrameKind::Share
                | FrameKind::Values
                | FrameKind::Mapped),
                _,
            )) => Err(JoinError::Decode {
                pid,
                reason: format!("the child sent a {kind:?} frame instead of its result"),
            }),
            None => match status.signal() {
                Some(signal) => Err(JoinError::Killed { pid, signal }),
                None => Err(JoinError::NoResult {
                    pid,
                    status,
                    reason: None,
                }),
            },
        }
    }

    fn wait_error(&self, e: Error) -> JoinError {
        let pid = self.pid();
        match e {
            Error::ServerDied { .. } => JoinError::ServerDied { pid },
            Error::ReapedElsewhere { .. } => JoinError::ReapedElsewhere { pid },
            e => JoinError::Io { pid, source: e },
        }
    }

    /// Reads the result frame until it is whole, the pipe ends, or the child
    /// has exited and the pipe is drained. A grandchild that inherited the write
    /// end cannot make this hang: the child's exit ends the wait.
    fn read_result(&self, rd: &mut Reading, deadline: Option<Instant>) -> Result<(), JoinError> {
        let pid = self.pid();
        let io = |what: &str, e: std::io::Error| JoinError::Io {
            pid,
            source: Error::io(format!("{what} (process {pid})"), e),
        };
        let Some(fd) = rd.fd.take() else {
            return Ok(());
        };
        // A child reaped elsewhere before brood could open its pidfd has ended:
        // what it sent is in the pipe. A fork-server child whose pidfd the
        // server kept is watched through the server's report instead (checked
        // every `NO_PIDFD_TICK`).
        let pidfd = self.child.pidfd();
        let mut exited = false;
        if pidfd.is_none() && !self.child.is_remote() {
            exited = true;
            sys::pipe::set_nonblocking(fd.as_fd(), true).map_err(|e| io("fcntl", e))?;
        }
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let (readable, now_exited) = if exited {
                (true, true)
            } else {
                let mut fds = Vec::with_capacity(2);
                fds.push(PollFd::new(&fd, PollFlags::IN));
                let mut wait = left;
                match pidfd {
                    Some(p) => fds.push(PollFd::from_borrowed_fd(p, PollFlags::IN)),
                    None => wait = Some(wait.map_or(NO_PIDFD_TICK, |l| l.min(NO_PIDFD_TICK))),
                }
                let ts = wait.map(|l| rustix::event::Timespec {
                    tv_sec: l.as_secs() as i64,
                    tv_nsec: l.subsec_nanos() as i64,
                });
                match rustix::event::poll(&mut fds, ts.as_ref()) {
                    Ok(0) if pidfd.is_none() && left != Some(Duration::ZERO) => {
                        (false, !self.child.is_alive())
                    }
                    Ok(0) => {
                        drop(fds);
                        rd.fd = Some(fd);
                        return Err(JoinError::Timeout {
                            pid,
                            timeout: Duration::ZERO,
                        });
                    }
                    Ok(_) => (
                        !fds[0].revents().is_empty(),
                        fds.get(1).is_some_and(|p| !p.revents().is_empty()),
                    ),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(io("poll", e.into())),
                }
            };
            if now_exited && !exited {
                // Drain without blocking: what the child wrote is in the pipe.
                exited = true;
                sys::pipe::set_nonblocking(fd.as_fd(), true).map_err(|e| io("fcntl", e))?;
            }
            if readable {
                match rd.reader.feed(fd.as_fd()) {
                    Ok(Feed::Done) => {
                        rd.frame = rd.reader.take();
                        return Ok(());
                    }
                    Ok(Feed::Eof) => {
                        self.cut_short(rd);
                        return Ok(());
                    }
                    Ok(Feed::Pending) if exited => {
                        self.cut_short(rd);
                        return Ok(());
                    }
                    Ok(Feed::Pending) => {}
                    Err(e) => {
                        rd.error = Some(e.to_string());
                        return Ok(());
                    }
                }
            }
        }
    }

    fn cut_short(&self, rd: &mut Reading) {
        if !rd.reader.is_empty() {
            rd.error = Some("the result was cut short (the child died while sending it)".into());
        }
    }

    /// True until the child has ended (Python's `is_alive()`). A child reaped by
    /// someone else is not alive. Answers at once: for a fork-server child,
    /// from its pidfd, without waiting for the server's report.
    pub fn is_alive(&self) -> bool {
        if self.child.is_remote() && self.pidfd_says_exited() {
            return false;
        }
        self.child.is_alive()
    }

    fn pidfd_says_exited(&self) -> bool {
        match self.child.pidfd() {
            Some(fd) => sys::pidfd::has_exited(fd).unwrap_or(false),
            // Reaped elsewhere, or a fork-server child whose server kept the
            // pidfd: the recorded state tells.
            None => !self.child.is_alive(),
        }
    }

    /// A fork-server child's status comes as a message from the server, a
    /// moment (microseconds) after the process ended. Once its pidfd says it
    /// ended, give that message a little time — 20 ms at most, so a query
    /// never stalls behind a busy or stopped server — so that `exitcode` and
    /// `poll` seldom describe a finished child as still unreported.
    fn settle(&self) {
        if self.child.is_remote() && self.pidfd_says_exited() {
            let _ = self.child.wait_timeout(SETTLE);
        }
    }

    /// Python's `exitcode`: `None` while the child runs, its exit code once it
    /// ended, `-N` if signal N killed it. Also `None` when the status is lost
    /// (reaped elsewhere — with `SIGCHLD` set to `SIG_IGN` the kernel reaps
    /// every child, so a Fork or Spawn child's status is always lost then —
    /// or its fork server died), even after [`Handle::join`] returned the
    /// value the child sent; and while the fork server has not reported it
    /// yet. [`Handle::poll`] tells those apart. Never blocks longer than 20 ms.
    pub fn exitcode(&self) -> Option<i32> {
        self.settle();
        self.child.poll().ok().flatten().map(|s| s.exitcode())
    }

    /// The child's status if it ended, without blocking; says
    /// [`JoinError::ReapedElsewhere`] (or `ServerDied`) when the status is lost.
    pub fn poll(&self) -> Result<Option<ExitStatus>, JoinError> {
        self.settle();
        self.child.poll().map_err(|e| self.wait_error(e))
    }

    /// Waits until the child ends and returns its status, leaving the result to
    /// [`join`](Handle::join).
    pub fn wait(&self) -> Result<ExitStatus, JoinError> {
        self.child.wait().map_err(|e| self.wait_error(e))
    }

    /// Like [`Handle::wait`], at most `timeout`; `None` if the child still runs.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>, JoinError> {
        self.child
            .wait_timeout(timeout)
            .map_err(|e| self.wait_error(e))
    }

    /// Sends `sig` to the child alone, through its pidfd.
    pub fn send_signal(&self, sig: crate::Signal) -> crate::Result<()> {
        self.child.send_signal(sig)
    }

    /// SIGTERM to the child (its whole group with [`Tree::Group`](crate::Tree)).
    pub fn terminate(&self) -> crate::Result<()> {
        self.child.terminate()
    }

    /// SIGKILL to the child (its whole group with [`Tree::Group`](crate::Tree)).
    pub fn kill(&self) -> crate::Result<()> {
        self.child.kill()
    }

    /// SIGTERM, then SIGKILL after `grace` if the child is still there; returns
    /// how it ended. Cannot hang on a child that ignores SIGTERM.
    pub fn terminate_timeout(&self, grace: Duration) -> crate::Result<ExitStatus> {
        self.child.terminate_timeout(grace)
    }
}
