//! [`Ready`]: the sign that says a started program is ready to serve, and
//! what watches for it while [`Command::spawn_ready`](crate::Command::spawn_ready)
//! waits.
//!
//! - `mod.rs`: [`Ready`], the signs.
//! - `output.rs`: the threads that relay a child's stdout and stderr where
//!   they were going, keep their tail and look for a line.
//! - `notify.rs`: systemd's `NOTIFY_SOCKET`, and who may write to it.
//! - `watch.rs`: the wait itself: the sign, the child's end, the deadline.

pub(crate) mod notify;
pub(crate) mod output;
pub(crate) mod watch;

use std::path::PathBuf;
use std::time::Duration;

/// The sign that a program is ready, for
/// [`Command::spawn_ready`](crate::Command::spawn_ready): one chosen sign, as
/// systemd's `Type=notify`, s6's `notification-fd` or a container health
/// check would use.
///
/// | sign | ready when | seen |
/// | --- | --- | --- |
/// | [`Stdout`](Ready::Stdout), [`Stderr`](Ready::Stderr) | a line of that stream contains the text | when the line ends |
/// | [`Tcp`](Ready::Tcp) | `127.0.0.1:port` accepts a connection | within [`POLL_INTERVAL`](Ready::POLL_INTERVAL) |
/// | [`Unix`](Ready::Unix) | the Unix stream socket at the path accepts | within [`POLL_INTERVAL`](Ready::POLL_INTERVAL) |
/// | [`File`](Ready::File) | the path exists | within [`POLL_INTERVAL`](Ready::POLL_INTERVAL) |
/// | [`Notify`](Ready::Notify) | `READY=1` arrives on `$NOTIFY_SOCKET` (systemd's `sd_notify`) | at once |
/// | [`NotifyFd`](Ready::NotifyFd) | a newline is written on descriptor `n` (s6) | at once |
///
/// ```
/// # brood::init();
/// use brood::{Command, Ready};
/// use std::time::Duration;
///
/// let server = Command::new("sh")
///     .args(["-c", "echo loading; echo listening on 8080; exec sleep 30"])
///     .spawn_ready(Ready::Stdout("listening".into()), Duration::from_secs(10))?;
/// // Here the line has been printed; the program runs on.
/// assert!(server.is_alive());
/// server.kill()?;
/// server.wait()?;
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ready {
    /// A line of the program's stdout contains this text. The stream must be
    /// inherited (the default) or piped.
    Stdout(String),
    /// A line of the program's stderr contains this text. The stream must be
    /// inherited (the default) or piped.
    Stderr(String),
    /// A TCP connection to this port on `127.0.0.1` is accepted (brood
    /// connects and closes at once; the program sees one empty connection).
    Tcp(u16),
    /// A connection to the Unix stream socket at this path is accepted.
    Unix(PathBuf),
    /// This path exists (a pid file, a marker the program writes when ready).
    File(PathBuf),
    /// systemd's protocol: the program gets `NOTIFY_SOCKET`, a datagram
    /// socket in a directory only this user can enter, and is ready when it
    /// sends `READY=1` there (`sd_notify(3)`, `systemd-notify --ready`).
    /// `STATUS=…` is kept for the error if it never gets ready; `STOPPING=1`
    /// before `READY=1` fails the start. Only messages whose sender the kernel
    /// names as the child, a descendant of it or a member of its process
    /// group count: nobody else on the machine can declare it ready. The
    /// socket is closed once the program is ready (later messages go
    /// nowhere, which `sd_notify` ignores).
    Notify,
    /// s6's protocol: descriptor `n` of the program (3 or more) is the write
    /// end of a pipe, and the program is ready when it writes a newline
    /// there. The program is started with a full `fork` (as with
    /// [`Command::pre_exec`](crate::Command::pre_exec)), to place the pipe.
    NotifyFd(i32),
}

impl Ready {
    /// How often a sign that nothing announces (a port, a socket, a file)
    /// is looked for: [`Ready::Tcp`], [`Ready::Unix`] and [`Ready::File`]
    /// are seen at most this long after they appear.
    ///
    /// ```
    /// assert_eq!(brood::Ready::POLL_INTERVAL, std::time::Duration::from_millis(10));
    /// ```
    pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
}
