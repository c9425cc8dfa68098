//! [`Supervisor`]: Erlang/OTP's supervisor for processes — children described
//! by specs, restarted by policy, stopped in order, with a limit on how often.
//!
//! - **Specs** ([`ChildSpec`]): how to start the child (a [`Command`], a
//!   [`Process`] function, a [`Pool`](crate::Pool), or any closure that
//!   returns a [`Child`]), when to
//!   restart it ([`Restart`]) and how to stop it ([`Shutdown`]).
//! - **Strategies** ([`Strategy`]): when a child ends and is to be restarted,
//!   restart it alone, all children, or it and the ones started after it.
//! - **Back-off** ([`Backoff`]): a restart waits, exponentially longer for a
//!   child that keeps failing (100 ms doubling up to 30 s by default,
//!   jittered, back to 100 ms after a run of 10 s), so that a child that
//!   fails at once does not restart hundreds of times a second.
//! - **Intensity**: more than `N` restarts within `D` and the supervisor gives
//!   up: it stops every child (in reverse order) and ends with
//!   [`Error::RestartIntensity`] naming the child that ended last.
//! - **Order**: children start in the order given and stop in reverse order.
//! - **One waiter**: one brood thread waits on every child's pidfd with one
//!   `poll(2)`; there is no thread per child.
//! - **Leaving**: once this process's shutdown has begun ([`crate::exit`], a
//!   signal under [`crate::signals::graceful`]), nothing is restarted; the
//!   children's own [`OnExit`] (set from their [`Shutdown`]) ends them with
//!   the rest of the process's children, so none escapes.
//!
//! A [`Pool`](crate::Pool) may be a child ([`ChildSpec::pool`]): it replaces
//! its own workers, so it is never restarted, only stopped in its turn.
//!
//! ```
//! # brood::init();
//! use brood::{ChildSpec, Command, Restart, Strategy, Supervisor};
//! use std::time::Duration;
//!
//! let running = Supervisor::new(Strategy::OneForOne)
//!     .intensity(5, Duration::from_secs(10))
//!     .child(ChildSpec::command("sleeper", || {
//!         let mut c = Command::new("sleep");
//!         c.arg("30");
//!         c
//!     }))
//!     .child(ChildSpec::command("done", || Command::new("true")).restart(Restart::Transient))
//!     .start()?;
//! let sleeper = running.pid("sleeper").expect("running");
//! // A crash is repaired: the sleeper comes back with a new pid.
//! brood::os::PidFd::open(sleeper)?.send_signal(brood::Signal::KILL)?;
//! while running.pid("sleeper").is_none_or(|p| p == sleeper) {
//!     std::thread::sleep(Duration::from_millis(5));
//! }
//! assert_eq!(running.restarts(), 1);
//! running.stop()?; // the sleeper gets SIGTERM, then SIGKILL after its grace
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backoff;
mod intensity;
mod ready;
mod run;

pub use backoff::Backoff;

use crate::policy::{OnExit, OnParentDeath, Tree};
use crate::{Child, Command, Error, ExitStatus, Process, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which children restart when one ends and is to be restarted (OTP's
/// `one_for_one`, `one_for_all`, `rest_for_one`).
///
/// ```
/// # brood::init();
/// use brood::{ChildSpec, Command, Strategy, Supervisor};
/// let sleep = || { let mut c = Command::new("sleep"); c.arg("30"); c };
/// // The database first; the web server depends on it and restarts with it.
/// let running = Supervisor::new(Strategy::RestForOne)
///     .child(ChildSpec::command("db", sleep))
///     .child(ChildSpec::command("web", sleep))
///     .start()?;
/// assert_eq!(running.children().len(), 2);
/// running.stop()?;
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that ended.
    OneForOne,
    /// Every child: the others are stopped (in reverse order), then all start
    /// again in order. For children that cannot work without each other.
    OneForAll,
    /// The child that ended and every child started after it: those are
    /// stopped (in reverse order), then all of them start again in order.
    /// For children that depend on the ones before them.
    RestForOne,
}

/// When a child that ended is restarted (OTP's restart types).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always (a server that must be there).
    Permanent,
    /// Only if it failed: a non-zero exit code or a signal (a job that may
    /// finish).
    Transient,
    /// Never (a child whose end is its business).
    Temporary,
}

impl Restart {
    /// Whether a child that ended with `status` starts again.
    ///
    /// ```
    /// # brood::init();
    /// use brood::Restart;
    /// let failed = brood::Command::new("false").status()?;
    /// assert!(Restart::Transient.restarts_after(failed));
    /// assert!(!Restart::Temporary.restarts_after(failed));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn restarts_after(self, status: ExitStatus) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => !status.success(),
            Restart::Temporary => false,
        }
    }
}

/// How a child is stopped (by the supervisor, and at this process's exit).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGTERM to its tree, SIGKILL once `grace` has passed.
    Grace(Duration),
    /// SIGKILL to its tree at once.
    Kill,
}

impl Shutdown {
    /// The grace before SIGKILL (zero for [`Shutdown::Kill`]).
    ///
    /// ```
    /// use brood::Shutdown;
    /// use std::time::Duration;
    /// assert_eq!(Shutdown::Kill.grace(), Duration::ZERO);
    /// assert_eq!(Shutdown::Grace(Duration::from_secs(2)).grace(), Duration::from_secs(2));
    /// ```
    pub fn grace(self) -> Duration {
        match self {
            Shutdown::Grace(g) => g,
            Shutdown::Kill => Duration::ZERO,
        }
    }
}

/// Starts a child: called for the first start and for every restart, with
/// the spec's [`Shutdown`] (which the child's own `OnExit` follows).
type Start = Box<dyn FnMut(Shutdown) -> Result<Child> + Send>;

/// One supervised child: its name, how to start it, when to restart it and
/// how to stop it.
pub struct ChildSpec {
    id: String,
    start: Start,
    restart: Restart,
    shutdown: Shutdown,
    /// A pool member: running already, stopped (terminated) with the rest.
    pool: Option<Arc<crate::Pool>>,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish()
    }
}

/// The default [`Shutdown`]: OTP's five seconds for a worker.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The policies of a child made by [`ChildSpec::command`] or
/// [`ChildSpec::process`]: its own process group (its stop reaches its
/// tree), killed if this process dies, ended at this process's exit as its
/// [`Shutdown`] says.
fn supervised(shutdown: Shutdown) -> crate::Policy {
    crate::Policy {
        on_exit: OnExit::Terminate {
            grace: shutdown.grace(),
        },
        on_parent_death: OnParentDeath::Signal(crate::Signal::KILL),
        tree: Tree::Group,
        ..crate::Policy::for_kind(crate::Kind::Process { daemon: true })
    }
}

impl ChildSpec {
    fn with_start(id: impl Into<String>, start: Start) -> ChildSpec {
        ChildSpec {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Grace(DEFAULT_GRACE),
            pool: None,
        }
    }

    /// A [`Pool`](crate::Pool) among the children: it already runs and
    /// replaces its own workers, so it is never restarted; the supervisor
    /// terminates it in its place in the stop order. Its
    /// [`SupervisorHandle::pid`] is `None` (see
    /// [`Pool::worker_pids`](crate::Pool::worker_pids)).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{ChildSpec, Pool, Strategy, Supervisor};
    /// use std::sync::Arc;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Arc::new(Pool::new(2)?);
    /// let running = Supervisor::new(Strategy::OneForOne)
    ///     .child(ChildSpec::pool("workers", Arc::clone(&pool)))
    ///     .start()?;
    /// assert_eq!(pool.map(double, [1, 2]).unwrap(), [Ok(2), Ok(4)]);
    /// running.stop()?; // terminates the pool
    /// assert!(pool.map(double, [1]).is_err());
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn pool(id: impl Into<String>, pool: Arc<crate::Pool>) -> ChildSpec {
        let mut spec = ChildSpec::with_start(id, Box::new(|_| Err(Error::PoolClosed)));
        spec.pool = Some(pool);
        spec
    }

    /// A child started by `start` (any kind: return its [`Child`]).
    /// [`Restart::Permanent`] and a grace of 5 s by default. The closure
    /// chooses the child's policies; for a child that must not outlive this
    /// process, give it [`OnParentDeath::Signal`] and an [`OnExit`] that ends
    /// it (the [`command`](ChildSpec::command) and
    /// [`process`](ChildSpec::process) constructors do).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{ChildSpec, Command};
    /// let spec = ChildSpec::new("echo", || Ok(Command::new("true").spawn()?.into_child()));
    /// assert_eq!(spec.id(), "echo");
    /// ```
    pub fn new(
        id: impl Into<String>,
        mut start: impl FnMut() -> Result<Child> + Send + 'static,
    ) -> ChildSpec {
        ChildSpec::with_start(id, Box::new(move |_| start()))
    }

    /// A child running the command that `make` builds (anew for each start),
    /// in its own process group, killed if this process dies, and ended at
    /// this process's exit as its [`Shutdown`] says. A command built once
    /// is a template: `make` may return a clone of it.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{ChildSpec, Command, Restart};
    /// let spec = ChildSpec::command("worker", || Command::new("true")).restart(Restart::Transient);
    /// assert_eq!(spec.id(), "worker");
    /// let mut server = Command::new("sleep");
    /// server.arg("60").env("PORT", "8080");
    /// let spec = ChildSpec::command("server", move || server.clone());
    /// assert_eq!(spec.id(), "server");
    /// ```
    pub fn command(
        id: impl Into<String>,
        make: impl Fn() -> Command + Send + 'static,
    ) -> ChildSpec {
        ChildSpec::command_with(id, make, |cmd| cmd.spawn())
    }

    /// A command child whose start is `start` (`spawn`, or `spawn_ready`).
    fn command_with(
        id: impl Into<String>,
        make: impl Fn() -> Command + Send + 'static,
        start: impl Fn(&mut Command) -> Result<crate::Popen> + Send + 'static,
    ) -> ChildSpec {
        ChildSpec::with_start(
            id,
            Box::new(move |shutdown| {
                let mut cmd = make();
                cmd.set_policy(supervised(shutdown));
                Ok(start(&mut cmd)?.into_child())
            }),
        )
    }

    /// A child running `f(arg)` as a [`Process`] (a clone of `arg` for each
    /// start), with the policies of [`ChildSpec::command`]. Its result is
    /// not kept: a supervised function is a server, not a computation.
    ///
    /// ```
    /// # brood::init();
    /// use brood::ChildSpec;
    /// fn serve(port: u16) { let _ = port; }
    /// let spec = ChildSpec::process("server", serve, 8080);
    /// assert_eq!(spec.id(), "server");
    /// ```
    pub fn process<A, R>(id: impl Into<String>, f: fn(A) -> R, arg: A) -> ChildSpec
    where
        A: Serialize + DeserializeOwned + Clone + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        ChildSpec::process_with(id, f, arg, Process::start)
    }

    /// A process child whose start is `start` (`start`, or `start_ready`).
    fn process_with<A, R>(
        id: impl Into<String>,
        f: fn(A) -> R,
        arg: A,
        start: impl Fn(&mut Process<A, R>) -> Result<crate::Handle<R>> + Send + 'static,
    ) -> ChildSpec
    where
        A: Serialize + DeserializeOwned + Clone + Send + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let id = id.into();
        let name = id.clone();
        ChildSpec::with_start(
            id,
            Box::new(move |shutdown| {
                let mut p = Process::new(f, arg.clone());
                p.name(&name).set_policy(supervised(shutdown));
                Ok(start(&mut p)?.child().clone())
            }),
        )
    }

    /// When the child restarts ([`Restart::Permanent`] by default).
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// How the child is stopped (a grace of 5 s by default).
    pub fn shutdown(mut self, shutdown: Shutdown) -> ChildSpec {
        self.shutdown = shutdown;
        self
    }

    /// The child's name, as errors and [`SupervisorHandle::pid`] use it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A supervisor, before it starts: its strategy, its restart intensity and
/// its children, in start order.
///
/// ```
/// # brood::init();
/// use brood::{ChildSpec, Command, Error, Strategy, Supervisor};
/// use std::time::Duration;
/// // A child that always fails: after 2 restarts within a minute, it gives up.
/// let e = Supervisor::new(Strategy::OneForOne)
///     .intensity(2, Duration::from_secs(60))
///     .child(ChildSpec::command("broken", || Command::new("false")))
///     .start()?
///     .wait()
///     .unwrap_err();
/// assert!(matches!(e, Error::RestartIntensity { child, .. } if child == "broken"));
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug)]
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: usize,
    within: Duration,
    backoff: Backoff,
    children: Vec<ChildSpec>,
}

impl Supervisor {
    /// A supervisor with `strategy`, no children yet, and the intensity of
    /// Elixir's supervisors: at most 3 restarts within 5 s.
    pub fn new(strategy: Strategy) -> Supervisor {
        Supervisor {
            strategy,
            max_restarts: 3,
            within: Duration::from_secs(5),
            backoff: Backoff::default(),
            children: Vec::new(),
        }
    }

    /// How long a restart waits ([`Backoff::default`]: 100 ms doubling up to
    /// 30 s, jittered, reset after 10 s of running; [`Backoff::NONE`]
    /// restarts at once). Restarts still count against the
    /// [intensity](Supervisor::intensity) when they are decided, so a child
    /// that keeps failing makes the supervisor give up as before, only later.
    /// A stop is not delayed by a waiting restart.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Backoff, ChildSpec, Command, Strategy, Supervisor};
    /// use std::time::Duration;
    /// let running = Supervisor::new(Strategy::OneForOne)
    ///     .backoff(Backoff::new(Duration::from_millis(10), Duration::from_secs(5)))
    ///     .child(ChildSpec::command("sleeper", || { let mut c = Command::new("sleep"); c.arg("30"); c }))
    ///     .start()?;
    /// running.stop()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Supervisor {
        self.backoff = backoff;
        self
    }

    /// At most `max_restarts` restarts within any `within`; one more and the
    /// supervisor stops every child and gives up with
    /// [`Error::RestartIntensity`].
    pub fn intensity(mut self, max_restarts: usize, within: Duration) -> Supervisor {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// Adds a child, started after those added before.
    pub fn child(mut self, spec: ChildSpec) -> Supervisor {
        self.children.push(spec);
        self
    }

    /// Starts the children in order, then supervises them on one brood
    /// thread. If a child cannot start, those started are stopped (in
    /// reverse order) and the error names it ([`Error::ChildStart`]); two
    /// children with one id are refused ([`Error::DuplicateChild`]).
    pub fn start(self) -> Result<SupervisorHandle> {
        for (i, spec) in self.children.iter().enumerate() {
            if self.children[..i].iter().any(|s| s.id == spec.id) {
                return Err(Error::DuplicateChild {
                    child: spec.id.clone(),
                });
            }
        }
        run::start(self)
    }
}

/// What the supervisor thread publishes, for queries that never wait for it.
#[derive(Debug, Default)]
struct Published {
    /// Each child's id and current pid (`None` while it is not running).
    pids: Mutex<Vec<(String, Option<u32>)>>,
    restarts: AtomicU64,
    /// Cleared the moment the supervisor stops supervising (it gave up, or
    /// was stopped), before its children are stopped.
    supervising: AtomicBool,
}

/// A running [`Supervisor`]. Dropping it stops the supervisor as
/// [`SupervisorHandle::stop`] does. Its queries answer at once, from what
/// the supervisor thread last published.
///
/// ```
/// # brood::init();
/// use brood::{ChildSpec, Command, Strategy, Supervisor};
/// let running = Supervisor::new(Strategy::OneForOne)
///     .child(ChildSpec::command("sleeper", || { let mut c = Command::new("sleep"); c.arg("30"); c }))
///     .start()?;
/// let pid = running.pid("sleeper").unwrap();
/// assert!(brood::os::pid_exists(pid));
/// assert!(running.is_running());
/// running.stop()?;
/// assert!(brood::os::procfs::stat(pid).unwrap().is_none(), "stopped and reaped");
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug)]
pub struct SupervisorHandle {
    published: Arc<Published>,
    control: Option<run::Control>,
}

impl SupervisorHandle {
    /// The pid of the child named `id`, if it is running now. Answers at once.
    pub fn pid(&self, id: &str) -> Option<u32> {
        let pids = self
            .published
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        pids.iter().find(|(c, _)| c == id).and_then(|(_, p)| *p)
    }

    /// Every child's id and pid, in start order (`None`: not running now).
    pub fn children(&self) -> Vec<(String, Option<u32>)> {
        self.published
            .pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many restarts the supervisor has made (each child restarted
    /// counts once).
    pub fn restarts(&self) -> u64 {
        self.published.restarts.load(Ordering::Relaxed)
    }

    /// Whether the supervisor is still supervising: false from the moment it
    /// gave up (or this process's shutdown ended it), while it may still be
    /// stopping its children.
    pub fn is_running(&self) -> bool {
        self.published.supervising.load(Ordering::SeqCst)
            && self.control.as_ref().is_some_and(run::Control::is_running)
    }

    /// Stops every child in reverse start order (each as its [`Shutdown`]
    /// says) and ends the supervisor: `Ok` after a clean stop, the error it
    /// gave up with if it had (say [`Error::RestartIntensity`]).
    pub fn stop(mut self) -> Result<()> {
        self.control.take().map_or(Ok(()), run::Control::stop)
    }

    /// Waits until the supervisor ends on its own, with every child stopped,
    /// and says why: `Err` with the error it gave up with (say
    /// [`Error::RestartIntensity`]), or `Ok(())` when this process's shutdown
    /// ended it ([`crate::exit`], or a signal under
    /// [`crate::signals::graceful`]: nothing restarts then). Nothing else
    /// ends a supervisor but [`stop`](SupervisorHandle::stop) or a drop.
    pub fn wait(mut self) -> Result<()> {
        self.control.take().map_or(Ok(()), run::Control::wait)
    }
}

impl Drop for SupervisorHandle {
    fn drop(&mut self) {
        if let Some(c) = self.control.take() {
            let _ = c.stop();
        }
    }
}
