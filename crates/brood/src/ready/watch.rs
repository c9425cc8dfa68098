//! The wait for a sign of readiness: the sign itself, the child's end, the
//! deadline, whichever comes first — in one `poll` on the child's pidfd and
//! the sign's descriptor (or a short sleep between two looks at a sign that
//! has none: a port, a socket, a file).

use super::Ready;
use super::notify::{NotifySocket, Said};
use super::output::Output;
use crate::child::Child;
use crate::error::{Error, NotReady, Result};
use crate::sys::pipe;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// What carries the sign while brood waits.
pub(crate) enum Sign {
    /// A line of output: the relays say when.
    Line,
    Tcp(u16),
    Unix(std::path::PathBuf),
    File(std::path::PathBuf),
    Notify(NotifySocket),
    /// s6's pipe, read end; `None` once the child closed it.
    Fd(Option<OwnedFd>),
}

/// Why the wait ended without the sign, with the last `STATUS=`.
pub(crate) struct Failed {
    pub(crate) why: NotReady,
    pub(crate) status: Option<String>,
}

/// Waits until `sign` shows, the child ends or `timeout` passes.
pub(crate) fn wait(
    child: &Child,
    sign: &mut Sign,
    output: &Output,
    timeout: Duration,
) -> Result<(), Failed> {
    let deadline = Instant::now() + timeout;
    loop {
        let nap = match look(child, sign, output, deadline, timeout) {
            Look::Done(done) => return done,
            Look::Again(nap) => nap,
        };
        block(child.pidfd(), event_fd(sign, output), nap);
    }
}

/// What one look found.
enum Look {
    /// The wait is over.
    Done(Result<(), Failed>),
    /// Nothing yet: wait at most this long for an event before looking again.
    Again(Duration),
}

/// One look at the sign, the child and the deadline.
fn look(
    child: &Child,
    sign: &mut Sign,
    output: &Output,
    deadline: Instant,
    timeout: Duration,
) -> Look {
    let fail = |why, sign: &Sign| {
        let status = match sign {
            Sign::Notify(n) => n.status.clone(),
            _ => None,
        };
        Look::Done(Err(Failed { why, status }))
    };
    match seen(child, sign, output) {
        Ok(Some(true)) => return Look::Done(Ok(())),
        Ok(Some(false)) => return fail(NotReady::Stopping, sign),
        Ok(None) => {}
        Err(_) => {}
    }
    match child.poll() {
        Ok(Some(status)) => return fail(NotReady::Exited(status), sign),
        Ok(None) => {}
        // Reaped elsewhere, or an OS failure: it cannot be waited for.
        Err(_) => return fail(NotReady::Timeout(timeout), sign),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return fail(NotReady::Timeout(timeout), sign);
    }
    Look::Again(if event_fd(sign, output).is_some() {
        left
    } else {
        left.min(Ready::POLL_INTERVAL)
    })
}

/// The descriptor that turns readable when the sign may have shown, if the
/// sign has one.
fn event_fd<'a>(sign: &'a Sign, output: &'a Output) -> Option<BorrowedFd<'a>> {
    match sign {
        Sign::Line => Some(output.wake_fd()),
        Sign::Notify(n) => Some(n.fd()),
        Sign::Fd(fd) => fd.as_ref().map(|fd| fd.as_fd()),
        Sign::Tcp(_) | Sign::Unix(_) | Sign::File(_) => None,
    }
}

/// [`wait`] on tokio's reactor (feature `tokio`): the child's end through
/// [`Child::wait_async`], the sign's descriptor (a copy) registered with the
/// runtime, the naps as tokio sleeps. A port, a socket or a file is looked
/// at as the blocking wait does (a loopback connect answers at once).
#[cfg(feature = "tokio")]
pub(crate) async fn wait_async(
    child: &Child,
    sign: &mut Sign,
    output: &Output,
    timeout: Duration,
) -> Result<(), Failed> {
    use crate::sys::reactor::Registered;
    use std::task::Poll;
    let deadline = Instant::now() + timeout;
    let mut event = event_fd(sign, output)
        .and_then(|fd| pipe::dup_high(fd).ok())
        .and_then(|copy| Registered::new(copy, tokio::io::Interest::READABLE).ok());
    let mut ended = Some(Box::pin(child.wait_async()));
    loop {
        let nap = match look(child, sign, output, deadline, timeout) {
            Look::Done(done) => return done,
            Look::Again(nap) => nap,
        };
        if event_fd(sign, output).is_none() {
            // s6's pipe closed without a newline: only the end or the
            // deadline can decide now.
            event = None;
        }
        let mut nap = Box::pin(tokio::time::sleep(nap));
        let mut lost_event = false;
        std::future::poll_fn(|cx| {
            if let Some(ev) = &event
                && let Poll::Ready(ready) = ev.get().poll_read_ready(cx)
            {
                match ready {
                    Ok(mut guard) => guard.clear_ready(),
                    // The reactor is going: naps alone from now on.
                    Err(_) => lost_event = true,
                }
                return Poll::Ready(());
            }
            if let Some(end) = &mut ended
                && end.as_mut().poll(cx).is_ready()
            {
                ended = None;
                return Poll::Ready(());
            }
            nap.as_mut().poll(cx)
        })
        .await;
        if lost_event {
            event = None;
        }
    }
}

/// `Some(true)` once the sign showed, `Some(false)` if the child said it
/// is stopping, `None` if nothing yet.
fn seen(child: &Child, sign: &mut Sign, output: &Output) -> std::io::Result<Option<bool>> {
    Ok(match sign {
        Sign::Line => output.matched().then_some(true),
        Sign::Tcp(port) => {
            let at = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
            TcpStream::connect_timeout(&at, Ready::POLL_INTERVAL)
                .is_ok()
                .then_some(true)
        }
        Sign::Unix(path) => UnixStream::connect(path).is_ok().then_some(true),
        Sign::File(path) => path.exists().then_some(true),
        Sign::Notify(n) => match n.read(child.pid(), child.policy().tree)? {
            Said::Ready => Some(true),
            Said::Stopping => Some(false),
            Said::Nothing => None,
        },
        Sign::Fd(slot) => {
            let Some(fd) = slot else { return Ok(None) };
            let mut buf = [0u8; 512];
            match pipe::read(fd.as_fd(), &mut buf) {
                // Closed without a newline: never ready by this sign (s6
                // reads it so too); the child's end or the deadline decides.
                Ok(0) => {
                    *slot = None;
                    None
                }
                Ok(n) => buf[..n].contains(&b'\n').then_some(true),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => return Err(e),
            }
        }
    })
}

/// Blocks until the child ends, `event` is readable, or `nap` passed.
fn block(pidfd: Option<BorrowedFd<'_>>, event: Option<BorrowedFd<'_>>, nap: Duration) {
    let mut fds: Vec<libc::pollfd> = [pidfd, event]
        .into_iter()
        .flatten()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = nap.as_millis().clamp(1, i32::MAX as u128) as i32;
    let _ = pipe::poll(&mut fds, ms);
}

/// The error for a child that did not get ready.
pub(crate) fn error(program: String, pid: u32, failed: Failed, tail: String) -> Error {
    Error::NotReady {
        program,
        pid,
        why: failed.why,
        status: failed.status,
        tail,
    }
}
