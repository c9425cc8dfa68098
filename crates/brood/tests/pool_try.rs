//! `Pool::try_map`: all values, or the first failure with its item's index —
//! observed on real workers (a panic, a death, a busy worker left behind).

mod support;

use brood::{CallOptions, Error, Pool, TaskError};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

fn square(x: u64) -> u64 {
    x * x
}

fn panics_at_three(x: u32) -> u32 {
    if x == 3 {
        panic!("three is right out");
    }
    x
}

/// Item 0 fails at once; item 1 sleeps long (bounded, so that a wrong
/// implementation fails the test rather than hang it) and says its pid.
fn fail_or_linger(x: u32) -> u32 {
    if x == 0 {
        panic!("failed first");
    }
    std::thread::sleep(Duration::from_secs(60));
    std::process::id()
}

fn die(x: i32) -> i32 {
    if x == 1 {
        brood::exit_now(7);
    }
    x
}

fn base(n: u64) -> u64 {
    n
}

fn add(base: &u64, x: u64) -> u64 {
    base + x
}

#[test]
fn all_values_in_input_order() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.try_map(square, 0..100).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.try_map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
}

#[test]
fn a_panic_gives_its_index_and_message() {
    let pool = Pool::builder(2).chunk_size(1).build().unwrap();
    match pool.try_map(panics_at_three, 0..6) {
        Err(e @ Error::TaskFailed { .. }) => {
            let text = e.to_string();
            let Error::TaskFailed { index, source } = e else {
                unreachable!()
            };
            assert_eq!(index, 3);
            assert!(
                matches!(&source, TaskError::Panicked { message, .. } if message == "three is right out"),
                "{source:?}"
            );
            assert!(
                text.starts_with("item 3 of the pool call failed: the task panicked"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The pool goes on.
    assert_eq!(pool.try_map(panics_at_three, [1, 2]).unwrap(), [1, 2]);
}

#[test]
fn a_dead_worker_gives_its_index_and_status() {
    let pool = Pool::builder(2).chunk_size(1).build().unwrap();
    let before = pool.worker_pids();
    match pool.try_map(die, [0, 1, 2]) {
        Err(Error::TaskFailed {
            index: 1,
            source: TaskError::WorkerDied { pid, status, .. },
        }) => {
            assert!(before.contains(&pid), "{pid} not in {before:?}");
            assert_eq!(status.and_then(|s| s.code()), Some(7));
            assert!(!exists(pid));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.try_map(die, [0, 2]).unwrap(), [0, 2]);
}

/// The call ends at the first failure: it does not wait for the item still
/// running, whose worker is killed (and reaped) before the call returns.
#[test]
fn the_first_failure_ends_the_call_and_its_busy_worker() {
    let pool = Pool::builder(2).chunk_size(1).build().unwrap();
    let before = pool.worker_pids();
    let t = Instant::now();
    let err = pool.try_map(fail_or_linger, [0, 1]).unwrap_err();
    assert!(matches!(err, Error::TaskFailed { index: 0, .. }), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "waited {:?}",
        t.elapsed()
    );
    let gone: Vec<u32> = before.iter().copied().filter(|&p| !exists(p)).collect();
    assert_eq!(gone.len(), 1, "one busy worker killed: {before:?}");
    // Replaced at the next call.
    assert_eq!(pool.try_map(square, [3]).unwrap(), [9]);
    assert_eq!(pool.worker_pids().len(), 2);
}

#[test]
fn with_state_and_with_call_options() {
    let pool = Pool::builder(2).initializer(base, 1000).build().unwrap();
    assert_eq!(pool.try_map_with(add, [1, 2]).unwrap(), [1001, 1002]);
    let opts = CallOptions::new().chunk_size(1);
    assert_eq!(pool.with(opts).try_map_with(add, [5]).unwrap(), [1005]);
    let opts = CallOptions::new().timeout(Duration::from_millis(300));
    let err = pool.with(opts).try_map(fail_or_linger, [1]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TaskFailed {
                index: 0,
                source: TaskError::Timeout { .. }
            }
        ),
        "{err:?}"
    );
}
