//! Which item a dead worker was running, from its progress counters: pure
//! bookkeeping, unit-tested apart from any process.

/// Why a worker's life ended, as the pool saw it.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(super) enum Cause {
    /// It exited (its pidfd said so).
    Exited,
    /// It ran an item past the task timeout and was killed.
    Timeout,
    /// It sent a malformed frame and was killed.
    Broken,
}

/// What a dead worker's counters say, as [`after_death`] reads them.
#[derive(Copy, Clone, Debug)]
pub(super) struct Counts {
    /// Items the worker started, and finished, over its life (its progress page).
    pub(super) started: u64,
    pub(super) finished: u64,
    /// Results the pool received from it.
    pub(super) received: u64,
    /// Items sent to it and not answered, in the order it runs them.
    pub(super) inflight: usize,
}

/// After a worker's death: how many of the front in-flight items it finished
/// but whose results died with it (they run again elsewhere), and whether the
/// next one was running when it died (that one fails with the death's cause).
/// A worker killed for a timeout or a protocol error was running its item
/// whatever the counters say; one that exited on its own was only if it had
/// started more items than it finished.
pub(super) fn after_death(c: Counts, cause: Cause) -> (usize, bool) {
    let lost = c.finished.saturating_sub(c.received).min(c.inflight as u64) as usize;
    let running = (c.started > c.finished || cause != Cause::Exited) && c.inflight > lost;
    (lost, running)
}

#[cfg(test)]
mod tests {
    use super::Cause;
    use super::{Counts, after_death};

    fn counts(started: u64, finished: u64, received: u64, inflight: usize) -> Counts {
        Counts {
            started,
            finished,
            received,
            inflight,
        }
    }

    #[test]
    fn the_item_a_dead_worker_was_running_is_the_one_that_fails() {
        // Killed while running its 8th item, 5 results received: items 6 and 7
        // finished but their results were lost; the 8th (front after those)
        // was running.
        assert_eq!(after_death(counts(8, 7, 5, 4), Cause::Exited), (2, true));
        // Died between items (all it started, it finished): nothing fails.
        assert_eq!(after_death(counts(7, 7, 5, 4), Cause::Exited), (2, false));
        // Everything it finished was received: no item runs again.
        assert_eq!(after_death(counts(6, 5, 5, 3), Cause::Exited), (0, true));
        // Killed for a timeout: its item fails even if the counters lag.
        assert_eq!(after_death(counts(5, 5, 5, 1), Cause::Timeout), (0, true));
        // Counters beyond what was sent (a worker lying, or a page reused):
        // never more than the in-flight items, and no phantom culprit.
        assert_eq!(after_death(counts(20, 20, 0, 2), Cause::Exited), (2, false));
        assert_eq!(
            after_death(counts(20, 19, 0, 2), Cause::Timeout),
            (2, false)
        );
        // Nothing in flight: nothing to blame.
        assert_eq!(after_death(counts(3, 2, 2, 0), Cause::Exited), (0, false));
    }
}
