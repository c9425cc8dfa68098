//! `Process::start_ready` and `brood::ready()`: a function child says when it
//! is ready, under every start method; one that returns (or hangs) before
//! fails the start and is gone; and how long from `ready()` to the return.

mod support;

use brood::{Error, NotReady, Process, StartMethod, Tree};
use std::path::PathBuf;
use std::time::Duration;
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);
const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// CLOCK_MONOTONIC in ns: the same clock in every process.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; the clock id is the kernel's constant.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) },
        0
    );
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes `marker` (the moment it says ready), says ready, then waits to
/// be killed.
fn serve(marker: PathBuf) -> u32 {
    std::fs::write(&marker, monotonic_ns().to_string()).unwrap();
    assert!(brood::ready());
    // A second call has nobody left to tell.
    assert!(!brood::ready());
    std::thread::sleep(LONG);
    1
}

fn returns_at_once(_: ()) -> u32 {
    7
}

fn never_ready(_: ()) -> u32 {
    std::thread::sleep(LONG);
    0
}

#[test]
fn a_function_child_is_returned_once_it_said_ready_under_every_method() {
    for method in METHODS {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ready");
        let h = Process::new(serve, marker.clone())
            .start_method(method)
            .start_ready(LONG)
            .unwrap();
        // It said ready after writing the marker; it runs on.
        assert!(marker.exists(), "{method:?}");
        assert!(running(h.pid()), "{method:?}");
        h.kill().unwrap();
        assert!(h.join().is_err());
        assert!(!exists(h.pid()));
    }
}

#[test]
fn a_child_that_returns_before_it_is_ready_fails_the_start() {
    for method in METHODS {
        let err = Process::new(returns_at_once, ())
            .start_method(method)
            .name("quick")
            .start_ready(LONG)
            .unwrap_err();
        let Error::NotReady {
            pid, why, program, ..
        } = err
        else {
            panic!("{err}")
        };
        assert!(matches!(why, NotReady::Exited(_)), "{method:?}: {why}");
        assert_eq!(program, "quick");
        assert!(!exists(pid), "{method:?}");
    }
}

#[test]
fn a_child_that_never_gets_ready_is_killed_with_its_tree_at_the_timeout() {
    let err = Process::new(never_ready, ())
        .tree(Tree::Group)
        .start_ready(Duration::from_millis(200))
        .unwrap_err();
    let Error::NotReady { pid, why, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(why, NotReady::Timeout(Duration::from_millis(200)));
    assert!(!exists(pid));
}

fn ready_in_a_task(_: u8) -> bool {
    brood::ready()
}

#[test]
fn ready_outside_such_a_child_does_nothing() {
    assert!(!brood::ready());
    // A pool worker's channel is handed down the same way: not a pipe to
    // write a newline on, and the worker goes on.
    let pool = brood::Pool::new(1).unwrap();
    let worker = pool.worker_pids();
    assert_eq!(
        pool.map(ready_in_a_task, [1, 2]).unwrap(),
        [Ok(false), Ok(false)]
    );
    assert_eq!(pool.worker_pids(), worker);
    pool.close().unwrap();
    assert!(wait_exit(worker[0], LONG));
}

/// From the child's `ready()` to `start_ready`'s return (a notification:
/// the target is 1 ms), fork-server children, median of 15.
#[test]
fn measured_from_ready_to_the_return() {
    let mut took = Vec::new();
    for _ in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ready");
        let h = Process::new(serve, marker.clone())
            .start_method(StartMethod::ForkServer)
            .start_ready(LONG)
            .unwrap();
        let now = monotonic_ns();
        let said: u64 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
        took.push(Duration::from_nanos(now - said));
        h.kill().unwrap();
        let _ = h.join();
    }
    took.sort();
    println!(
        "brood::ready() -> start_ready returned: median {:?} (min {:?}, max {:?}) over 15",
        took[7], took[0], took[14]
    );
}
