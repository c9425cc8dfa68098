//! # brood-cluster
//!
//! brood's [`Pool`](brood::Pool) with its workers on many machines, over
//! NATS JetStream: the local pool's promises — each item exactly one
//! result, a crash fails only its item, nothing lost — across machines.
//!
//! - **Driver**: where a program built `brood::Pool::new(n)`, it connects a
//!   [`ClusterPool`] to a server and a job name; [`ClusterPool::map`] has
//!   the local `map`'s signature and result type.
//! - **Agents**: the same executable, started on each machine with
//!   `BROOD_AGENT=nats://host:4222 BROOD_AGENT_JOB=name`, having called
//!   [`agent_from_env`] at the top of `main` (or [`Agent::run`] explicitly).
//!   Each runs its tasks on a local brood `Pool`, so a segfault, abort,
//!   `exit` or timeout fails only that item, exactly as on one machine, and
//!   the agent carries on.
//! - **From outside**: every agent publishes an [`AgentRecord`] each
//!   second; [`JobStatus::read`] (the `brood job` command) shows a job's
//!   queue, its agents and its live maps, so that a stuck agent shows.
//! - **Functions** are named by the executable's build (`brood::remote`): an
//!   agent of another build answers a task with an error naming both
//!   builds, and never runs it. No code travels.
//!
//! ```no_run
//! brood::init_before_main!();
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // An agent (BROOD_AGENT set) serves here until it is stopped.
//!     brood_cluster::agent_from_env();
//!     let pool = brood_cluster::ClusterPool::connect("nats://127.0.0.1:4222", "squares")?;
//!     let out = pool.map(square, 1..=1000)?;
//!     assert!(out.iter().all(|r| r.is_ok()));
//!     Ok(())
//! }
//! ```
//!
//! **Guarantees.** Every item gets exactly one result in the driver:
//! execution is at least once (an agent lost mid-task has its tasks run
//! again by another after the heartbeat timeout), and the driver keeps the
//! first outcome of each item. A task that kills its worker is answered with
//! `TaskError::WorkerDied` naming the signal, and not run again. A task whose
//! agents keep dying fails after `max_deliveries` deliveries. A server
//! restart loses nothing (the store is on disk; both sides reconnect). The
//! tasks of a driver that stopped beating (SIGKILLed, say) for 5 s are
//! dropped unrun by the agents.
//!
//! **Trust.** Whoever can publish to a job's task subjects can make its
//! agents run any function of their binary: give the job's subjects to its
//! driver and agents only (NATS accounts and permissions).

mod agent;
mod alive;
mod call;
mod cleanup;
mod driver;
mod error;
mod job;
mod pools;
mod presence;
mod publish;
mod run;
mod status;

pub use agent::{Agent, agent_from_env};
pub use call::{ClusterCall, ClusterImap, ClusterImapUnordered, ClusterTask};
pub use driver::{ClusterBuilder, ClusterPool};
pub use error::ClusterError;
pub use job::Credentials;
pub use presence::{AgentRecord, LongestTask};
pub use status::{JobStatus, JobWatch};
