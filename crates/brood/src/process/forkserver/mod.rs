//! [`StartMethod::ForkServer`](super::StartMethod::ForkServer): one
//! single-threaded server per client process, started by re-execution on first
//! use, forks each child on request.
//!
//! **Channel.** A `SOCK_SEQPACKET` socketpair made by the client, one end
//! inherited by the server as its stdin at exec: it has no name in the
//! filesystem, so no other process can connect. The server also checks with
//! `SO_PEERCRED` that the pair was made by the pid that its marker names and by
//! its own user, and the client's first message hands it a pidfd of the client.
//!
//! **Per child.** The client sends the request with two descriptors attached:
//! the read end of the argument pipe and the write end of the result pipe. The
//! server forks; the child arms its policies and runs the function, reading the
//! argument from and writing the result to those pipes, so a 100 MB value never
//! passes through the server. The server answers with the child's pid and a
//! pidfd for it (over `SCM_RIGHTS`, so the client holds the process itself, with
//! no pid-reuse race), reaps the child the moment it ends (never a zombie) and
//! reports the status; a client thread records it in the [`Child`](crate::Child).
//!
//! **Spares** (`spare`). Once it has been idle for a millisecond the server
//! forks a few children ahead (2 unless [`set_fork_server_spares`] says
//! otherwise), each waiting on a channel of its own whose other end it hands
//! to the client with the spare's pidfd. A start then takes a spare: it tells
//! the server which request and policies the spare now serves, then sends
//! the request on the spare's channel, and `start()` returns at once — a
//! message, not a fork. The spare is the server's child as any other (reaped
//! and reported the same way). A burst of starts uses them up and forks on
//! request; a caller's size never matters, since the server forks itself.
//!
//! **Lifetimes — decisions.**
//! - The server is *not* the client's child: it is started through an
//!   intermediate process that forks it and exits at once. So a `waitpid(-1)` in
//!   the client can neither block on the server nor reap the server's children:
//!   with this start method, claim P5 cannot happen — `join` and `exitcode` keep
//!   giving the true status. (One exception: a client that made itself a child
//!   subreaper adopts the server when the intermediate exits; its `waitpid(-1)`
//!   then waits for the server too, as for any orphan it adopted.)
//! - The server has no parent-death signal. When the client dies (its pidfd
//!   becomes readable or the socket closes) the server applies each live child's
//!   [`OnParentDeath`](crate::OnParentDeath): it sends `Signal(sig)` children
//!   their signal, leaves `Survive` children running, keeps reaping them, and
//!   exits once none is left. Children with `Signal(sig)` also arm
//!   `PR_SET_PDEATHSIG(sig)` against the server, so even a SIGKILLed server takes
//!   them along; `Survive` children outlive it, re-parented.
//! - A server that dies is seen by the client as the socket's end: pending starts
//!   fail, joins of its children answer [`JoinError::ServerDied`](super::JoinError)
//!   once those children end (their statuses are lost), and the next `start()`
//!   launches a new server.

pub(crate) mod client;
pub(crate) mod server;
pub(crate) mod spare;

/// What `ps` calls the server: `myapp (brood fork server)`.
const SERVER: &str = "fork server";

pub use client::{fork_server_spares_ready, set_fork_server_spares};

/// The pid of this process's fork server, if one is running.
///
/// ```
/// # brood::init();
/// use brood::{Process, StartMethod};
/// fn one(_: ()) -> u8 { 1 }
/// Process::new(one, ()).start_method(StartMethod::ForkServer).start()?.join().unwrap();
/// assert!(brood::fork_server_pid().is_some());
/// # Ok::<(), brood::Error>(())
/// ```
pub fn fork_server_pid() -> Option<u32> {
    client::current().map(|c| c.server_pid())
}
