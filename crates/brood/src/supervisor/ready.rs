//! [`ChildSpec::command_ready`]: a command child that counts as started once
//! it is ready, so the children after it start only then.

use super::ChildSpec;
use crate::command::Command;
#[cfg(doc)]
use crate::process::Process;
use crate::ready::Ready;
use serde::{Serialize, de::DeserializeOwned};
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

    /// A child like [`ChildSpec::process`]'s that is started with
    /// [`Process::start_ready`]: it counts as started once `f` called
    /// [`brood::ready()`](crate::ready), as [`command_ready`](ChildSpec::command_ready)'s
    /// once its sign shows (the same order, restarts and intensity).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{ChildSpec, Strategy, Supervisor};
    /// use std::time::Duration;
    /// fn cache(size: usize) {
    ///     let _table = vec![0u8; size]; // filled before anyone asks
    ///     brood::ready();
    ///     std::thread::sleep(Duration::from_secs(30));
    /// }
    /// let running = Supervisor::new(Strategy::RestForOne)
    ///     .child(ChildSpec::process_ready("cache", cache, 1 << 20, Duration::from_secs(10)))
    ///     .start()?;
    /// assert!(running.pid("cache").is_some());
    /// running.stop()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn process_ready<A, R>(
        id: impl Into<String>,
        f: fn(A) -> R,
        arg: A,
        timeout: Duration,
    ) -> ChildSpec
    where
        A: Serialize + DeserializeOwned + Clone + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        ChildSpec::process_with(id, f, arg, move |p| p.start_ready(timeout))
    }
}
