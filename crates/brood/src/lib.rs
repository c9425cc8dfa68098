//! # brood
//!
//! Child processes that behave the way their parent says, always.
//!
//! Python has three ways to make a child — `multiprocessing.Process`, `os.fork`
//! and `subprocess.Popen` — and they live and die by different, mostly implicit
//! rules. brood rebuilds the three in Rust with each rule an explicit
//! [`Policy`], chosen per child and guaranteed:
//!
//! | Python | brood | default policy (Python's behaviour) |
//! | --- | --- | --- |
//! | `multiprocessing.Process` | [`Process`] | wait at exit (daemon: terminate), survive the parent |
//! | `os.fork` | [`fork_with`], [`fork`] | detach at exit, survive the parent |
//! | `subprocess.Popen` | [`Command`] → [`Popen`] | detach at exit, survive the parent |
//! | `multiprocessing.Pool` | [`Pool`] | workers terminated at exit, killed with the parent; a dead worker fails only its item |
//!
//! What brood adds to every kind: no zombie ever (the reaper collects each child
//! the moment it ends and keeps its status), a clear [`Error::ReapedElsewhere`]
//! instead of a wrong answer when foreign code reaps a child, signals through
//! pidfds (never to a reused pid), [`OnParentDeath::Signal`] that holds even when
//! the parent is SIGKILLed, and [`Tree::Group`] so a kill reaches grandchildren.
//!
//! ```
//! # brood::init();
//! use brood::{Command, OnParentDeath, Signal, Tree};
//!
//! // `subprocess.run(["echo", "hi"], capture_output=True, check=True)`
//! let out = Command::new("echo").arg("hi").run()?;
//! assert_eq!(out.stdout, b"hi\n");
//!
//! // A child that cannot outlive us, even if we are SIGKILLed, and whose whole
//! // tree a kill reaches.
//! let child = Command::new("sleep")
//!     .arg("30")
//!     .on_parent_death(OnParentDeath::Signal(Signal::KILL))
//!     .tree(Tree::Group)
//!     .spawn()?;
//! child.kill()?;
//! assert_eq!(child.wait()?.exitcode(), -9);
//! # Ok::<(), brood::Error>(())
//! ```
//!
//! What a dropped handle does is a policy too, [`OnDrop`]: `Detach` by default
//! (as in Python), or `Kill`, or `Terminate { grace }` (SIGTERM, then SIGKILL),
//! reaching the whole group with [`Tree::Group`].
//!
//! ## Async (feature `tokio`)
//!
//! [`Child::wait_async`], [`Popen::communicate_async`] and tokio pipe ends
//! ([`Popen::take_stdout_async`]…), [`Handle::join_async`],
//! [`Pool::map_async`] and [`MapUnordered`] as a `Send` `Stream`: no thread
//! per child (each wait is the child's pidfd on tokio's reactor), no SIGCHLD
//! handler, so `tokio::process` children in the same program keep their
//! statuses. Dropping a future never ends a child; [`OnDrop`] says what a
//! dropped handle does. Without tokio, [`Child::pidfd`] is what any reactor
//! can wait on (its documentation has an `async-io` example).
//!
// Built without the feature, these names point at this section instead.
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`Child::wait_async`]: #async-feature-tokio\n\
           [`Popen::communicate_async`]: #async-feature-tokio\n\
           [`Popen::take_stdout_async`]: #async-feature-tokio\n\
           [`Handle::join_async`]: #async-feature-tokio\n\
           [`Pool::map_async`]: #async-feature-tokio"
)]
//!
//! ## Claims
//!
//! The docs name Python's behaviours by the ids of the claims that the
//! `brood` command's lab measures on the running machine (P1–P5 for
//! `multiprocessing.Process`, F1–F5 for `os.fork`, S1–S4 for
//! `subprocess.Popen`, X1–X2 for `os._exit` and `sys.exit`, N… for what the
//! original field report did not cover): `brood lab --list` prints each with
//! its text, and the repository keeps them in `docs/claims.md`.
//!
//! ## What each guarantee needs from the kernel (Linux)
//! - pidfds (signal without pid reuse, reap, poll): Linux 5.4.
//! - `CLONE_PIDFD` for `Command`: Linux 5.2.
//! - `OnParentDeath::Signal`: `PR_SET_PDEATHSIG` (any supported kernel).
//! - `Tree::Group`/`Session`: process groups (any).
//! - `brood run`'s orphan reaping: `PR_SET_CHILD_SUBREAPER` (Linux 3.4).
//! - `Tree::Cgroup`: cgroup v2 mounted, write access to this process's own
//!   cgroup (root, or a delegated subtree), `cgroup.kill` (Linux 5.14) for
//!   a kill nothing escapes.
//! - A fork server with thousands of children in flight: `close_range`
//!   (Linux 5.9; older kernels close one descriptor at a time, slower).
//!
//! ## Limits
//! Each child costs its parent descriptors: a pidfd, and for a `Process` its
//! result pipe. The first time one of brood's own allocations (a pipe, a
//! socketpair, a pidfd, the reaper's epoll set) finds the soft `RLIMIT_NOFILE`
//! exhausted, brood raises it to the hard limit and tries again (never before,
//! so a program that needs no more keeps its 1,024 for `select(2)`) — for every
//! kind of start: [`Command`], [`fork`], [`fork_with`], [`Process`] with each
//! start method, a [`Pool`]'s workers, from any number of threads at once. Every
//! child it makes starts with the program's own soft limit again. At the hard
//! limit that one start fails with [`Error::DescriptorLimit`], leaving no child
//! behind; children already running are not affected. A fork-server child costs the client two
//! descriptors until three quarters of the limit are in use, one after (its
//! server then keeps its pidfd and signals it on the client's behalf), so a
//! hard limit of 16,500 holds 10,000 children in flight.
//!
//! The platform calls live in one private module, so that macOS can follow; the
//! part of it worth having outside brood (pidfds, the child subreaper, `/proc`)
//! is [`os`].

#![warn(missing_docs)]
// docs.rs (`--cfg docsrs`, nightly): feature-gated items say which feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Every raw call lives in `sys`, each `unsafe` block with the reason it is
// sound; the rest of the crate is safe Rust, but for the public unsafe API
// (`fork`, `ForkBuilder::fork`, `Command::pre_exec`), allowed item by item.
#![deny(
    unsafe_code,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

mod cgroups;
mod child;
mod command;
mod deathwatch;
mod error;
mod exit;
mod fdlimit;
mod fork;
mod forkflush;
mod group;
mod limits;
mod ondrop;
pub mod os;
mod pause;
mod policy;
mod pool;
mod process;
mod ready;
mod reaper;
mod runtime;
mod shutdown;
mod signal;
pub mod signals;
mod spawner;
mod status;
mod supervisor;
#[allow(unsafe_code)]
mod sys;
mod terminal;
mod usage;
mod waitany;
mod wire;

pub use cgroups::{Containment, containment};
pub use child::Child;
pub use command::*;
pub use error::{Error, NotReady, Result, SpawnError};
pub use exit::{apply_on_exit, exit, exit_now};
pub use fork::{Fork, ForkBuilder, fork, fork_with};
pub use limits::Limits;
pub use policy::{Kind, OnDrop, OnExit, OnParentDeath, Policy, Tree};
pub use pool::*;
pub use process::*;
pub use ready::Ready;
pub use shutdown::{shutting_down, wait_for_shutdown};
pub use signal::{NotASignal, Signal};
pub use status::ExitStatus;
pub use supervisor::{
    Backoff, ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorHandle,
};
pub use usage::{Counted, Pressure, Stall, StallLine, Usage};
pub use waitany::wait_any;
#[cfg(feature = "tokio")]
pub use waitany::wait_any_async;
