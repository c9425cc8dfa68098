//! [`Process`]: Python's `multiprocessing.Process` — a Rust function run in a
//! child process — with the three start methods and explicit lifecycle policies.
//!
//! | method | how | cost | with other threads |
//! | --- | --- | --- | --- |
//! | [`StartMethod::Fork`] | `fork(2)` here, then `f(arg)` | lowest | warns: a lock another thread held stays locked in the child |
//! | [`StartMethod::Spawn`] | re-execute this program; [`init`] runs `f` | highest | safe |
//! | [`StartMethod::ForkServer`] (default) | a single-threaded server, started by re-execution once, forks each child | low | safe |
//!
//! A function crosses a re-execution as its offset inside the executable (see
//! `crossing.rs`), its argument and result as serde bytes over pipes (`ipc.rs`).
//!
//! Python's rule that "a daemonic process may not have children" is not kept:
//! it exists because Python's `terminate()` reaches the daemon alone and would
//! orphan its children. In brood a daemon child may start children; give it
//! [`Tree::Group`](crate::Tree::Group) and `terminate`/`kill` (and the `OnExit::Terminate` at exit)
//! reach its whole tree, or give the grandchildren
//! [`OnParentDeath::Signal`](crate::OnParentDeath::Signal) so they follow it.

pub(crate) mod child;
pub(crate) mod crossing;
mod fork;
pub(crate) mod forkserver;
mod handle;
mod spawn;

pub use forkserver::fork_server_pid;
pub use handle::{Handle, JoinError};

use crate::policy::{Kind, Lifecycle};
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

/// The environment variable that marks a process brood started by
/// re-execution, and says what it is for (`spawn:<parent pid>` or
/// `server:<client pid>`); its stdin is the private socket.
pub(crate) const ENV: &str = "__BROOD_CHILD";

/// How a [`Process`] makes its child.
///
/// ```
/// # brood::init();
/// use brood::{Process, StartMethod};
/// fn twice(x: i64) -> i64 { 2 * x }
/// for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
///     let h = Process::new(twice, 21).start_method(m).start()?;
///     assert_eq!(h.start_method(), m);
///     assert_eq!(h.join().unwrap(), 42);
/// }
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// `fork(2)` in the caller, then run the function. The cheapest; unsafe in
    /// spirit when other threads hold locks the child needs (brood warns).
    Fork,
    /// Re-execute this program; [`init`] in the child runs the function.
    Spawn,
    /// Ask brood's fork server (one per process, started by re-execution on first
    /// use) to fork the child. Safe with threads, and nearly as cheap as `Fork`.
    ForkServer,
}

static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(2);

/// Sets the start method of every later [`Process`] that does not choose one
/// (Python's `multiprocessing.set_start_method`). The default is
/// [`StartMethod::ForkServer`].
///
/// ```
/// # brood::init();
/// brood::set_start_method(brood::StartMethod::Spawn);
/// assert_eq!(brood::start_method(), brood::StartMethod::Spawn);
/// brood::set_start_method(brood::StartMethod::ForkServer);
/// ```
pub fn set_start_method(method: StartMethod) {
    DEFAULT_METHOD.store(method as u8, Ordering::Relaxed);
}

/// The process-wide default start method.
pub fn start_method() -> StartMethod {
    match DEFAULT_METHOD.load(Ordering::Relaxed) {
        0 => StartMethod::Fork,
        1 => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    }
}

static INIT_DONE: AtomicBool = AtomicBool::new(false);

/// The first line of a program's `main`.
///
/// In a process that brood started by re-execution (a [`StartMethod::Spawn`]
/// child, or the fork server) it takes over — runs the requested function or
/// serves — and never returns. Anywhere else it returns at once; calling it
/// again costs one atomic load.
///
/// ```
/// # #[allow(clippy::needless_doctest_main)]
/// fn main() {
///     brood::init();
///     // … the program …
/// }
/// ```
///
/// Tests, benches and doctests that do not own `main` use
/// [`init_before_main!`](crate::init_before_main) instead.
pub fn init() {
    if INIT_DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    let Some(marker) = std::env::var_os(ENV) else {
        return;
    };
    // Our own children must not take the marker for theirs. Removing it is safe
    // here: init runs first in `main` (or before it), before other threads.
    std::env::remove_var(ENV);
    let marker = marker.to_string_lossy().into_owned();
    let request = marker
        .split_once(':')
        .and_then(|(what, pid)| Some((what, pid.parse::<u32>().ok()?)));
    match request {
        Some(("spawn", parent)) => spawn::child_main(parent),
        Some(("server", client)) => forkserver::server::main(client),
        _ => {
            eprintln!("brood: {ENV}={marker:?} is not a brood request; exiting");
            crate::exit_now(crate::process::child::CODE_SETUP)
        }
    }
}

/// Runs [`init`] before `main`, from the executable's `.init_array`: for
/// integration tests, benches and examples whose `main` is not yours (libtest's).
/// Put it once at the top level of each test file that starts a [`Process`]
/// with [`StartMethod::Spawn`] or [`StartMethod::ForkServer`] (the default):
/// without it the re-executed test binary would run the tests again instead of
/// the function, and the start fails.
///
/// ```
/// brood::init_before_main!();
/// # fn main() {}
/// ```
///
/// The entry is an ordinary ELF constructor: it runs after the C library is set
/// up, in link order with other constructors. The test suite checks that a
/// function run this way sees the standard library ready (`std::env::args`
/// included); a stack overflow there aborts without Rust's usual message, since
/// that handler is installed by `main`'s runtime setup.
#[macro_export]
macro_rules! init_before_main {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __BROOD_INIT_BEFORE_MAIN: extern "C" fn() = {
            extern "C" fn __brood_init_before_main() {
                $crate::init();
            }
            __brood_init_before_main
        };
    };
}

/// Refuses to start a child from a re-executed process that skipped [`init`]
/// (it would otherwise start its parent's work again, recursively).
fn check_initialised() -> Result<()> {
    if initialised_marker() {
        return Err(Error::NotInitialised {
            pid: crate::sys::getpid(),
            marker: ENV,
        });
    }
    Ok(())
}

/// Whether this process was started by brood to run a function but skipped
/// [`init`]: worked out once per process. A forked child reads the parent's
/// answer, which `fork` makes ready before forking (see `crate::fork`).
pub(crate) fn initialised_marker() -> bool {
    static MARKED: OnceLock<bool> = OnceLock::new();
    *MARKED.get_or_init(|| {
        #[cfg(test)]
        crate::fork::test_gate::pass();
        !INIT_DONE.load(Ordering::Acquire) && std::env::var_os(ENV).is_some()
    })
}

/// A function to run in a child process, with its argument and policies:
/// Python's `multiprocessing.Process(target=f, args=(arg,))`.
///
/// The function is a plain `fn` (a closure without captures also coerces to
/// one): with [`StartMethod::Spawn`] and [`StartMethod::ForkServer`] it runs in
/// another process image, where only code, not captured state, can be found
/// again. The argument and the result cross as serde bytes. Both are
/// `'static` (they cross into another process, so they cannot borrow), and the
/// argument is `Send` (with [`StartMethod::Fork`] and a parent-death signal, the
/// fork happens on brood's spawner thread; see [`OnParentDeath`](crate::OnParentDeath)).
///
/// Every start method gives the child `/dev/null` as stdin (as Python does);
/// stdout and stderr are the parent's.
///
/// Defaults follow Python ([`Kind::Process`]): the parent waits for the child at
/// exit (with `daemon(true)`: SIGTERM, then SIGKILL after a grace of 1 s), and
/// the child survives its parent's abrupt death.
///
/// ```
/// # brood::init();
/// use brood::{OnParentDeath, Process, Signal, StartMethod};
///
/// fn count(words: Vec<String>) -> usize { words.len() }
///
/// let h = Process::new(count, vec!["a".into(), "b".into()])
///     .name("counter")
///     .on_parent_death(OnParentDeath::Signal(Signal::KILL))
///     .start()?;
/// assert_eq!(h.join().unwrap(), 2);
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug)]
pub struct Process<A, R> {
    f: fn(A) -> R,
    /// Taken by the first `start`: a `Process` starts once.
    arg: Option<A>,
    name: Option<String>,
    method: Option<StartMethod>,
    lifecycle: Lifecycle,
}

impl<A, R> Process<A, R>
where
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    /// `f(arg)` in a child, with Python's defaults.
    pub fn new(f: fn(A) -> R, arg: A) -> Self {
        Process {
            f,
            arg: Some(arg),
            name: None,
            method: None,
            lifecycle: Lifecycle::new(Kind::Process { daemon: false }),
        }
    }

    /// Python's `daemon` flag: a daemon child is terminated (SIGTERM, then
    /// SIGKILL after 1 s) when this process exits, instead of waited for —
    /// unless [`Process::on_exit`] says otherwise, before or after.
    ///
    /// ```
    /// use brood::{OnExit, Process};
    /// fn nothing(_: ()) {}
    /// assert_eq!(Process::new(nothing, ()).daemon(true).policy().on_exit, OnExit::TERMINATE);
    /// let waited = Process::new(nothing, ()).on_exit(OnExit::Wait).daemon(true).policy();
    /// assert_eq!(waited.on_exit, OnExit::Wait);
    /// ```
    pub fn daemon(&mut self, daemon: bool) -> &mut Self {
        self.lifecycle.set_kind(Kind::Process { daemon });
        self
    }

    /// A name for the handle (Python's `name`; `Process-N` by default).
    pub fn name(&mut self, name: &str) -> &mut Self {
        self.name = Some(name.to_string());
        self
    }

    /// How to make the child; [`start_method`] by default.
    pub fn start_method(&mut self, method: StartMethod) -> &mut Self {
        self.method = Some(method);
        self
    }

    crate::policy::lifecycle_methods! {
        on_exit {
            /// Overrides the default that [`daemon`](Process::daemon) implies.
        }
        on_parent_death {}
        tree {}
        set_policy {}
        policy {
            /// ```
            /// use brood::{Kind, Policy, Process};
            /// fn nothing(_: ()) {}
            /// let p = Process::new(nothing, ());
            /// assert_eq!(p.policy(), Policy::for_kind(Kind::Process { daemon: false }));
            /// ```
        }
    }

    /// Starts the child and returns its handle. The argument moves into the
    /// child, so a `Process` starts once: a second `start` is
    /// [`Error::AlreadyStarted`] (Python's "cannot start a process twice").
    ///
    /// Errors: the child could not be created, the function cannot cross a
    /// re-execution (it is not in the executable), or the fork server could not
    /// be started. A child that dies while starting is not an error here: `join`
    /// says how it ended.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Error, Process};
    /// fn one(_: ()) -> u8 { 1 }
    /// let mut p = Process::new(one, ());
    /// assert_eq!(p.name("once").start()?.join().unwrap(), 1);
    /// assert!(matches!(p.start(), Err(Error::AlreadyStarted { name }) if name == "once"));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn start(&mut self) -> Result<Handle<R>> {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let name = self
            .name
            .get_or_insert_with(|| format!("Process-{}", COUNTER.fetch_add(1, Ordering::Relaxed)))
            .clone();
        let Some(arg) = self.arg.take() else {
            return Err(Error::AlreadyStarted { name });
        };
        check_initialised()?;
        let policy = self.policy();
        let method = self.method.unwrap_or_else(start_method);
        match method {
            StartMethod::Fork => {
                let (child, result) = fork::start(self.f, arg, policy)?;
                Ok(Handle::new(child, name, method, result, None))
            }
            StartMethod::Spawn => {
                let (child, result) = spawn::start(self.f, &arg, policy, &name)?;
                Ok(Handle::new(child, name, method, result, None))
            }
            StartMethod::ForkServer => {
                let (child, result, conn) = forkserver::client::start(self.f, &arg, policy, &name)?;
                Ok(Handle::new(child, name, method, result, Some(conn)))
            }
        }
    }
}

/// The crossing form of `f` with its trampoline, as an error brood reports.
fn fn_ref<A, R>(f: fn(A) -> R) -> Result<crossing::FnRef>
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    crossing::fn_ref(child::trampoline::<A, R>, f as usize).map_err(|reason| Error::NotCrossable {
        what: "Process function",
        reason,
    })
}

/// Sends the argument frame; a child that died first (EPIPE) is not an error
/// here (its `join` reports how it ended).
fn send_arg<A: Serialize + 'static>(fd: std::os::fd::OwnedFd, arg: &A, to: &str) -> Result<()> {
    use std::os::fd::AsFd;
    match crate::ipc::write_frame(fd.as_fd(), crate::ipc::FrameKind::Value, arg) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Ok(()),
        Err(e) => Err(Error::io(format!("sending the argument to {to}"), e)),
    }
}
