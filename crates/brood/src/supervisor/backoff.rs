//! [`Backoff`]: how long a restart waits — exponential, capped, jittered, and
//! back to the first delay after a run that lasted. Pure bookkeeping (the
//! jitter's randomness aside), unit-tested; `brood run --restart` uses it too.

use std::time::Duration;

/// How long a [`Supervisor`](crate::Supervisor) waits before restarting a
/// child: `first`, doubled at each restart in a row, at most `max`, and
/// drawn uniformly from the upper half of that (jitter: children that fail
/// together do not restart together). A child that ran at least
/// `reset_after` before it ended counts as a fresh start: its next restart
/// waits `first` again.
///
/// The default: 100 ms, at most 30 s, reset after 10 s of running — a child
/// that fails at once restarts at most 5 times in its first second, not
/// hundreds. [`Backoff::NONE`] restarts at once (Erlang/OTP's way).
///
/// ```
/// use brood::Backoff;
/// use std::time::Duration;
/// let b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
/// let mut streak = 0;
/// // Ended at once three times: 5-10 ms, then 10-20 ms, then 20-40 ms.
/// for (low, high) in [(5, 10), (10, 20), (20, 40)] {
///     let d = b.next_delay(&mut streak, Duration::ZERO);
///     assert!(d >= Duration::from_millis(low) && d <= Duration::from_millis(high), "{d:?}");
/// }
/// // A run that lasted: back to the first delay.
/// let d = b.next_delay(&mut streak, Duration::from_secs(60));
/// assert!(d <= Duration::from_millis(10));
/// assert_eq!(Backoff::NONE.next_delay(&mut streak, Duration::ZERO), Duration::ZERO);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

impl Backoff {
    /// No waiting: a child restarts at once.
    pub const NONE: Backoff = Backoff {
        first: Duration::ZERO,
        max: Duration::ZERO,
        reset_after: Duration::ZERO,
    };

    /// Waits from `first` up to `max` (reset after 10 s of running; see
    /// [`Backoff::reset_after`]).
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            reset_after: Duration::from_secs(10),
        }
    }

    /// A child that ran at least this long before it ended starts the
    /// back-off again from its first delay.
    pub fn reset_after(mut self, stable: Duration) -> Backoff {
        self.reset_after = stable;
        self
    }

    /// The wait before the next restart of a child that ran `ran` before it
    /// ended, `streak` being the restarts in a row so far (0 at first; this
    /// counts one more, or starts again after a stable run).
    pub fn next_delay(&self, streak: &mut u32, ran: Duration) -> Duration {
        if ran >= self.reset_after {
            *streak = 0;
        }
        let full = self
            .first
            .saturating_mul(1u32 << (*streak).min(20))
            .min(self.max);
        *streak = streak.saturating_add(1);
        jitter(full, crate::sys::random::u64())
    }
}

/// `full` less up to half of it, by `random`: uniform over `[full / 2, full]`.
fn jitter(full: Duration, random: u64) -> Duration {
    let half = full / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let off = random.checked_rem(nanos.saturating_add(1)).unwrap_or(0);
    full - Duration::from_nanos(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_within_its_upper_half() {
        let ms = Duration::from_millis;
        let b = Backoff::new(ms(100), ms(1000));
        let mut streak = 0;
        for full in [100, 200, 400, 800, 1000, 1000] {
            let d = b.next_delay(&mut streak, Duration::ZERO);
            assert!(d >= ms(full / 2) && d <= ms(full), "{d:?} for {full}");
        }
        assert_eq!(streak, 6);
        b.next_delay(&mut streak, Duration::from_secs(10));
        assert_eq!(streak, 1, "a stable run starts again");
    }

    #[test]
    fn jitter_spans_the_upper_half() {
        let full = Duration::from_millis(100);
        assert_eq!(jitter(full, 0), full);
        assert_eq!(jitter(full, 50_000_000), Duration::from_millis(50));
        assert_eq!(jitter(Duration::ZERO, 12345), Duration::ZERO);
        let draws: Vec<Duration> = (0..64)
            .map(|_| jitter(full, crate::sys::random::u64()))
            .collect();
        assert!(draws.iter().any(|d| *d != draws[0]), "jitter varies");
    }
}
