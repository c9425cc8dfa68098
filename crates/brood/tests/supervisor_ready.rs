//! `ChildSpec::command_ready`: a supervised child counts as started once it
//! is ready, so the next one starts only then; one that never gets ready
//! fails the start and leaves nothing running.

mod support;

use brood::{ChildSpec, Command, Error, NotReady, Ready, Strategy, Supervisor};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

#[test]
fn each_child_starts_once_the_one_before_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("db-ready");
    // What the second child's start saw of the first one's readiness.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (seen2, marker2) = (Arc::clone(&seen), marker.clone());
    let running = Supervisor::new(Strategy::RestForOne)
        .child(ChildSpec::command_ready(
            "db",
            Ready::Stdout("ready".into()),
            LONG,
            slow_then_ready(marker),
        ))
        .child(ChildSpec::command("web", move || {
            seen2.lock().unwrap().push(marker2.exists());
            let mut c = Command::new("sleep");
            c.arg("30");
            c
        }))
        .start()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [true]);
    let (db, web) = (running.pid("db").unwrap(), running.pid("web").unwrap());
    assert!(alive(db) && alive(web));
    running.stop().unwrap();
    assert!(!exists(db) && !exists(web));
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
