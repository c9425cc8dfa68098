//! `ChildSpec::command_ready`: a supervised child counts as started once it
//! is ready, so the next one starts only then; one that never gets ready
//! fails the start and leaves nothing running. A restart's run counts from
//! readiness for the back-off, and a restart that does not get ready is a
//! failed start.

mod support;

use brood::{Backoff, ChildSpec, Command, Error, NotReady, Ready, Strategy, Supervisor};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);

/// A shell child that does some work, then leaves `marker` and prints
/// `ready`, then sleeps.
fn slow_then_ready(marker: PathBuf) -> impl Fn() -> Command + Send + 'static {
    move || {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; touch \"$M\"; echo ready; exec sleep 30",
        ])
        .env("M", &marker);
        c
    }
}

/// Starts `first` (which leaves `marker` before it is ready) and a `web`
/// child after it under `RestForOne`: `web` starts only once `marker` is
/// there. Then stops both.
fn the_next_starts_once_ready(first: ChildSpec, marker: PathBuf) {
    let id = first.id().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let running = Supervisor::new(Strategy::RestForOne)
        .child(first)
        .child(ChildSpec::command("web", move || {
            seen2.lock().unwrap().push(marker.exists());
            let mut c = Command::new("sleep");
            c.arg("30");
            c
        }))
        .start()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [true]);
    let (first, web) = (running.pid(&id).unwrap(), running.pid("web").unwrap());
    assert!(alive(first) && alive(web));
    running.stop().unwrap();
    assert!(!exists(first) && !exists(web));
}

#[test]
fn each_child_starts_once_the_one_before_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("db-ready");
    let db = ChildSpec::command_ready(
        "db",
        Ready::Stdout("ready".into()),
        LONG,
        slow_then_ready(marker.clone()),
    );
    the_next_starts_once_ready(db, marker);
}

#[test]
fn a_child_that_never_gets_ready_fails_the_start_and_stops_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first-pid");
    let first2 = first.clone();
    let err = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::command("first", move || {
            let mut c = Command::new("sh");
            c.args(["-c", "echo $$ > \"$F\"; exec sleep 30"])
                .env("F", &first2);
            c
        }))
        .child(ChildSpec::command_ready(
            "never",
            Ready::File(dir.path().join("never")),
            Duration::from_millis(200),
            || {
                let mut c = Command::new("sleep");
                c.arg("30");
                c
            },
        ))
        .start()
        .unwrap_err();
    let Error::ChildStart { child, source } = err else {
        panic!("{err}")
    };
    assert_eq!(child, "never");
    let Error::NotReady { pid, why, .. } = *source else {
        panic!("{source}")
    };
    assert_eq!(why, NotReady::Timeout(Duration::from_millis(200)));
    assert!(!exists(pid));
    let first: u32 = std::fs::read_to_string(&first)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_exit(first, Duration::from_secs(10)),
        "first child {first} left running"
    );
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) on the supervisor's child, not yet reaped (the
    // supervisor reaps it once its pidfd says it ended).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
}

/// Waits (reading the supervisor's published pids) for a restarted `id`.
fn next_pid(running: &brood::SupervisorHandle, id: &str, old: u32) -> u32 {
    let deadline = Instant::now() + LONG;
    loop {
        match running.pid(id) {
            Some(pid) if pid != old => return pid,
            _ if Instant::now() > deadline => panic!("{id} was not restarted"),
            _ => std::thread::yield_now(),
        }
    }
}

#[test]
fn a_restart_that_never_gets_ready_is_a_failed_start_and_giving_up_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started-once");
    let running = Supervisor::new(Strategy::OneForOne)
        .backoff(Backoff::NONE)
        .intensity(2, Duration::from_secs(600))
        .child(ChildSpec::command_ready(
            "svc",
            Ready::Stdout("ready".into()),
            LONG,
            move || {
                // Ready the first time; every later start ends before it is.
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    "if [ -e \"$M\" ]; then exit 3; fi; touch \"$M\"; echo ready; exec sleep 30",
                ])
                .env("M", &marker);
                c
            },
        ))
        .start()
        .unwrap();
    let first = running.pid("svc").unwrap();
    sigkill(first);
    // The restart (1 of 2) ends before it is ready: a failed start (2 of 2),
    // its retry too: one too many.
    let err = running.wait().unwrap_err();
    let Error::RestartIntensity {
        child, last, max, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((child.as_str(), *max), ("svc", 2));
    assert!(last.contains("did not become ready"), "{err}");
    assert!(last.contains("ended first"), "{err}");
    assert!(!exists(first));
}

#[test]
fn the_backoff_counts_a_restarts_run_from_readiness() {
    // Each start takes 500 ms to get ready; killed at once after. Counted
    // from its spawn, each run would be "stable" (over 400 ms) and every
    // restart would wait the first delay (150-300 ms); counted from
    // readiness, each ran for nothing and the delays double.
    let running = Supervisor::new(Strategy::OneForOne)
        .backoff(
            Backoff::new(Duration::from_millis(300), Duration::from_secs(10))
                .reset_after(Duration::from_millis(400)),
        )
        .intensity(10, Duration::from_secs(600))
        .child(ChildSpec::command_ready(
            "svc",
            Ready::Stdout("ready".into()),
            LONG,
            || {
                let mut c = Command::new("sh");
                c.args(["-c", "sleep 0.5; echo ready; exec sleep 30"]);
                c
            },
        ))
        .start()
        .unwrap();
    let mut pid = running.pid("svc").unwrap();
    let mut gaps = Vec::new();
    for _ in 0..3 {
        sigkill(pid);
        let killed = Instant::now();
        pid = next_pid(&running, "svc", pid);
        gaps.push(killed.elapsed());
    }
    // The third restart waited 600-1200 ms (the first delay doubled twice),
    // then 500 ms for readiness.
    assert!(gaps[2] >= Duration::from_millis(1100), "{gaps:?}");
    running.stop().unwrap();
    assert!(!exists(pid));
}

/// Leaves `marker` (after some work), says ready, then serves.
fn warm_then_ready(marker: PathBuf) {
    let mut x = 0u64;
    for i in 0..2_000_000u64 {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    std::fs::write(&marker, x.to_string()).unwrap();
    brood::ready();
    std::thread::sleep(LONG);
}

fn returns_unready(_: ()) {}

#[test]
fn a_function_child_starts_the_next_once_it_called_ready() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("warm");
    let cache = ChildSpec::process_ready("cache", warm_then_ready, marker.clone(), LONG);
    the_next_starts_once_ready(cache, marker);
}

#[test]
fn a_function_child_that_returns_unready_fails_the_start() {
    let err = Supervisor::new(Strategy::OneForOne)
        .child(ChildSpec::process_ready("f", returns_unready, (), LONG))
        .start()
        .unwrap_err();
    let Error::ChildStart { child, source } = err else {
        panic!("{err}")
    };
    assert_eq!(child, "f");
    let Error::NotReady { pid, why, .. } = *source else {
        panic!("{source}")
    };
    assert!(matches!(why, NotReady::Exited(_)), "{why}");
    assert!(!exists(pid));
}
