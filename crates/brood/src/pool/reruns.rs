//! Items that run again because their result died with their worker: how
//! often, and since when — so that re-runs are bounded, and an item's timeout
//! counts from its first start, whatever its workers do.
//!
//! Why: results travel in batches, so a worker that dies may take the
//! results of items it finished with it; those items run again elsewhere
//! (every item gets exactly one result). A task that kills its worker's
//! channel on every run (it closes every descriptor above 2, or `exit`s from
//! a thread once it returned) used to run forever, on about 2,000 fresh
//! workers a second, each run too short for any timeout. Now: after
//! [`MAX_RUNS`] such losses the item fails with
//! [`TaskError::ResultLost`](super::TaskError::ResultLost), and with a
//! timeout it fails with [`TaskError::Timeout`](super::TaskError::Timeout)
//! once the timeout has passed since it first started. An item that ran
//! again is sent in a frame whose results go out at once (`TaskHead::prompt`),
//! so that a loss charges that item alone, not the items batched with it.

use std::collections::HashMap;
use std::time::Instant;

/// The most times an item runs whose result is lost each time.
pub(super) const MAX_RUNS: u32 = 3;

/// One item whose result was lost at least once.
#[derive(Clone, Copy, Debug)]
struct Lost {
    /// Runs so far whose result was lost.
    runs: u32,
    /// When it first started (at the latest).
    first: Instant,
}

/// The items of a map whose results were lost (empty in the common case).
#[derive(Debug, Default)]
pub(super) struct Reruns {
    items: HashMap<usize, Lost>,
}

/// What becomes of an item whose result was lost.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It runs again.
    Again,
    /// It ran `runs` times, each time lost: it fails.
    TooMany { runs: u32 },
}

impl Reruns {
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `idx` is running again.
    pub(super) fn contains(&self, idx: usize) -> bool {
        self.items.contains_key(&idx)
    }

    /// When `idx` first started, given that its current run started at
    /// `since`.
    #[inline]
    pub(super) fn started_at(&self, idx: usize, since: Instant) -> Instant {
        if self.items.is_empty() {
            return since;
        }
        self.items.get(&idx).map_or(since, |l| l.first.min(since))
    }

    /// The result of `idx`, whose run began by `since`, died with its
    /// worker: whether it runs again.
    pub(super) fn lost(&mut self, idx: usize, since: Instant) -> Verdict {
        let l = self.items.entry(idx).or_insert(Lost {
            runs: 0,
            first: since,
        });
        l.runs += 1;
        if l.runs >= MAX_RUNS {
            let runs = l.runs;
            self.items.remove(&idx);
            Verdict::TooMany { runs }
        } else {
            Verdict::Again
        }
    }

    /// `idx` has its result.
    #[inline]
    pub(super) fn answered(&mut self, idx: usize) {
        if !self.items.is_empty() {
            self.items.remove(&idx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_item_runs_at_most_max_runs_times_and_keeps_its_first_start() {
        let mut r = Reruns::default();
        let t0 = Instant::now();
        assert_eq!(r.started_at(7, t0), t0);
        assert_eq!(r.lost(7, t0), Verdict::Again);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(r.started_at(7, later), t0);
        assert_eq!(r.started_at(8, later), later);
        assert!(r.contains(7) && !r.contains(8));
        assert_eq!(r.lost(7, later), Verdict::Again);
        assert_eq!(r.lost(7, later), Verdict::TooMany { runs: MAX_RUNS });
        assert!(r.is_empty());
        // An answer forgets it.
        r.lost(9, t0);
        r.answered(9);
        assert!(r.is_empty());
    }
}
