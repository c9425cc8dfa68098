//! `--restart`: when to start the command again, with the back-off of brood's
//! `Supervisor` (exponential from 100 ms, at most 30 s, jittered, back to
//! 100 ms after a run of 10 s) and a restart intensity (at most N restarts
//! within a window, then give up with the last status), as Erlang/OTP
//! supervisors and systemd's `StartLimitBurst`.

use super::options::Restart;
use brood::Backoff;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do once the command has exited.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Do not restart: exit with its status.
    Stop,
    /// Too many restarts within the window: exit with its status.
    GiveUp {
        /// Restarts made within the window.
        restarts: usize,
    },
    /// Start it again after this back-off; this is restart number `nth` within
    /// the window.
    After {
        /// The back-off.
        delay: Duration,
        /// 1 for the first restart within the window.
        nth: usize,
    },
}

/// The restart policy and the recent restarts.
#[derive(Debug)]
pub struct Restarts {
    policy: Restart,
    max: u32,
    within: Duration,
    recent: VecDeque<Instant>,
    backoff: Backoff,
    /// Restarts in a row without a stable run.
    streak: u32,
}

impl Restarts {
    /// A policy with its intensity.
    pub fn new(policy: Restart, max: u32, within: Duration) -> Restarts {
        Restarts {
            policy,
            max,
            within,
            recent: VecDeque::new(),
            backoff: Backoff::default(),
            streak: 0,
        }
    }

    /// The command ended at `now`, successfully or not, after running `ran`.
    pub fn decide(&mut self, succeeded: bool, now: Instant, ran: Duration) -> Decision {
        let wanted = match self.policy {
            Restart::Never => false,
            Restart::OnFailure => !succeeded,
            Restart::Always => true,
        };
        if !wanted {
            return Decision::Stop;
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > self.within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return Decision::GiveUp {
                restarts: self.recent.len(),
            };
        }
        self.recent.push_back(now);
        let nth = self.recent.len();
        let delay = self.backoff.next_delay(&mut self.streak, ran);
        Decision::After { delay, nth }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT_ONCE: Duration = Duration::ZERO;

    /// The delay of an `After`, which must lie in `[full / 2, full]` ms.
    fn delay_within(d: Decision, full: u64) -> usize {
        let Decision::After { delay, nth } = d else {
            panic!("{d:?}")
        };
        let full = Duration::from_millis(full);
        assert!(delay >= full / 2 && delay <= full, "{delay:?} for {full:?}");
        nth
    }

    #[test]
    fn never_and_on_failure() {
        let now = Instant::now();
        let mut never = Restarts::new(Restart::Never, 5, Duration::from_secs(60));
        assert_eq!(never.decide(false, now, AT_ONCE), Decision::Stop);
        let mut on_failure = Restarts::new(Restart::OnFailure, 5, Duration::from_secs(60));
        assert_eq!(on_failure.decide(true, now, AT_ONCE), Decision::Stop);
        assert!(matches!(
            on_failure.decide(false, now, AT_ONCE),
            Decision::After { nth: 1, .. }
        ));
    }

    #[test]
    fn backoff_doubles_with_jitter_then_gives_up_within_the_window() {
        let now = Instant::now();
        let mut r = Restarts::new(Restart::Always, 3, Duration::from_secs(60));
        assert_eq!(delay_within(r.decide(true, now, AT_ONCE), 100), 1);
        assert_eq!(delay_within(r.decide(true, now, AT_ONCE), 200), 2);
        assert_eq!(delay_within(r.decide(true, now, AT_ONCE), 400), 3);
        assert_eq!(
            r.decide(true, now, AT_ONCE),
            Decision::GiveUp { restarts: 3 }
        );
        // Past the window, the count starts again (the back-off goes on
        // doubling: the command never ran long).
        let later = now + Duration::from_secs(61);
        assert_eq!(delay_within(r.decide(true, later, AT_ONCE), 800), 1);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let now = Instant::now();
        let mut r = Restarts::new(Restart::Always, 100, Duration::from_secs(60));
        for full in [100, 200, 400] {
            delay_within(r.decide(false, now, AT_ONCE), full);
        }
        delay_within(r.decide(false, now, Duration::from_secs(10)), 100);
        delay_within(r.decide(false, now, AT_ONCE), 200);
    }

    #[test]
    fn backoff_is_capped() {
        let now = Instant::now();
        let mut r = Restarts::new(Restart::Always, 100, Duration::from_secs(60));
        let last = (0..40)
            .map(|_| r.decide(false, now, AT_ONCE))
            .last()
            .unwrap();
        delay_within(last, 30_000);
    }
}
