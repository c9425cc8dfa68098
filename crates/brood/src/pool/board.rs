//! [`Board`]: what a pool shows outside the state a map holds — its live
//! workers, whether (and since when) they are paused, what they used — so
//! that [`Pool::suspend`](super::Pool::suspend),
//! [`Pool::resume`](super::Pool::resume), [`Pool::usage`](super::Pool::usage)
//! and [`Pool::worker_pids`](super::Pool::worker_pids) answer while another
//! thread runs a map.
//!
//! The board also keeps the pool's paused time: every interval from a
//! `suspend()` call to the return of its `resume()`. An item's timeouts
//! count the time it *ran*: from its start to now, less the paused time in
//! between (see [`Board::ran`]). Counting the pause from the call of
//! `suspend` (before the workers stop) to the return of `resume` (after they
//! run again) errs on the item's side by the few hundred µs a stop takes.

use super::usage::PoolUsage;
use crate::child::Child;
use crate::error::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A pool's live workers, its paused time, and what its workers used.
#[derive(Debug, Default)]
pub(super) struct Board {
    state: Mutex<State>,
    /// Set by the first `suspend`: until then no timeout looks at the
    /// intervals (the common case costs one load).
    ever_paused: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// Handles of the live workers, slot by slot (brood's own, untracked).
    workers: Vec<Child>,
    /// Paused now, since then.
    paused_since: Option<Instant>,
    /// Earlier pauses, oldest first.
    pauses: Vec<(Instant, Instant)>,
    /// What the workers used, as of their last results.
    used: PoolUsage,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live workers' pids, slot by slot.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.lock().workers.iter().map(Child::pid).collect()
    }

    /// The live workers are now `workers`. While the pool is paused, those
    /// that were not there before (replacements) are paused too, before
    /// they get any work.
    pub(super) fn publish(&self, workers: Vec<Child>) {
        let mut st = self.lock();
        if st.paused_since.is_some() {
            let new: Vec<Child> = workers
                .iter()
                .filter(|w| !st.workers.iter().any(|o| o.pid() == w.pid()))
                .cloned()
                .collect();
            // A replacement that cannot be stopped has ended: the pool sees
            // its death by its pidfd.
            let _ = crate::pause::suspend_all(&new);
        }
        st.workers = workers;
    }

    /// Counts what a worker used since it was last asked.
    pub(super) fn add_usage(&self, more: PoolUsage) {
        self.lock().used.add(more);
    }

    /// What the workers used, as of their last results.
    pub(super) fn usage(&self) -> PoolUsage {
        self.lock().used
    }

    /// Pauses every worker's tree (see [`Pool::suspend`](super::Pool::suspend)).
    pub(super) fn suspend(&self) -> Result<()> {
        let mut st = self.lock();
        if st.paused_since.is_some() {
            return Ok(());
        }
        st.paused_since = Some(Instant::now());
        self.ever_paused.store(true, Ordering::Release);
        let done = crate::pause::suspend_all(&st.workers);
        // A worker that ended meanwhile runs no more either.
        done.or_else(|e| match st.workers.iter().all(Child::is_alive) {
            true => Err(e),
            false => Ok(()),
        })
    }

    /// Resumes every worker's tree, and closes the paused interval.
    pub(super) fn resume(&self) -> Result<()> {
        let mut st = self.lock();
        let Some(since) = st.paused_since else {
            return Ok(());
        };
        let mut first_err = None;
        for w in &st.workers {
            if let Err(e) = w.resume()
                && w.is_alive()
            {
                first_err.get_or_insert(e);
            }
        }
        st.paused_since = None;
        st.pauses.push((since, Instant::now()));
        first_err.map_or(Ok(()), Err)
    }

    /// Whether the workers are paused now.
    pub(super) fn paused(&self) -> bool {
        self.ever_paused.load(Ordering::Acquire) && self.lock().paused_since.is_some()
    }

    /// How long something that began at `from` has run by `now`: the time
    /// between them, less the time the pool was paused in between.
    pub(super) fn ran(&self, from: Instant, now: Instant) -> Duration {
        let wall = now.saturating_duration_since(from);
        if !self.ever_paused.load(Ordering::Acquire) {
            return wall;
        }
        let st = self.lock();
        let open = st.paused_since.map(|s| (s, now));
        let paused: Duration = st
            .pauses
            .iter()
            .rev()
            .take_while(|(_, end)| *end > from)
            .copied()
            .chain(open)
            .map(|(a, b)| b.min(now).saturating_duration_since(a.max(from)))
            .sum();
        wall.saturating_sub(paused)
    }

    /// When something that began at `from` will have run `limit`, if the
    /// pool is not paused again (`now` once it has). While paused, a moment
    /// [`PAUSED_LOOK`] or more ahead, to look again (the map loop is not
    /// woken by `resume`).
    pub(super) fn due(&self, from: Instant, limit: Duration, now: Instant) -> Instant {
        let left = limit.saturating_sub(self.ran(from, now));
        if left.is_zero() {
            now
        } else if self.paused() {
            now + left.max(PAUSED_LOOK)
        } else {
            now + left
        }
    }
}

/// How often, at most, a map loop looks at its timeouts while the pool is
/// paused: after `resume` a timeout that had less than this left fires up to
/// this late.
pub(super) const PAUSED_LOOK: Duration = Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_is_not_run_time() {
        let board = Board::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(board.ran(t0, t0 + s(3)), s(3));
        board.ever_paused.store(true, Ordering::Release);
        board.lock().pauses = vec![(t0 + s(1), t0 + s(2)), (t0 + s(5), t0 + s(7))];
        assert_eq!(board.ran(t0, t0 + s(3)), s(2));
        // A pause before the start, or partly, counts only in part.
        assert_eq!(board.ran(t0 + s(6), t0 + s(8)), s(1));
        assert_eq!(board.ran(t0, t0 + s(10)), s(7));
        // An open pause stops the clock.
        board.lock().paused_since = Some(t0 + s(10));
        assert_eq!(board.ran(t0, t0 + s(12)), s(7));
        assert_eq!(board.due(t0, s(8), t0 + s(12)), t0 + s(13));
        assert_eq!(board.due(t0, s(7), t0 + s(12)), t0 + s(12));
    }
}
