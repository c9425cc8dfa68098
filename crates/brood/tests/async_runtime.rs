//! A tokio runtime dropped while brood children run: nothing hangs, and each
//! child's `OnDrop` applies as the tasks holding its handles are dropped.
#![cfg(feature = "tokio")]

mod support;

use brood::os::PidFd;
use brood::{Command, OnDrop};
use std::time::{Duration, Instant};
use support::*;

fn check_runtime_drop(rt: tokio::runtime::Runtime) {
    let mut cleanup = Cleanup::default();
    let killed = Command::new("sleep")
        .arg("30")
        .on_drop(OnDrop::Kill)
        .spawn()
        .unwrap();
    let termed = Command::new("sleep")
        .arg("30")
        .on_drop(OnDrop::Terminate {
            grace: Duration::from_secs(1),
        })
        .spawn()
        .unwrap();
    let detached = Command::new("sleep").arg("30").spawn().unwrap();
    let fds: Vec<PidFd> = [&killed, &termed, &detached]
        .iter()
        .map(|p| PidFd::open(cleanup.add(p.pid())).unwrap())
        .collect();
    let detached_child = detached.child().clone();
    let (started, mut waiting) = tokio::sync::mpsc::unbounded_channel();
    for p in [killed, termed, detached] {
        // Each task owns its child's last handle and waits on it.
        let started = started.clone();
        rt.spawn(async move {
            let _ = started.send(());
            let _ = p.child().wait_async().await;
            drop(p);
        });
    }
    // Every task runs (and is about to wait) before the runtime goes.
    rt.block_on(async {
        for _ in 0..3 {
            waiting.recv().await;
        }
    });
    let dropped = Instant::now();
    drop(rt);
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "dropping the runtime hung"
    );
    assert!(
        fds[0].wait_exited(Some(Duration::from_secs(5))).unwrap(),
        "Kill did not apply"
    );
    assert!(
        fds[1].wait_exited(Some(Duration::from_secs(5))).unwrap(),
        "Terminate did not apply"
    );
    assert!(
        !fds[2]
            .wait_exited(Some(Duration::from_millis(100)))
            .unwrap(),
        "Detach was ended"
    );
    // The detached child is still brood's, and still waitable without tokio.
    detached_child.kill().unwrap();
    assert_eq!(detached_child.wait().unwrap().exitcode(), -9);
    cleanup.0.clear();
}

#[test]
fn dropping_a_current_thread_runtime_applies_the_policies() {
    check_runtime_drop(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
}

#[test]
fn dropping_a_multi_thread_runtime_applies_the_policies() {
    check_runtime_drop(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
}
