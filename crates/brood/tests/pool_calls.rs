//! Per-call options of a `Pool` (`Pool::with`): a timeout for one call, a
//! soft timeout the task can notice, progress — observed on real workers.

mod support;

use brood::{CallOptions, MapProgress, Pool, TaskError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// Sleeps `ms`, then says which worker ran it.
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Works until asked to stop (or 60 s): how long it ran, and its pid.
fn until_cancelled(_: ()) -> (u128, u32) {
    let t = Instant::now();
    while !brood::task_cancelled() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    (t.elapsed().as_millis(), std::process::id())
}

fn inc(x: u32) -> u32 {
    x + 1
}

#[test]
fn a_timeout_applies_to_its_call_alone() {
    let pool = Pool::new(1).unwrap();
    let before = pool.worker_pids();
    let out = pool
        .with(CallOptions::new().timeout(Duration::from_millis(200)))
        .map(nap, [0, 30_000, 0])
        .unwrap();
    assert_eq!(out[0], Ok(before[0]));
    let Err(TaskError::Timeout { pid, timeout }) = out[1] else {
        panic!("{out:?}");
    };
    assert_eq!((pid, timeout), (before[0], Duration::from_millis(200)));
    assert!(
        wait_exit(pid, Duration::from_secs(5)),
        "the timed-out worker lives"
    );
    assert!(out[2].is_ok());
    // The next call has no timeout: 300 ms is fine.
    assert!(pool.map(nap, [300]).unwrap()[0].is_ok());
    // And a submitted task has its own.
    let h = pool
        .with(CallOptions::new().timeout(Duration::from_millis(100)))
        .submit(nap, 30_000)
        .unwrap();
    assert!(matches!(h.wait(), Err(TaskError::Timeout { .. })));
}

#[test]
fn a_soft_timeout_asks_the_task_to_stop_and_the_worker_lives_on() {
    let pool = Pool::new(1).unwrap();
    let worker = pool.worker_pids()[0];
    let opts = CallOptions::new().soft_timeout(Duration::from_millis(100));
    let out = pool
        .with(opts.clone())
        .map(until_cancelled, [(), ()])
        .unwrap();
    for r in &out {
        let (ran_ms, pid) = *r.as_ref().unwrap();
        // Counted by the pool from the hand-out, a little before it began.
        assert!((50..10_000).contains(&ran_ms), "ran {ran_ms} ms");
        assert_eq!(pid, worker, "the worker was replaced");
    }
    // Soft, then hard: a task that ignores the flag is killed.
    let out = pool
        .with(opts.timeout(Duration::from_millis(400)))
        .map(nap, [30_000])
        .unwrap();
    assert!(matches!(out[0], Err(TaskError::Timeout { .. })), "{out:?}");
    // Without the option the flag never rises: a submitted task under its
    // own soft timeout sees it, others do not.
    let h = pool
        .with(CallOptions::new().soft_timeout(Duration::from_millis(50)))
        .submit(until_cancelled, ())
        .unwrap();
    // Counted from the hand-out, as above: a loaded machine may start the
    // task a few ms after it (this once failed at `>= 50` under the suite).
    let ran_ms = h.wait().unwrap().0;
    assert!((25..10_000).contains(&ran_ms), "ran {ran_ms} ms");
}

#[test]
fn progress_is_reported_as_results_are_taken() {
    let pool = Pool::new(2).unwrap();
    let seen: Arc<Mutex<Vec<MapProgress>>> = Arc::default();
    let log = Arc::clone(&seen);
    let opts = CallOptions::new()
        .chunk_size(3)
        .progress(move |p| log.lock().unwrap().push(p));
    assert_eq!(pool.with(opts.clone()).map(inc, 0..10).unwrap().len(), 10);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 10);
        assert!(
            seen.iter()
                .enumerate()
                .all(|(k, p)| p.done == k + 1 && p.total == Some(10))
        );
    }
    seen.lock().unwrap().clear();
    // A lazy input: the total is known once it has all been pulled.
    let n = pool
        .with(opts)
        .imap(inc, (0..10_000).filter(|_| true))
        .unwrap()
        .count();
    assert_eq!(n, 10_000);
    let seen = seen.lock().unwrap();
    let last = seen.last().map(|p| (p.done, p.total));
    assert_eq!(last, Some((10_000, Some(10_000))));
    assert_eq!(seen.first().map(|p| p.total), Some(None));
}
