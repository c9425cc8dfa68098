//! `Supervisor`: each strategy, restart policies, intensity, ordered
//! shutdown, a thousand restarts without a zombie or a descriptor more, the
//! back-off (a child that fails at once restarts a few times a second), and
//! `is_running` turning false as it gives up — observed on real processes
//! (pids, `/proc`, pidfds).

mod support;

use brood::{
    Backoff, Child, ChildSpec, Command, Error, Restart, Shutdown, Strategy, Supervisor,
    SupervisorHandle,
};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

fn sleeper(id: &str) -> ChildSpec {
    ChildSpec::command(id, || {
        let mut c = Command::new("sleep");
        c.arg("60");
        c
    })
    .shutdown(Shutdown::Kill)
}

/// Waits (on the supervisor's published state, polled: it has no event to
/// wait on) until `cond` holds, at most 20 s.
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

fn pids(s: &SupervisorHandle) -> Vec<u32> {
    s.children()
        .into_iter()
        .map(|(_, p)| p.expect("running"))
        .collect()
}

/// No child of this test runs on (each found is given 5 s to end — a
/// keeper leaves just after its parent — and killed by `cleanup` if not).
fn assert_no_live_child(cleanup: &mut Cleanup, what: &str) {
    let left: Vec<u32> = children_of(me())
        .into_iter()
        .filter(|&p| !wait_exit(p, Duration::from_secs(5)))
        .collect();
    for &p in &left {
        cleanup.add(p);
    }
    assert!(left.is_empty(), "{what}: {left:?}");
}

fn kill(pid: u32) {
    brood::os::PidFd::open(pid)
        .and_then(|fd| fd.send_signal(brood::Signal::KILL))
        .unwrap();
}

fn three(strategy: Strategy, cleanup: &mut Cleanup) -> SupervisorHandle {
    let s = Supervisor::new(strategy)
        .intensity(10, Duration::from_secs(10))
        .child(sleeper("a"))
        .child(sleeper("b"))
        .child(sleeper("c"))
        .start()
        .unwrap();
    for p in pids(&s) {
        cleanup.add(p);
    }
    s
}

/// Kills child b of a fresh a, b, c; returns the pids before and after.
fn kill_b(strategy: Strategy) -> (Vec<u32>, Vec<u32>) {
    let mut cleanup = Cleanup::default();
    let s = three(strategy, &mut cleanup);
    let before = pids(&s);
    kill(before[1]);
    until("b's restart", || {
        s.pid("b").is_some_and(|p| p != before[1]) && s.restarts() > 0
    });
    let after = pids(&s);
    for &p in &after {
        cleanup.add(p);
        assert!(alive(p), "{p} runs");
    }
    s.stop().unwrap();
    for p in before.iter().chain(&after) {
        assert!(!alive(*p), "{p} was stopped");
    }
    assert!(zombies_of(me()).is_empty());
    (before, after)
}

#[test]
fn one_for_one_restarts_only_the_child_that_died() {
    let (before, after) = kill_b(Strategy::OneForOne);
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert_eq!(before[2], after[2]);
    assert!(!exists(before[1]), "the dead b was reaped");
}

#[test]
fn one_for_all_restarts_every_child() {
    let (before, after) = kill_b(Strategy::OneForAll);
    for i in 0..3 {
        assert_ne!(before[i], after[i], "child {i}");
        assert!(!exists(before[i]), "the old {i} was stopped and reaped");
    }
}

#[test]
fn rest_for_one_restarts_the_child_and_those_after_it() {
    let (before, after) = kill_b(Strategy::RestForOne);
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert_ne!(before[2], after[2]);
}

#[test]
fn restart_policies_decide_after_a_clean_exit_and_a_failure() {
    let mut cleanup = Cleanup::default();
    let run = |code: i32, restart: Restart| {
        ChildSpec::command(format!("exit {code} {restart:?}"), move || {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("exit {code}")]);
            c
        })
        .restart(restart)
    };
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(60))
        .child(run(0, Restart::Transient))
        .child(run(1, Restart::Transient))
        .child(run(0, Restart::Temporary))
        .child(run(1, Restart::Temporary))
        .child(run(0, Restart::Permanent))
        .start()
        .unwrap();
    // The failing transient and the permanent one restart over and over;
    // the others end for good.
    until("restarts", || s.restarts() >= 10);
    for (_, pid) in s.children() {
        cleanup.add(pid.unwrap_or(0));
    }
    assert!(s.pid("exit 0 Transient").is_none());
    assert!(s.pid("exit 0 Temporary").is_none());
    assert!(s.pid("exit 1 Temporary").is_none());
    s.stop().unwrap();
    assert!(zombies_of(me()).is_empty());
}

#[test]
fn too_many_restarts_give_up_naming_the_child_and_stop_the_others() {
    let mut cleanup = Cleanup::default();
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(60))
        .child(sleeper("steady"))
        .child(ChildSpec::command("crasher", || Command::new("false")))
        .start()
        .unwrap();
    let steady = s.pid("steady").unwrap();
    cleanup.add(steady);
    let t = Instant::now();
    match s.wait() {
        Err(Error::RestartIntensity {
            child, max, last, ..
        }) => {
            assert_eq!(child, "crasher");
            assert_eq!(max, 3);
            assert!(last.contains('1'), "{last}");
        }
        other => panic!("the supervisor ended with {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        !alive(steady),
        "the steady child was stopped when it gave up"
    );
    assert!(zombies_of(me()).is_empty());
}

#[test]
fn children_start_in_order_and_stop_in_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // Starts are the supervisor calling each spec in turn (the processes then
    // run concurrently); stops are sequential, each child gone before the
    // next is signalled, so each one's last words land in order.
    let started = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let child = |id: &str| {
        let log = log.clone();
        let id = id.to_string();
        let started = std::sync::Arc::clone(&started);
        ChildSpec::new(id.clone(), move || {
            started.lock().unwrap().push(id.clone());
            // On SIGTERM says it stopped, then leaves; says it is ready once
            // that is set up (a stop before the trap would be silent).
            let script = format!(
                "trap 'echo stop {id} >> {log}; exit 0' TERM; echo ready >> {log}; \
                 while :; do sleep 0.01; done",
                log = log.display()
            );
            let mut c = Command::new("sh");
            c.args(["-c", &script]).tree(brood::Tree::Group);
            Ok(c.spawn()?.into_child())
        })
        .shutdown(Shutdown::Grace(Duration::from_secs(5)))
    };
    let mut cleanup = Cleanup::default();
    let s = Supervisor::new(Strategy::OneForOne)
        .child(child("a"))
        .child(child("b"))
        .child(child("c"))
        .start()
        .unwrap();
    for p in pids(&s) {
        cleanup.add(p);
    }
    assert_eq!(*started.lock().unwrap(), ["a", "b", "c"]);
    until("every child ready", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 3)
    });
    s.stop().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let stops: Vec<&str> = text.lines().filter(|l| l.starts_with("stop")).collect();
    assert_eq!(stops, ["stop c", "stop b", "stop a"], "{text}");
}

#[test]
fn a_child_that_cannot_start_stops_those_started_and_is_named() {
    let mut cleanup = Cleanup::default();
    let e = Supervisor::new(Strategy::OneForOne)
        .child(sleeper("first"))
        .child(ChildSpec::command("missing", || {
            Command::new("/no/such/program")
        }))
        .start()
        .unwrap_err();
    match e {
        Error::ChildStart { child, .. } => assert_eq!(child, "missing"),
        other => panic!("{other}"),
    }
    assert_no_live_child(&mut cleanup, "the started child was stopped");
    let dup = Supervisor::new(Strategy::OneForOne)
        .child(sleeper("x"))
        .child(sleeper("x"))
        .start()
        .unwrap_err();
    assert!(matches!(dup, Error::DuplicateChild { child } if child == "x"));
}

/// A supervised Rust function that crashes at once.
fn crash(_: ()) {
    std::process::exit(3)
}

#[test]
fn a_thousand_restarts_leave_no_zombie_and_no_descriptor() {
    require_own_process();
    // Counted here: what a supervisor leaves. Fork-server spares would hold
    // two descriptors each, by design (see `set_fork_server_spares`).
    brood::set_fork_server_spares(0);
    // What each open descriptor is (`/proc/self/fd/N -> anon_inode:[pidfd]`).
    let fds = || -> Vec<String> {
        let dir = std::fs::read_dir("/proc/self/fd").unwrap();
        let links = dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok());
        links.map(|l| l.display().to_string()).collect()
    };
    let mut cleanup = Cleanup::default();
    let before = fds();
    let s = Supervisor::new(Strategy::OneForOne)
        .intensity(100_000, Duration::from_secs(60))
        .backoff(Backoff::NONE)
        .child(ChildSpec::process("crash", crash, ()).shutdown(Shutdown::Kill))
        .child(ChildSpec::command("false", || Command::new("false")))
        .start()
        .unwrap();
    let t = Instant::now();
    until("1,000 restarts", || s.restarts() >= 1000);
    let took = t.elapsed();
    for (_, p) in s.children() {
        cleanup.add(p.unwrap_or(0));
    }
    s.stop().unwrap();
    assert!(zombies_of(me()).is_empty());
    // Nothing of ours runs on (the fork server is not our child).
    assert_no_live_child(&mut cleanup, "left running");
    // The reaper thread may still hold the last reference to a child it was
    // woken for (it lets go once it sees the supervisor reaped it): wait for
    // the pidfds to close rather than count once.
    until("every child's pidfd to close", || {
        !fds().iter().any(|f| f.ends_with("[pidfd]"))
    });
    let after = fds();
    // The fork server's connection, its /proc stat (read before a spare is
    // claimed), this process's own /proc stat (read at each start), and the
    // reaper's epoll set and waker may have opened since, once each.
    assert!(
        after.len() <= before.len() + 5,
        "descriptors: {before:?} before, {after:?} after"
    );
    let (before, after) = (before.len(), after.len());
    eprintln!("1,000 restarts in {took:?}; descriptors {before} -> {after}");
}

/// A forked process that supervises two sleepers with `strategy` (after
/// taking over SIGTERM with `graceful` if asked), reports their pids, then
/// lets the supervisor run on and `leave`s. Returns it and the sleepers.
fn supervising_process(
    strategy: Strategy,
    graceful: bool,
    leave: fn() -> i32,
    cleanup: &mut Cleanup,
) -> (Child, Vec<u32>) {
    let mut report = Report::new();
    let fd = report.fd();
    let leaver = brood::fork_with(move || {
        if graceful {
            brood::signals::graceful(&[brood::Signal::TERM]).unwrap();
        }
        let s = Supervisor::new(strategy)
            .intensity(1000, Duration::from_secs(60))
            .child(sleeper("a").shutdown(Shutdown::Grace(Duration::from_secs(2))))
            .child(sleeper("b").shutdown(Shutdown::Grace(Duration::from_secs(2))))
            .start()
            .unwrap();
        for (_, p) in s.children() {
            say(fd, &p.unwrap().to_string());
        }
        std::mem::forget(s); // the process leaves with it running
        leave()
    })
    .unwrap();
    report.close_writer();
    cleanup.add(leaver.pid());
    let sleepers: Vec<u32> = (0..2).map(|_| report.pid()).collect();
    for &p in &sleepers {
        cleanup.add(p);
    }
    (leaver, sleepers)
}

/// The supervised children went with their parent (their OnExit), and
/// nothing was restarted during the sweep: no process of that tree is left.
fn assert_tree_gone(sleepers: &[u32], cleanup: &mut Cleanup) {
    for &p in sleepers {
        assert!(
            wait_exit(p, Duration::from_secs(5)),
            "{p} outlived its parent"
        );
    }
    assert_no_live_child(cleanup, "a restarted child escaped");
}

#[test]
fn at_exit_no_supervised_child_escapes_and_none_restarts() {
    require_own_process();
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let (leaver, sleepers) =
        supervising_process(Strategy::OneForAll, false, || brood::exit(0), &mut cleanup);
    assert!(leaver.wait().unwrap().success());
    assert_tree_gone(&sleepers, &mut cleanup);
}

fn double(x: u32) -> u32 {
    2 * x
}

#[test]
fn a_pool_child_is_not_restarted_with_the_others_and_stops_in_its_turn() {
    let mut cleanup = Cleanup::default();
    let pool = std::sync::Arc::new(brood::Pool::new(2).unwrap());
    let workers = pool.worker_pids();
    for &p in &workers {
        cleanup.add(p);
    }
    let s = Supervisor::new(Strategy::OneForAll)
        .intensity(10, Duration::from_secs(10))
        .child(sleeper("a"))
        .child(ChildSpec::pool("pool", std::sync::Arc::clone(&pool)))
        .child(sleeper("c"))
        .start()
        .unwrap();
    assert_eq!(s.pid("pool"), None);
    let a = s.pid("a").unwrap();
    cleanup.add(a);
    kill(a);
    until("a's restart", || s.pid("a").is_some_and(|p| p != a));
    // a and c restarted; the pool kept its workers and works.
    assert_eq!(pool.worker_pids(), workers);
    assert_eq!(pool.map(double, [1, 2]).unwrap(), [Ok(2), Ok(4)]);
    for (_, p) in s.children() {
        cleanup.add(p.unwrap_or(0));
    }
    s.stop().unwrap();
    for &p in &workers {
        assert!(!alive(p), "worker {p} was terminated with the supervisor");
    }
    assert!(pool.map(double, [1]).is_err(), "the pool is terminated");
}

#[test]
fn a_sigterm_under_graceful_leaves_no_supervised_child_and_none_restarts() {
    require_own_process();
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let (leaver, sleepers) = supervising_process(
        Strategy::OneForOne,
        true,
        || loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        &mut cleanup,
    );
    leaver.terminate().unwrap();
    assert_eq!(leaver.wait().unwrap().signal(), Some(brood::Signal::TERM));
    assert_tree_gone(&sleepers, &mut cleanup);
}

/// How long `s` takes to make 4 restarts from now; then it is stopped.
fn four_restarts(s: SupervisorHandle, of: &str) -> Duration {
    let t = Instant::now();
    until("4 restarts", || s.restarts() >= 4);
    let took = t.elapsed();
    s.stop().unwrap();
    eprintln!("4 restarts of {of} took {took:?}");
    took
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
    let took = four_restarts(s, "`false`");
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
    let took = four_restarts(s, "a 200 ms run");
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
    kill(s.pid("broken").unwrap());
    until("is_running() to turn false", || !s.is_running());
    assert!(alive(stubborn), "still in its grace: the stop is under way");
    // End the grace ourselves, then the supervisor says why it gave up.
    kill(stubborn);
    let e = s.wait().unwrap_err();
    assert!(
        matches!(e, Error::RestartIntensity { ref child, .. } if child == "broken"),
        "{e}"
    );
}
