//! The kernel's coarse monotonic clock, `CLOCK_MONOTONIC_COARSE`: the time of
//! the last scheduler tick, read from the vDSO without asking the hardware
//! clock. It advances in steps of one tick (1–4 ms, by the kernel's `HZ`) and
//! costs a few nanoseconds, for pacing that is checked once per tiny item (a
//! pool worker's batches), where `Instant::now` was a sixth of the work.
//!
//! # References
//! clock_gettime(2), time(7) (the coarse clocks: Linux 2.6.32).

/// Nanoseconds on the coarse monotonic clock (its origin is arbitrary).
pub fn coarse_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_coarse_clock_moves_forward_in_ticks() {
        let tick = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
        assert!(
            tick.tv_sec == 0 && tick.tv_nsec <= 10_000_000,
            "a tick of {tick:?}"
        );
        let start = coarse_nanos();
        let t = Instant::now();
        let mut last = start;
        // It never goes back, and it moves within a few ticks.
        while last == start {
            let now = coarse_nanos();
            assert!(now >= last, "it went back");
            last = now;
            assert!(t.elapsed() < Duration::from_secs(1), "it did not move");
        }
        std::thread::sleep(Duration::from_millis(50));
        let moved = Duration::from_nanos(coarse_nanos() - last);
        assert!(
            moved >= Duration::from_millis(40),
            "moved {moved:?} in 50 ms"
        );
    }
}
