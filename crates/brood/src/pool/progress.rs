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

use crate::sys::shm::SharedCounters;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

/// `[started, finished]`, each a running total over the worker's life.
pub(super) struct Progress {
    page: SharedCounters,
}

impl Progress {
    /// In the worker: a fresh page, and its descriptor for the pool.
    pub(super) fn create() -> io::Result<(Progress, OwnedFd)> {
        let (page, fd) = SharedCounters::create()?;
        Ok((Progress { page }, fd))
    }

    /// In the pool: the page behind a worker's descriptor.
    pub(super) fn open(fd: BorrowedFd<'_>) -> io::Result<Progress> {
        SharedCounters::open(fd).map(|page| Progress { page })
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
}
