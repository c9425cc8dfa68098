//! [`TaskError`]: why one item of a pool call has no value. A module of its
//! own, so that [`Error::TaskFailed`](crate::Error::TaskFailed) can carry one
//! without the error module depending on the pool.

use crate::{ExitStatus, Signal};
use std::time::Duration;

/// Why one item of a [`Pool::map`](crate::Pool::map) has no value. The other items are not
/// affected.
///
/// ```
/// # brood::init();
/// use brood::{Pool, StartMethod, TaskError};
/// fn inverse(x: i32) -> i32 {
///     if x == 0 { panic!("no inverse for zero") }
///     100 / x
/// }
/// let pool = Pool::builder(2).start_method(StartMethod::Fork).build()?;
/// let out = pool.map(inverse, [5, 0, 50])?;
/// assert_eq!(out[0].as_ref().ok(), Some(&20));
/// assert!(matches!(&out[1], Err(TaskError::Panicked { message, .. }) if message == "no inverse for zero"));
/// assert_eq!(out[2].as_ref().ok(), Some(&2));
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked; the worker caught it and carries on.
    #[error("the task panicked{}: {message}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Panicked {
        /// The panic message.
        message: String,
        /// Where it panicked (`file:line:column`), when known.
        location: Option<String>,
    },
    /// The worker died while running this item (killed by a signal, a crash,
    /// an abort, or an `exit` in the function). The worker was replaced.
    #[error("worker {pid} died while running the task ({})", match status {
        Some(s) => s.to_string(),
        None => "its status is lost".to_string(),
    })]
    WorkerDied {
        /// The dead worker's pid.
        pid: u32,
        /// The signal that killed it, if one did.
        signal: Option<Signal>,
        /// How it ended; `None` if its status was lost (reaped by someone else).
        status: Option<ExitStatus>,
    },
    /// The item finished (or may have) each time it ran, but each time its
    /// worker ended before it sent the result: a task that closes or breaks
    /// the worker's descriptors, or ends the process from another thread once
    /// it returned. Such an item runs again on a fresh worker (a result lost
    /// with its worker normally is: see [`Pool`](crate::Pool)), at most
    /// three times in all; then it fails with this.
    #[error("the task ran {runs} times and each time its worker ended before sending the result (last: worker {pid}, {})", match status {
        Some(s) => s.to_string(),
        None => "its status is lost".to_string(),
    })]
    ResultLost {
        /// How many times it ran.
        runs: u32,
        /// The last worker that ran it.
        pid: u32,
        /// How that worker ended; `None` if its status was lost.
        status: Option<ExitStatus>,
    },
    /// The item ran past its timeout
    /// ([`PoolBuilder::task_timeout`](crate::PoolBuilder::task_timeout) or
    /// [`CallOptions::timeout`](crate::CallOptions::timeout)), counted from
    /// its first start (an item that runs again after its result was lost
    /// keeps its first start); its worker was killed and replaced.
    #[error("the task ran past its timeout of {timeout:?} (worker {pid} was killed)")]
    Timeout {
        /// The killed worker's pid.
        pid: u32,
        /// The timeout.
        timeout: Duration,
    },
    /// SIGINT (Ctrl-C) came while the task was submitted and not done (see
    /// [`Error::Interrupted`](crate::Error::Interrupted)).
    #[error("interrupted by SIGINT (Ctrl-C)")]
    Interrupted,
    /// The item could not be run: the argument could not be encoded, the
    /// result could not be decoded, or no worker could be started.
    #[error("the task could not be run: {reason}")]
    Failed {
        /// Why.
        reason: String,
    },
}
