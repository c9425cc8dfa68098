//! `--restart`: when to start the command again, with exponential back-off and
//! a restart intensity (at most N restarts within a window, then give up with
//! the last status), as Erlang/OTP supervisors and systemd's `StartLimitBurst`.

use super::options::Restart;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The first back-off; each restart within the window doubles it.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

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
}

impl Restarts {
    /// A policy with its intensity.
    pub fn new(policy: Restart, max: u32, within: Duration) -> Restarts {
        Restarts {
            policy,
            max,
            within,
            recent: VecDeque::new(),
        }
    }

    /// The command ended at `now`, successfully or not.
    pub fn decide(&mut self, succeeded: bool, now: Instant) -> Decision {
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
        let delay = FIRST_BACKOFF
            .saturating_mul(1u32 << (nth - 1).min(16))
            .min(MAX_BACKOFF);
        Decision::After { delay, nth }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_on_failure() {
        let now = Instant::now();
        let mut never = Restarts::new(Restart::Never, 5, Duration::from_secs(60));
        assert_eq!(never.decide(false, now), Decision::Stop);
        let mut on_failure = Restarts::new(Restart::OnFailure, 5, Duration::from_secs(60));
        assert_eq!(on_failure.decide(true, now), Decision::Stop);
        assert!(matches!(
            on_failure.decide(false, now),
            Decision::After { nth: 1, .. }
        ));
    }

    #[test]
    fn backoff_doubles_then_gives_up_within_the_window() {
        let now = Instant::now();
        let mut r = Restarts::new(Restart::Always, 3, Duration::from_secs(60));
        let delays: Vec<Decision> = (0..4).map(|_| r.decide(true, now)).collect();
        assert_eq!(
            delays,
            [
                Decision::After {
                    delay: Duration::from_millis(100),
                    nth: 1
                },
                Decision::After {
                    delay: Duration::from_millis(200),
                    nth: 2
                },
                Decision::After {
                    delay: Duration::from_millis(400),
                    nth: 3
                },
                Decision::GiveUp { restarts: 3 },
            ]
        );
        // Past the window, the count starts again.
        let later = now + Duration::from_secs(61);
        assert_eq!(
            r.decide(true, later),
            Decision::After {
                delay: Duration::from_millis(100),
                nth: 1
            }
        );
    }

    #[test]
    fn backoff_is_capped() {
        let now = Instant::now();
        let mut r = Restarts::new(Restart::Always, 100, Duration::from_secs(60));
        let last = (0..40).map(|_| r.decide(false, now)).last().unwrap();
        assert!(matches!(last, Decision::After { delay, .. } if delay == MAX_BACKOFF));
    }
}
