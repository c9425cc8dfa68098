//! [`Command::spawn_ready`]: start, then wait for the program's sign of
//! readiness; on failure end it and report the tail of its output.

use super::prepare::display_program;
use super::stdio::{Kind as StdioKind, Stdio};
use super::{Command, Popen};
use crate::child::Child;
use crate::error::{Error, Result, SpawnError};
use crate::ready::Ready;
use crate::ready::notify::NotifySocket;
use crate::ready::output::{Output, Sink};
use crate::ready::watch::{self, Sign};
use crate::sys::{notify, pipe};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// How long a failed start waits for the streams of an ended child to close
/// (a descendant outside its tree may hold them) before it reports the tail.
const TAIL_WAIT: Duration = Duration::from_secs(1);

/// What a stream left at its default, or set to inherit or pipe, becomes
/// while brood watches it: `Some(true)` piped, `Some(false)` inherited,
/// `None` not watched (null, a file, merged into stdout).
fn watched(stream: Option<&Stdio>) -> Option<bool> {
    match stream.map_or(&StdioKind::Inherit, |s| &s.0) {
        StdioKind::Inherit => Some(false),
        StdioKind::Piped => Some(true),
        _ => None,
    }
}

impl Command {
    /// Starts the program and returns it once it is ready: once `sign`
    /// ([`Ready`]) appears. If the program ends first, or `timeout` passes,
    /// or it announces `STOPPING=1` first, brood ends it (with
    /// [`Tree::Group`](crate::Tree::Group) or
    /// [`Tree::Cgroup`](crate::Tree::Cgroup), its whole tree), reaps it and
    /// returns [`Error::NotReady`], which carries the end of its output.
    ///
    /// Its stdout and stderr, when inherited (the default) or piped, pass
    /// through a thread of brood's that copies them on to where they were
    /// going (our stream, or the pipe in [`Popen::stdout`] /
    /// [`Popen::stderr`]) and keeps their last 4 KiB: so the program sees a
    /// pipe, not our terminal. Streams sent to `/dev/null` or a file are not
    /// watched.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Error, NotReady, Ready, Stdio};
    /// use std::time::Duration;
    ///
    /// // A service that says it is ready with s6's protocol: a newline on
    /// // descriptor 3.
    /// let service = Command::new("sh")
    ///     .args(["-c", "echo >&3; exec sleep 30"])
    ///     .spawn_ready(Ready::NotifyFd(3), Duration::from_secs(10))?;
    /// service.kill()?;
    /// service.wait()?;
    ///
    /// // One that fails before: the error says how, with its last words.
    /// let err = Command::new("sh")
    ///     .args(["-c", "echo cannot bind port >&2; exit 3"])
    ///     .spawn_ready(Ready::Tcp(1), Duration::from_secs(10))
    ///     .unwrap_err();
    /// let Error::NotReady { why, tail, .. } = err else { panic!("{err}") };
    /// assert_eq!(why.to_string(), "it ended first (exited with 3)");
    /// assert_eq!(tail, "cannot bind port\n");
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn spawn_ready(&mut self, sign: Ready, timeout: Duration) -> Result<Popen> {
        let mut started = self.start_watched(&sign)?;
        let (child, sign, output) = started.parts();
        let waited = watch::wait(child, sign, output, timeout);
        started.finish(waited)
    }

    /// [`spawn_ready`](Command::spawn_ready) without blocking a thread
    /// (feature `tokio`): the wait for the sign runs on tokio's reactor (the
    /// child's pidfd, the sign's descriptor; a port, a socket or a file is
    /// looked at every [`Ready::POLL_INTERVAL`]). Must run inside a tokio
    /// runtime with IO and time enabled. Dropping the future before it is
    /// done ends the child (its tree with a group or cgroup) as a failed
    /// start does: nothing half-started is left running.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use brood::{Command, Ready};
    /// use std::time::Duration;
    /// let server = Command::new("sh")
    ///     .args(["-c", "echo listening; exec sleep 30"])
    ///     .spawn_ready_async(Ready::Stdout("listening".into()), Duration::from_secs(10))
    ///     .await?;
    /// server.kill()?;
    /// server.wait()?;
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn spawn_ready_async(&mut self, sign: Ready, timeout: Duration) -> Result<Popen> {
        let mut started = self.start_watched(&sign)?;
        let (child, sign, output) = started.parts();
        let waited = watch::wait_async(child, sign, output, timeout).await;
        started.finish(waited)
    }

    /// Starts the program with the sign's plumbing (for this start only) and
    /// its watched streams relayed: all that is left is the wait.
    fn start_watched(&mut self, sign: &Ready) -> Result<Started> {
        let program = display_program(&self.program);
        let refuse = |reason: String| Error::Spawn {
            program: program.clone(),
            cause: SpawnError::ReadySign { reason },
        };
        let (out, err) = (watched(self.stdout.as_ref()), watched(self.stderr.as_ref()));
        match sign {
            Ready::Stdout(_) if out.is_none() => {
                return Err(refuse("stdout is neither inherited nor piped".into()));
            }
            Ready::Stderr(_) if err.is_none() => {
                return Err(refuse("stderr is neither inherited nor piped".into()));
            }
            Ready::NotifyFd(n) if *n < 3 => {
                return Err(refuse(format!("descriptor {n} is a standard stream")));
            }
            _ => {}
        }
        let mut s6: Option<(OwnedFd, OwnedFd)> = None;
        let mut watch_sign = match sign {
            Ready::Stdout(_) | Ready::Stderr(_) => Sign::Line,
            Ready::Tcp(port) => Sign::Tcp(*port),
            Ready::Unix(path) => Sign::Unix(path.clone()),
            Ready::File(path) => Sign::File(path.clone()),
            Ready::Notify => Sign::Notify(
                NotifySocket::new().map_err(|e| Error::io("creating NOTIFY_SOCKET", e))?,
            ),
            Ready::NotifyFd(_) => {
                let (read, write) =
                    pipe::pipe().map_err(|e| Error::io("creating the notification pipe", e))?;
                pipe::set_nonblocking(std::os::fd::AsFd::as_fd(&read), true)
                    .map_err(|e| Error::io("creating the notification pipe", e))?;
                s6 = Some((read, write));
                Sign::Fd(None)
            }
        };

        // What the child must be given, only for this start.
        let saved_out = out.map(|_| self.stdout.replace(Stdio::piped()));
        let saved_err = err.map(|_| self.stderr.replace(Stdio::piped()));
        let saved_env = match &watch_sign {
            Sign::Notify(n) => Some(self.env.insert(
                "NOTIFY_SOCKET".into(),
                Some(n.path.clone().into_os_string()),
            )),
            _ => None,
        };
        if let (Some((_, write)), Ready::NotifyFd(n)) = (&s6, sign) {
            self.pre_exec
                .push(std::sync::Arc::new(std::sync::Mutex::new(
                    notify::place_fd(write, *n),
                )));
        }
        let spawned = self.spawn();
        if let Some((read, _write)) = s6 {
            self.pre_exec.pop();
            // Our copy of the write end closes here: only the child's is left.
            watch_sign = Sign::Fd(Some(read));
        }
        if let Some(prev) = saved_out {
            self.stdout = prev;
        }
        if let Some(prev) = saved_err {
            self.stderr = prev;
        }
        match saved_env {
            Some(Some(prev)) => drop(self.env.insert("NOTIFY_SOCKET".into(), prev)),
            Some(None) => drop(self.env.remove(std::ffi::OsStr::new("NOTIFY_SOCKET"))),
            None => {}
        }
        let mut popen = spawned?;

        let output = match relay(&mut popen, out, err, sign) {
            Ok(output) => output,
            Err(e) => {
                let _ = popen.child().terminate_timeout(Duration::ZERO);
                return Err(Error::io("relaying the output of a starting program", e));
            }
        };
        Ok(Started {
            program,
            popen: Some(popen),
            sign: watch_sign,
            output,
        })
    }
}

/// A program started and not yet ready. Dropped before [`Started::finish`]
/// (an async wait given up), it ends the program as a failed start does.
struct Started {
    program: String,
    /// Taken by `finish`.
    popen: Option<Popen>,
    sign: Sign,
    output: Output,
}

impl Started {
    /// What the wait needs.
    fn parts(&mut self) -> (&Child, &mut Sign, &Output) {
        let popen = self.popen.as_ref().expect("taken only by finish");
        (popen.child(), &mut self.sign, &self.output)
    }

    /// The running program once ready; otherwise it is ended and reaped,
    /// and the error carries the tail of its output.
    fn finish(mut self, waited: std::result::Result<(), watch::Failed>) -> Result<Popen> {
        let popen = self.popen.take().expect("finished once");
        match waited {
            Ok(()) => Ok(popen),
            Err(failed) => {
                let pid = popen.pid();
                let _ = popen.child().terminate_timeout(Duration::ZERO);
                let tail = self.output.tail_by(Instant::now() + TAIL_WAIT);
                Err(watch::error(
                    std::mem::take(&mut self.program),
                    pid,
                    failed,
                    tail,
                ))
            }
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(popen) = self.popen.take() {
            let _ = popen.child().terminate_timeout(Duration::ZERO);
        }
    }
}

/// Starts the relays of the watched streams (`Some(piped)` each).
fn relay(
    popen: &mut Popen,
    out: Option<bool>,
    err: Option<bool>,
    sign: &Ready,
) -> std::io::Result<Output> {
    let output = Output::new()?;
    if let (Some(piped), Some(source)) = (out, popen.stdout.take()) {
        let pattern = match sign {
            Ready::Stdout(p) => Some(p.clone()),
            _ => None,
        };
        let sink = sink(piped, 1, &mut popen.stdout)?;
        output.relay(source.into(), sink, pattern)?;
    }
    if let (Some(piped), Some(source)) = (err, popen.stderr.take()) {
        let pattern = match sign {
            Ready::Stderr(p) => Some(p.clone()),
            _ => None,
        };
        let sink = sink(piped, 2, &mut popen.stderr)?;
        output.relay(source.into(), sink, pattern)?;
    }
    Ok(output)
}

/// Where a relayed stream goes: a new pipe whose read end takes the place of
/// the child's in `slot`, or our own stream `ours`.
fn sink<R: From<OwnedFd>>(piped: bool, ours: i32, slot: &mut Option<R>) -> std::io::Result<Sink> {
    if !piped {
        return Ok(Sink::Ours(ours));
    }
    let (read, write) = pipe::pipe()?;
    *slot = Some(R::from(read));
    Ok(Sink::Pipe(write))
}
