//! `SIGCHLD` set to `SIG_IGN`, as many daemons do: the kernel reaps every
//! child itself, so no exit status is ever had. A result that came through the
//! pipe is returned all the same, for every start method; `exitcode()` says
//! `None` (the status is lost) and `poll()` says why. A pool closes cleanly.

mod support;

use brood::{JoinError, Pool, Process, StartMethod};
use std::time::Duration;
use support::*;

brood::init_before_main!();

fn ignore_sigchld() {
    require_own_process();
    // SAFETY: a process-wide disposition, in a test process of its own
    // (nextest); nothing else here waits for children.
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    assert_ne!(old, libc::SIG_ERR);
}

fn double(x: u64) -> u64 {
    x * 2
}

fn boom(_: ()) -> u8 {
    panic!("on purpose")
}

fn results_arrive(method: StartMethod) {
    ignore_sigchld();
    for i in 0..20 {
        let h = Process::new(double, i)
            .start_method(method)
            .start()
            .unwrap();
        let pid = h.pid();
        assert_eq!(
            h.join()
                .unwrap_or_else(|e| panic!("{method:?} child {i}: {e}")),
            2 * i
        );
        // The child is gone: the kernel reaped it, nobody has its status.
        assert!(
            wait_exit(pid, Duration::from_secs(10)),
            "{method:?} child {pid} still there"
        );
        assert!(!alive(pid) && zombies_of(me()).is_empty());
        if method != StartMethod::ForkServer {
            assert_eq!(h.exitcode(), None);
            assert!(matches!(h.poll(), Err(JoinError::ReapedElsewhere { .. })));
        }
        assert!(matches!(h.join(), Err(JoinError::AlreadyJoined { .. })));
    }
    // A panic that arrived is told too.
    let h = Process::new(boom, ()).start_method(method).start().unwrap();
    match h.join() {
        Err(JoinError::Panicked { message, .. }) => assert_eq!(message, "on purpose"),
        other => panic!("{method:?}: {other:?}"),
    }
}

#[test]
fn fork_results_arrive_with_sigchld_ignored() {
    results_arrive(StartMethod::Fork);
}

#[test]
fn spawn_results_arrive_with_sigchld_ignored() {
    results_arrive(StartMethod::Spawn);
}

#[test]
fn forkserver_results_arrive_with_sigchld_ignored() {
    results_arrive(StartMethod::ForkServer);
}

fn pool_closes(method: StartMethod) {
    ignore_sigchld();
    let pool = Pool::builder(3).start_method(method).build().unwrap();
    let out: Vec<u64> = pool
        .map(double, 0..50)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(out, (0..50).map(|x| x * 2).collect::<Vec<_>>());
    let pids = pool.worker_pids();
    pool.close()
        .unwrap_or_else(|e| panic!("{method:?}: close: {e}"));
    for p in pids {
        assert!(
            wait_exit(p, Duration::from_secs(10)),
            "worker {p} still there"
        );
    }
    let pool = Pool::builder(2).start_method(method).build().unwrap();
    let pids = pool.worker_pids();
    pool.terminate()
        .unwrap_or_else(|e| panic!("{method:?}: terminate: {e}"));
    for p in pids {
        assert!(
            wait_exit(p, Duration::from_secs(10)),
            "worker {p} still there"
        );
    }
}

#[test]
fn pool_fork_closes_with_sigchld_ignored() {
    pool_closes(StartMethod::Fork);
}

#[test]
fn pool_spawn_closes_with_sigchld_ignored() {
    pool_closes(StartMethod::Spawn);
}

#[test]
fn pool_forkserver_closes_with_sigchld_ignored() {
    pool_closes(StartMethod::ForkServer);
}
