//! `Command::spawn_ready_async` on real processes: it returns once the sign
//! shows without blocking the runtime's thread (its timers keep running), a
//! child that ends first fails it with its output, and a future given up
//! ends the child it started.
#![cfg(feature = "tokio")]

mod support;

use brood::{Command, Error, NotReady, Ready, Tree};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn every_kind_of_sign_is_awaited_on_the_reactor() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("up");
    let signs = [
        (
            Ready::Stdout("up".into()),
            "sleep 0.1; echo up; exec sleep 30",
        ),
        (Ready::NotifyFd(3), "sleep 0.1; echo >&3; exec sleep 30"),
        (
            Ready::File(marker.clone()),
            "sleep 0.1; touch \"$M\"; exec sleep 30",
        ),
    ];
    current_thread().block_on(async {
        for (sign, script) in signs {
            let p = Command::new("sh")
                .args(["-c", script])
                .env("M", &marker)
                .spawn_ready_async(sign.clone(), LONG)
                .await
                .unwrap();
            assert!(running(p.pid()), "{sign:?}");
            p.kill().unwrap();
            p.wait().unwrap();
        }
    });
}

#[test]
fn the_runtime_thread_is_not_blocked_while_it_waits() {
    current_thread().block_on(async {
        let ticks = Rc::new(Cell::new(0u32));
        let local = tokio::task::LocalSet::new();
        let counter = Rc::clone(&ticks);
        local
            .run_until(async move {
                tokio::task::spawn_local(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        counter.set(counter.get() + 1);
                    }
                });
                let p = Command::new("sh")
                    .args(["-c", "sleep 0.3; echo ready; exec sleep 30"])
                    .spawn_ready_async(Ready::Stdout("ready".into()), LONG)
                    .await
                    .unwrap();
                p.kill().unwrap();
                p.wait().unwrap();
            })
            .await;
        // 300 ms of waiting: a blocked thread would have run no tick at all.
        assert!(ticks.get() >= 5, "{} ticks", ticks.get());
    });
}

#[test]
fn a_child_that_ends_first_fails_with_its_output() {
    current_thread().block_on(async {
        let err = Command::new("sh")
            .args(["-c", "echo cannot bind >&2; exit 3"])
            .spawn_ready_async(Ready::Tcp(1), LONG)
            .await
            .unwrap_err();
        let Error::NotReady { why, tail, pid, .. } = err else {
            panic!("{err}")
        };
        assert!(
            matches!(why, NotReady::Exited(s) if s.code() == Some(3)),
            "{why}"
        );
        assert_eq!(tail, "cannot bind\n");
        assert!(!exists(pid));
    });
}

#[test]
fn a_wait_given_up_ends_the_child_and_its_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let never = dir.path().join("never");
    let pids = current_thread().block_on(async {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $$ $! > \"$F\"; wait"])
            .env("F", &pid_file)
            .tree(Tree::Group);
        let fut = cmd.spawn_ready_async(Ready::File(never), LONG);
        tokio::pin!(fut);
        // Driven until the child wrote its pids, then dropped.
        loop {
            tokio::select! {
                r = &mut fut => panic!("ended: {:?}", r.map(|p| p.pid())),
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            let pids: Vec<u32> = std::fs::read_to_string(&pid_file)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            if pids.len() == 2 {
                break pids;
            }
        }
    });
    for pid in pids {
        assert!(wait_exit(pid, LONG), "{pid} left running");
    }
}

/// Writes its pid to `file`, then says ready only if told to by `ready`.
fn serve((file, ready): (std::path::PathBuf, bool)) {
    std::fs::write(&file, std::process::id().to_string()).unwrap();
    if ready {
        brood::ready();
    }
    std::thread::sleep(LONG);
}

#[test]
fn a_function_child_is_awaited_until_it_said_ready_and_given_up_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pid");
    current_thread().block_on(async {
        let h = brood::Process::new(serve, (file.clone(), true))
            .start_ready_async(LONG)
            .await
            .unwrap();
        assert!(running(h.pid()));
        h.kill().unwrap();
        assert!(h.join().is_err());
    });
    std::fs::remove_file(&file).unwrap();
    // Never ready: the future is dropped once the child runs.
    let pid = current_thread().block_on(async {
        let mut p = brood::Process::new(serve, (file.clone(), false));
        let fut = p.start_ready_async(LONG);
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => panic!("ended: {:?}", r.map(|h| h.pid())),
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                break pid;
            }
        }
    });
    assert!(wait_exit(pid, LONG), "{pid} left running");
}
