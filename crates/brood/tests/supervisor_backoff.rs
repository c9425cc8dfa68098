//! `Supervisor` restarts wait a back-off (exponential, capped, jittered,
//! reset after a stable run), and `is_running` turns false the moment it
//! gives up — measured on real children.

mod support;

use brood::{Backoff, ChildSpec, Command, Error, Shutdown, Strategy, Supervisor};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// Polls the supervisor's published state (it has no event to wait on)
/// until `cond` holds, at most 20 s.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A child that fails at once: with the default back-off, its 4th restart
/// comes no sooner than 50 + 100 + 200 ms after the first failure (the
/// lower halves of 100, 200, 400 ms). Without back-off it took milliseconds.
#[test]
fn a_child_that_fails_at_once_restarts_a_few_times_a_second() {
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(60))
        .child(ChildSpec::command("false", || Command::new("false")))
        .start()
        .unwrap();
    let t = Instant::now();
    until("4 restarts", || s.restarts() >= 4);
    let took = t.elapsed();
    s.stop().unwrap();
    eprintln!("4 restarts of `false` took {took:?}");
    assert!(took >= Duration::from_millis(350), "4 restarts in {took:?}");
}

/// A child that runs longer than `reset_after` each time restarts after the
/// first delay every time: 4 restarts of a 200 ms run with a 400 ms back-off
/// take at most 4 x (200 + 400) ms plus start-up, where a doubling back-off
/// would take at least 4 x 200 + 200 + 400 + 800 + 1600 ms = 3.8 s.
#[test]
fn a_stable_run_resets_the_backoff() {
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(60))
        .backoff(
            Backoff::new(Duration::from_millis(400), Duration::from_secs(60))
                .reset_after(Duration::from_millis(100)),
        )
        .child(ChildSpec::command("short", || {
            let mut c = Command::new("sh");
            c.args(["-c", "sleep 0.2; exit 1"]);
            c
        }))
        .start()
        .unwrap();
    let t = Instant::now();
    until("4 restarts", || s.restarts() >= 4);
    let took = t.elapsed();
    s.stop().unwrap();
    eprintln!("4 restarts of a 200 ms run took {took:?}");
    assert!(
        took < Duration::from_millis(3500),
        "{took:?}: the back-off was not reset"
    );
    assert!(took >= Duration::from_millis(3 * 200 + 3 * 200), "{took:?}");
}

/// The supervisor gives up while another child takes its time to stop (it
/// ignores SIGTERM, and its grace is long): `is_running` is false at once,
/// not after the grace.
#[test]
fn is_running_turns_false_as_soon_as_it_gave_up() {
    let mut cleanup = Cleanup::default();
    let report = Report::new();
    let w = report.writer.as_ref().unwrap().try_clone().unwrap();
    let stubborn = ChildSpec::command("stubborn", move || {
        let mut c = Command::new("sh");
        c.args(["-c", "trap '' TERM; echo up; exec sleep 60"])
            .stdout(w.try_clone().unwrap());
        c
    })
    .shutdown(Shutdown::Grace(Duration::from_secs(60)));
    let mut report = report;
    drop(report.writer.take());
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(stubborn)
        .child(ChildSpec::command("broken", || {
            let mut c = Command::new("sleep");
            c.arg("60");
            c
        }))
        .start()
        .unwrap();
    let stubborn = cleanup.add(s.pid("stubborn").unwrap());
    assert_eq!(report.line(), "up", "the trap is set");
    assert!(s.is_running());
    // Its end is one restart too many.
    kill_by_pid(s.pid("broken").unwrap());
    until("is_running() to turn false", || !s.is_running());
    assert!(alive(stubborn), "still in its grace: the stop is under way");
    // End the grace ourselves, then the supervisor says why it gave up.
    kill_by_pid(stubborn);
    let e = s.wait().unwrap_err();
    assert!(
        matches!(e, Error::RestartIntensity { ref child, .. } if child == "broken"),
        "{e}"
    );
}

/// SIGKILL through a pidfd (the supervisor reaps the child).
fn kill_by_pid(pid: u32) {
    brood::os::PidFd::open(pid)
        .and_then(|fd| fd.send_signal(brood::Signal::KILL))
        .unwrap();
}
