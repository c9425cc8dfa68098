//! [`ChildSpec::command_ready`]: a command child that counts as started once
//! it is ready, so the children after it start only then.

use super::ChildSpec;
use crate::command::Command;
use crate::ready::Ready;
use std::time::Duration;

impl ChildSpec {
    /// A child like [`ChildSpec::command`]'s that is started with
    /// [`Command::spawn_ready`]: its start returns once `sign` shows (or
    /// fails if it ends first or `timeout` passes, leaving nothing running).
    /// Children start in order, so each child after it starts only once it
    /// is ready: OTP's start order with systemd's meaning of "started". A
    /// restart waits for readiness too (on the supervisor's thread), and
    /// counts against the intensity whether or not it gets ready. Its run
    /// counts from readiness: the [`Backoff`](crate::Backoff) resets only
    /// after it ran `reset_after` from the moment it was ready. A restart
    /// that ends (or times out) before it is ready is a failed start: its
    /// back-off grows, it counts again against the intensity, and a
    /// supervisor that gives up over it says so in
    /// [`Error::RestartIntensity`](crate::Error::RestartIntensity)'s `last`.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{ChildSpec, Command, Ready, Strategy, Supervisor};
    /// use std::time::Duration;
    ///
    /// let running = Supervisor::new(Strategy::RestForOne)
    ///     .child(ChildSpec::command_ready("db", Ready::Stdout("accepting".into()), Duration::from_secs(10), || {
    ///         let mut c = Command::new("sh");
    ///         c.args(["-c", "echo accepting connections; exec sleep 30"]);
    ///         c
    ///     }))
    ///     // Started only once "db" printed its line.
    ///     .child(ChildSpec::command("web", || { let mut c = Command::new("sleep"); c.arg("30"); c }))
    ///     .start()?;
    /// assert!(running.pid("web").is_some());
    /// running.stop()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn command_ready(
        id: impl Into<String>,
        sign: Ready,
        timeout: Duration,
        make: impl Fn() -> Command + Send + 'static,
    ) -> ChildSpec {
        ChildSpec::command_with(id, make, move |cmd| cmd.spawn_ready(sign.clone(), timeout))
    }
}
