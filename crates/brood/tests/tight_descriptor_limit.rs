//! A program whose soft descriptor limit is tight — 4: one descriptor past
//! the standard three — still starts children of every kind. brood's own
//! set-up in the child (reading its request, a pool worker's channel and
//! progress page) runs with the limit raised, and the function, or the
//! pool's tasks, then run with the program's limit of 4, reported back.
//!
//! And the program's limit is the one it has *now*: a program that set
//! another soft limit after brood raised its own gives that one to the
//! children it starts next, not the one brood found at its raise.
//!
//! One test per kind: each runs in its own process (nextest), so that the
//! raise of one kind does not carry over to another.

mod support;

use brood::{Pool, Process, StartMethod};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// The program's soft limit: room for one descriptor past 0, 1 and 2.
const TIGHT: u64 = 4;

/// The soft limit the program sets after brood raised it.
const LATER: u64 = 512;

fn nofile() -> (u64, u64) {
    let l = getrlimit(Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

fn set_soft(soft: u64) {
    let (_, hard) = nofile();
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: Some(hard),
        },
    )
    .unwrap_or_else(|e| panic!("setrlimit(RLIMIT_NOFILE, {soft}): {e}"));
}

fn soft_limit(_: ()) -> u64 {
    nofile().0
}

fn soft_limit_item(_: u32) -> u64 {
    nofile().0
}

/// The soft limit a `Process` of `method` reports when started while the
/// program's soft limit is `soft`.
fn process_sees(method: StartMethod, soft: u64) -> u64 {
    set_soft(soft);
    let p = Process::new(soft_limit, ())
        .start_method(method)
        .start()
        .unwrap_or_else(|e| panic!("{method:?} start at a soft limit of {soft}: {e}"));
    p.join()
        .unwrap_or_else(|e| panic!("{method:?} at a soft limit of {soft}: {e}"))
}

/// The soft limits a pool's tasks report when the pool was built while the
/// program's soft limit was `soft`; its workers end with it.
fn pool_sees(method: StartMethod, soft: u64) -> Vec<u64> {
    set_soft(soft);
    let pool = Pool::builder(2)
        .start_method(method)
        .build()
        .unwrap_or_else(|e| panic!("{method:?} pool at a soft limit of {soft}: {e}"));
    let seen = pool
        .map(soft_limit_item, 0..4)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{method:?} task: {e}")))
        .collect();
    let pids = pool.worker_pids();
    pool.terminate().unwrap();
    for p in pids {
        assert!(wait_exit(p, Duration::from_secs(10)), "worker {p} left");
    }
    seen
}

fn process_under_a_tight_limit(method: StartMethod) {
    require_own_process();
    let (before, _) = nofile();
    assert_eq!(process_sees(method, TIGHT), TIGHT, "{method:?}");
    // brood raised the limit for the start; the program now sets its own.
    assert_eq!(process_sees(method, LATER), LATER, "{method:?}");
    set_soft(before);
}

fn pool_under_a_tight_limit(method: StartMethod) {
    require_own_process();
    let (before, _) = nofile();
    assert_eq!(pool_sees(method, TIGHT), [TIGHT; 4], "{method:?}");
    assert_eq!(pool_sees(method, LATER), [LATER; 4], "{method:?}");
    set_soft(before);
}

#[test]
fn spawn_process_under_a_tight_limit() {
    process_under_a_tight_limit(StartMethod::Spawn);
}

#[test]
fn forkserver_process_under_a_tight_limit() {
    process_under_a_tight_limit(StartMethod::ForkServer);
}

#[test]
fn fork_process_under_a_tight_limit() {
    process_under_a_tight_limit(StartMethod::Fork);
}

#[test]
fn spawn_pool_under_a_tight_limit() {
    pool_under_a_tight_limit(StartMethod::Spawn);
}

#[test]
fn forkserver_pool_under_a_tight_limit() {
    pool_under_a_tight_limit(StartMethod::ForkServer);
}

#[test]
fn fork_pool_under_a_tight_limit() {
    pool_under_a_tight_limit(StartMethod::Fork);
}
