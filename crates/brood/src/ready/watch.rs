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
    let fail = |why, sign: &Sign| {
        let status = match sign {
            Sign::Notify(n) => n.status.clone(),
            _ => None,
        };
        Err(Failed { why, status })
    };
    loop {
        match seen(child, sign, output) {
            Ok(Some(true)) => return Ok(()),
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
        let event = match sign {
            Sign::Line => Some(output.wake_fd()),
            Sign::Notify(n) => Some(n.fd()),
            Sign::Fd(fd) => fd.as_ref().map(|fd| fd.as_fd()),
            Sign::Tcp(_) | Sign::Unix(_) | Sign::File(_) => None,
        };
        let nap = if event.is_some() {
            left
        } else {
            left.min(Ready::POLL_INTERVAL)
        };
        block(child.pidfd(), event, nap);
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
