//! A small page shared by the pool and one worker, where the worker counts the
//! items it has started and finished.
//!
//! Why: results travel in batches (one write per batch of small items, not per
//! item: that is most of the cost of a map of tiny functions), so when a worker
//! dies the results it had not yet sent say nothing about which item killed it.
//! These two counters do, and cost two memory stores per item. The worker makes
//! the page (`sys::shm`: a sealed `memfd`, so that it cannot shrink under the
//! pool's mapping) and hands its descriptor to the pool with its connection
//! token.
//!
//! The third counter goes the other way: the pool writes there the number of
//! an item whose soft timeout passed, and the task sees it through
//! [`task_cancelled`](crate::task_cancelled) — a cooperative stop, before the hard
//! timeout kills the worker. The last two go that way too: a range of the
//! worker's item numbers handed to another worker while this one was stuck
//! (see `steal.rs`), which it answers without running them.
//!
//! The last three go from the worker again: the CPU time it has used since
//! its hello (user and system, in ns: its threads' and the children it
//! waited for) and its peak resident memory (getrusage(2)), written before
//! each send of results — so that when the pool has a result, the CPU time
//! that made it is in the page too (see `usage.rs`).

use crate::sys::shm::SharedCounters;
use crate::sys::usage;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `[started, finished, cancelled, handed_after, handed_upto, user_ns,
/// system_ns, peak_rss]`: the first two running totals over the worker's
/// life, the third the number of the item asked to stop, the next two the
/// items `handed_after + 1 ..= handed_upto` that were handed away, the last
/// three its CPU time since its hello and its peak memory in bytes.
pub(super) struct Progress {
    page: SharedCounters,
    /// In the worker: its CPU time at its hello (user, system, in ns).
    base: [AtomicU64; 2],
}

impl Progress {
    /// In the worker: a fresh page, and its descriptor for the pool.
    pub(super) fn create() -> io::Result<(Progress, OwnedFd)> {
        let (page, fd) = SharedCounters::create()?;
        Ok((Progress::on(page), fd))
    }

    /// In the pool: the page behind a worker's descriptor.
    pub(super) fn open(fd: BorrowedFd<'_>) -> io::Result<Progress> {
        SharedCounters::open(fd).map(Progress::on)
    }

    fn on(page: SharedCounters) -> Progress {
        Progress {
            page,
            base: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// In the worker, at its hello: its CPU time from now on is counted
    /// (what it took to start and run its initializer is not).
    pub(super) fn start_counting(&self) {
        let now = usage::own();
        self.base[0].store(nanos(now.user), Ordering::Relaxed);
        self.base[1].store(nanos(now.system), Ordering::Relaxed);
        self.record_usage();
    }

    /// In the worker, before it sends results: its CPU time since its hello
    /// and its peak memory, as they are now.
    pub(super) fn record_usage(&self) {
        let now = usage::own();
        let c = self.page.get();
        let user = nanos(now.user).saturating_sub(self.base[0].load(Ordering::Relaxed));
        let system = nanos(now.system).saturating_sub(self.base[1].load(Ordering::Relaxed));
        c[5].store(user, Ordering::Release);
        c[6].store(system, Ordering::Release);
        c[7].store(now.peak_rss, Ordering::Release);
    }

    /// In the pool: the worker's CPU time since its hello (user, system, in
    /// ns) and its peak memory, as it last wrote them.
    pub(super) fn usage(&self) -> [u64; 3] {
        let c = self.page.get();
        [5, 6, 7].map(|i| c[i].load(Ordering::Acquire))
    }

    /// Items started and items finished, as the worker last wrote them.
    pub(super) fn read(&self) -> (u64, u64) {
        let c = self.page.get();
        // `finished` first: a reader then never sees finished > started.
        let finished = c[1].load(Ordering::Acquire);
        (c[0].load(Ordering::Acquire), finished)
    }

    pub(super) fn started(&self, n: u64) {
        self.page.get()[0].store(n, Ordering::Release);
    }

    pub(super) fn finished(&self, n: u64) {
        self.page.get()[1].store(n, Ordering::Release);
    }

    /// In the pool: the item the worker started as its `n`th is asked to
    /// stop (its soft timeout passed).
    pub(super) fn cancel(&self, n: u64) {
        self.page.get()[2].store(n, Ordering::Release);
    }

    /// In the pool: the items the worker numbers `after + 1 ..= upto` went to
    /// another worker (`after` first, so that a worker that sees the new end
    /// sees the new start).
    pub(super) fn hand_away(&self, after: u64, upto: u64) {
        let c = self.page.get();
        c[3].store(after, Ordering::Release);
        c[4].store(upto, Ordering::Release);
    }

    /// In the worker: whether its item number `seq` went to another worker
    /// (one load per item in the common case: past every range handed away).
    #[inline]
    pub(super) fn handed_away(&self, seq: u64) -> bool {
        let c = self.page.get();
        seq <= c[4].load(Ordering::Acquire) && seq > c[3].load(Ordering::Acquire)
    }

    /// In the worker: whether the item it runs now was asked to stop.
    pub(super) fn cancelled(&self) -> bool {
        let c = self.page.get();
        let running = c[0].load(Ordering::Acquire);
        running > c[1].load(Ordering::Acquire) && c[2].load(Ordering::Acquire) == running
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn items_handed_away_are_a_range_of_the_workers_numbers() {
        let (page, _fd) = Progress::create().unwrap();
        assert!(!(1..=20).any(|n| page.handed_away(n)), "none at first");
        page.hand_away(5, 9);
        let away: Vec<u64> = (1..=20).filter(|&n| page.handed_away(n)).collect();
        assert_eq!(away, [6, 7, 8, 9]);
        // A later range replaces it; the earlier numbers are long past.
        page.hand_away(11, 12);
        let away: Vec<u64> = (1..=20).filter(|&n| page.handed_away(n)).collect();
        assert_eq!(away, [12]);
    }
}
