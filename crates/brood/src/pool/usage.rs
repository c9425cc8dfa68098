//! [`PoolUsage`]: the CPU time a pool's items took and the most memory a
//! worker held, from what each worker writes into its progress page before
//! it sends results (see `progress.rs`).

use super::conn::Worker;
use std::time::Duration;

/// What a [`Pool`](super::Pool)'s items have used, from
/// [`Pool::usage`](super::Pool::usage).
///
/// **CPU time** is each worker's own (getrusage(2): all its threads, and
/// the children a task waited for), counted from its hello — so not what
/// it took to start or to run its initializer — up to the last results it
/// sent. So it is the items' time plus the worker's cost of decoding their
/// arguments and encoding their results (µs per chunk), to µs precision. An
/// item that ran twice (its result lost with its worker, or handed to an idle
/// worker) counts each run up to its worker's last send; a worker killed for
/// a timeout or that died loses what it used after its last send.
///
/// **Peak memory** is the most resident memory any one worker held at once
/// (its `VmHWM`, as `ru_maxrss`), over every worker the pool has had — not
/// reset between calls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolUsage {
    /// CPU time in user mode.
    pub user: Duration,
    /// CPU time in the kernel.
    pub system: Duration,
    /// The largest peak resident memory of a worker, in bytes.
    pub peak_rss: u64,
}

impl PoolUsage {
    /// User and system CPU time together.
    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }

    /// What was used since `earlier` (an earlier [`Pool::usage`](super::Pool::usage)
    /// of the same pool): the CPU time in between, the peak memory as it is
    /// now.
    pub fn since(&self, earlier: &PoolUsage) -> PoolUsage {
        PoolUsage {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            peak_rss: self.peak_rss,
        }
    }

    /// Adds `more` (a worker's latest use).
    pub(super) fn add(&mut self, more: PoolUsage) {
        self.user += more.user;
        self.system += more.system;
        self.peak_rss = self.peak_rss.max(more.peak_rss);
    }
}

impl Worker {
    /// What the worker used since this was last asked (or since its hello).
    pub(super) fn take_usage(&mut self) -> PoolUsage {
        let [user, system, peak_rss] = self.progress.usage();
        let [seen_user, seen_system] = std::mem::replace(&mut self.spent, [user, system]);
        PoolUsage {
            user: Duration::from_nanos(user.saturating_sub(seen_user)),
            system: Duration::from_nanos(system.saturating_sub(seen_system)),
            peak_rss,
        }
    }
}
