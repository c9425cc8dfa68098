//! A task whose worker dies after the task finished but before its result
//! went out (here: the task closes every descriptor above 2, the worker's
//! channel with them) used to run again on a fresh worker, forever: about
//! 2,000 workers a second, a full core, and the call's timeout never fired
//! (each run was short). Now an item runs a bounded number of times, and an
//! item's timeout counts from its first start, whatever its workers do.

mod support;

use brood::{CallOptions, Pool, StartMethod, TaskError};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// Closes every descriptor above 2 (the worker's channel and progress page
/// among them), then returns: the worker finished the item and cannot say so.
fn close_everything(pause_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(pause_ms));
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // The directory's own descriptor is gone already: skip what is not open.
        if std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok() {
            // SAFETY: closing a descriptor of this process on purpose; that is the test.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    pause_ms
}

fn echo(x: u64) -> u64 {
    x
}

/// `close_everything(pause_ms)` mapped with `timeout` on a new `Pool(2)` of
/// `method`, on a thread: its results, how long the map took, the pool, and
/// a cleanup of its workers. Fails the test (whose process then ends with
/// its workers) if the map does not return within 30 s.
fn timed_map(
    method: StartMethod,
    timeout: Duration,
    pause_ms: u64,
) -> (Vec<Result<u64, TaskError>>, Duration, Pool, Cleanup) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let pool = Pool::builder(2).start_method(method).build().unwrap();
        let t0 = Instant::now();
        let out = pool
            .with(CallOptions::new().timeout(timeout))
            .map(close_everything, [pause_ms])
            .unwrap();
        let _ = tx.send((out, t0.elapsed(), pool));
    });
    let limit = Duration::from_secs(30);
    let (out, took, pool) = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the map did not return within {limit:?}"));
    let mut cleanup = Cleanup::default();
    for p in pool.worker_pids() {
        cleanup.add(p);
    }
    (out, took, pool, cleanup)
}

fn bounded(method: StartMethod) {
    let timeout = Duration::from_secs(3);
    let (out, took, pool, _cleanup) = timed_map(method, timeout, 0);
    eprintln!("{method:?}: {out:?} after {took:?}");
    match &out[0] {
        Err(TaskError::ResultLost { runs, .. }) => assert_eq!(*runs, 3, "{method:?}"),
        other => panic!("{method:?}: expected ResultLost, got {other:?}"),
    }
    assert!(took < timeout, "{method:?}: the map took {took:?}");
    // The pool works on, and the other items of a map are not charged.
    let again = pool.map(echo, 0..50u64).unwrap();
    assert!(again.iter().enumerate().all(|(i, r)| *r == Ok(i as u64)));
    let mixed = pool.map(close_everything, [0u64]).unwrap();
    assert!(matches!(
        mixed[0],
        Err(TaskError::ResultLost { runs: 3, .. })
    ));
    pool.close().unwrap();
    assert!(zombies_of(me()).is_empty(), "{method:?}: zombies left");
}

#[test]
fn an_item_whose_result_is_lost_runs_three_times_then_fails_fork_server() {
    bounded(StartMethod::ForkServer);
}

#[test]
fn an_item_whose_result_is_lost_runs_three_times_then_fails_fork() {
    bounded(StartMethod::Fork);
}

/// Each run takes 1 s and loses its result; the timeout of 2.5 s counts from
/// the first start, so the third run is cut short by it.
#[test]
fn a_timeout_counts_every_run_of_an_item() {
    let timeout = Duration::from_millis(2500);
    let (out, took, pool, _cleanup) = timed_map(StartMethod::ForkServer, timeout, 1000);
    eprintln!("{out:?} after {took:?}");
    assert!(
        matches!(out[0], Err(TaskError::Timeout { .. })),
        "{:?}",
        out[0]
    );
    assert!(took >= timeout, "returned after {took:?}");
    // The deadline is the first start plus the timeout: what is left over is
    // the poll's wake-up and the kill, not another run.
    assert!(
        took < timeout + Duration::from_millis(900),
        "returned after {took:?}"
    );
    pool.close().unwrap();
}
