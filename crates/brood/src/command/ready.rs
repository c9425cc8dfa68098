//! [`Command::spawn_ready`]: start, then wait for the program's sign of
//! readiness; on failure end it and report the tail of its output.

use super::prepare::display_program;
use super::stdio::{Kind as StdioKind, Stdio};
use super::{Command, Popen};
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
        let program = display_program(&self.program);
        let refuse = |reason: String| Error::Spawn {
            program: program.clone(),
            cause: SpawnError::ReadySign { reason },
        };
        let (out, err) = (watched(self.stdout.as_ref()), watched(self.stderr.as_ref()));
        match &sign {
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
        let mut watch_sign = match &sign {
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
        if let (Some((_, write)), Ready::NotifyFd(n)) = (&s6, &sign) {
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

        let output = match relay(&mut popen, out, err, &sign) {
            Ok(output) => output,
            Err(e) => {
                let _ = popen.child().terminate_timeout(Duration::ZERO);
                return Err(Error::io("relaying the output of a starting program", e));
            }
        };
        match watch::wait(popen.child(), &mut watch_sign, &output, timeout) {
            Ok(()) => Ok(popen),
            Err(failed) => {
                let pid = popen.pid();
                let _ = popen.child().terminate_timeout(Duration::ZERO);
                let tail = output.tail_by(Instant::now() + TAIL_WAIT);
                Err(watch::error(program, pid, failed, tail))
            }
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
