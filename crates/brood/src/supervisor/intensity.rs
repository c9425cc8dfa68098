//! Restart intensity: at most `max` restarts within any window of `within`
//! (Erlang/OTP's `intensity` and `period`). Pure bookkeeping, unit-tested.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The restarts of the last `within`.
#[derive(Debug)]
pub(super) struct Intensity {
    max: usize,
    within: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(super) fn new(max: usize, within: Duration) -> Intensity {
        Intensity {
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    pub(super) fn max(&self) -> usize {
        self.max
    }

    pub(super) fn within(&self) -> Duration {
        self.within
    }

    /// Records a restart at `now`; false if it is one too many (more than
    /// `max` within `within`): the supervisor then gives up.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.within)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::Intensity;
    use std::time::{Duration, Instant};

    #[test]
    fn more_than_max_within_the_window_is_refused_and_old_ones_age_out() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut i = Intensity::new(3, Duration::from_secs(5));
        assert!(i.allow(t0));
        assert!(i.allow(t0 + s));
        assert!(i.allow(t0 + 2 * s));
        // A fourth within 5 s: too many.
        assert!(!i.allow(t0 + 3 * s));
        // Later, the first ones have aged out of the window.
        let mut i = Intensity::new(3, Duration::from_secs(5));
        for k in 0..3 {
            assert!(i.allow(t0 + k * s));
        }
        assert!(i.allow(t0 + 5 * s), "the restart at t0 left the window");
        // No restarts allowed at all.
        assert!(!Intensity::new(0, s).allow(t0));
    }
}
