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

mod boot;
pub(crate) mod child;
mod fork;
pub(crate) mod forkserver;
mod handle;
mod method;
mod ready;
mod spawn;

pub use boot::init;
pub use forkserver::{fork_server_pid, fork_server_spares_ready, set_fork_server_spares};
pub use handle::{Handle, JoinError};
pub use method::{StartMethod, set_start_method, start_method};
pub use ready::ready;

use crate::policy::{Kind, Lifecycle};
use crate::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

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
/// A [`StartMethod::Fork`] child does not keep the parent's ends of its
/// other children's pipes and sockets (a `Command`'s piped stdio, another
/// `Process`'s result pipe, a pool's channels): a `cat` whose stdin the
/// parent closes sees its input end at once, not when an unrelated Fork child
/// exits. Every other descriptor of the parent is inherited, as with Python's
/// fork. ([`fork_with`](crate::fork_with), which is `os.fork`, keeps them all.)
///
/// Every start method gives the function the same signal state, taken at its
/// own `start()`: **nothing blocked** (whatever the starting thread blocked),
/// the classic signals (1–31) the program **ignores at that moment ignored**,
/// every other one at its default action. Two differences are inherent to
/// the methods: a [`StartMethod::Fork`] child is a copy of the program, so
/// the handlers the program installed are still installed there (Spawn and
/// ForkServer children run a fresh image, where they are at their default);
/// and real-time signals ignored by the program stay ignored in Fork and
/// Spawn children but start at their default in ForkServer ones.
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
    /// A descriptor for the child alone (a pool worker's channel), taken by
    /// `start`.
    handed_down: Option<OwnedFd>,
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
            handed_down: None,
        }
    }

    /// Gives the child `fd` (a socketpair end, say) by a path no other process
    /// can take: inherited by a forked child, attached with `SCM_RIGHTS` to the
    /// request of a re-executed or fork-server one. The child takes it with
    /// `child::take_handed_down`. Our copy closes once the child has its own.
    pub(crate) fn hand_down(&mut self, fd: OwnedFd) -> &mut Self {
        self.handed_down = Some(fd);
        self
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
        on_drop {}
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
        boot::check_initialised()?;
        crate::shutdown::refuse_if_begun()?;
        crate::child::ready_to_reap()?;
        let policy = self.policy();
        let method = self.method.unwrap_or_else(start_method);
        let (child, result) = if method == StartMethod::Fork {
            // The forked child has the value itself.
            fork::start(self.f, arg, policy, self.handed_down.take())?
        } else {
            // Encoded once, before any child exists: an argument that cannot
            // cross is refused here, and these bytes are what the child is sent.
            let encoded = match crate::wire::frame::encode_argument(&arg) {
                Ok(encoded) => encoded,
                Err(reason) => {
                    self.arg = Some(arg);
                    return Err(Error::ArgumentEncode {
                        of: format!("process {name:?}"),
                        reason,
                    });
                }
            };
            let down = self.handed_down.take();
            match method {
                StartMethod::Spawn => spawn::start(self.f, &encoded, policy, &name, down)?,
                _ => forkserver::client::start(self.f, &encoded, policy, &name, down)?,
            }
        };
        Ok(Handle::new(child, name, method, result))
    }
}
