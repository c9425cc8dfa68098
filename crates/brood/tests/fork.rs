//! The seed's `os.fork` rows (F1–F5) and the core guarantees, on real processes,
//! for `fork_with` and `fork`.

mod support;

use brood::{ExitStatus, ForkBuilder, OnExit, OnParentDeath, Signal, Tree};
use std::time::{Duration, Instant};
use support::*;

/// A parent process (forked from this test) that forks a child with `child`'s
/// policies (the child parks until killed), reports the child's pid, and then
/// runs `then` as the rest of its life. Both are registered in `cleanup`.
fn family(
    cleanup: &mut Cleanup,
    child: ForkBuilder,
    then: impl FnOnce() -> i32 + Send,
) -> (brood::Child, u32) {
    family_of(cleanup, ForkBuilder::new(), child, then)
}

/// [`family`] with the parent's own policies too.
fn family_of(
    cleanup: &mut Cleanup,
    parent: ForkBuilder,
    child: ForkBuilder,
    then: impl FnOnce() -> i32 + Send,
) -> (brood::Child, u32) {
    let mut report = Report::new();
    let fd = report.fd();
    let parent = parent
        .fork_with(move || {
            let child = child.fork_with(|| park()).unwrap();
            say(fd, &child.pid().to_string());
            then()
        })
        .unwrap();
    cleanup.add(parent.pid());
    let grandchild = cleanup.add(report.pid());
    (parent, grandchild)
}

/// F3: the closure runs only in the child; the caller's code after `fork_with`
/// runs once, in the parent.
#[test]
fn f3_fork_with_never_falls_through() {
    let mut report = Report::new();
    let fd = report.fd();
    let child = brood::fork_with(move || {
        say(fd, "child");
        0
    })
    .unwrap();
    // Code after the fork: the child must never get here.
    say(fd, &format!("after-fork pid={}", me()));
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    let text = report.rest();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.iter().filter(|l| **l == "child").count(), 1, "{text}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("after-fork")).count(),
        1,
        "code after fork_with ran more than once: {text}"
    );
}

/// F3 with the raw shape: a child that forgets to exit would run the rest twice;
/// one that ends with `exit_now` does not.
#[test]
fn f3_raw_fork_child_ends_with_exit_now() {
    let mut report = Report::new();
    let fd = report.fd();
    // SAFETY: the child only writes to a pipe and _exits.
    match unsafe { brood::fork() }.unwrap() {
        brood::Fork::Child => {
            say(fd, "child");
            brood::exit_now(4);
        }
        brood::Fork::Parent(child) => {
            assert_eq!(child.wait().unwrap().code(), Some(4));
            say(fd, "parent");
        }
    }
    assert_eq!(report.rest(), "child\nparent\n");
}

/// A panic in the closure ends the child with 101 and never unwinds into the
/// caller's code.
#[test]
fn fork_with_panic_exits_101() {
    let child = brood::fork_with(|| panic!("boom in the child")).unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(101));
}

/// F1 and F2: the parent leaves without waiting; the child keeps running,
/// re-parented (here to this test, a subreaper).
#[test]
fn f1_f2_parent_exits_child_keeps_running() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    // The parent returns at once; the child has the default OnExit::Detach.
    let (parent, grandchild) = family(&mut cleanup, ForkBuilder::new(), || 0);
    let t = Instant::now();
    assert_eq!(parent.wait().unwrap(), ExitStatus::Exited(0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "parent waited for its child"
    );
    assert!(alive(grandchild), "the child died with its parent");
    assert_eq!(
        stat(grandchild).unwrap().1,
        me(),
        "child not re-parented to us"
    );
}

/// F4: SIGTERM or SIGKILL to the parent stops it; the child keeps running.
#[test]
fn f4_signal_to_parent_child_lives() {
    become_subreaper();
    for sig in [Signal::TERM, Signal::KILL] {
        let mut cleanup = Cleanup::default();
        let (parent, grandchild) = family(&mut cleanup, ForkBuilder::new(), || park());
        parent.send_signal(sig).unwrap();
        assert_eq!(parent.wait().unwrap().signal(), Some(sig));
        assert!(alive(grandchild), "child died after {sig} to its parent");
    }
}

/// F4 the other way: a signal to the child ends it; the parent (this test) lives
/// and sees Python's `-N`.
#[test]
fn f4_signal_to_child_parent_lives() {
    for (sig, code) in [(Signal::TERM, -15), (Signal::KILL, -9)] {
        let child = brood::fork_with(|| park()).unwrap();
        child.send_signal(sig).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.exitcode(), code);
        assert_eq!(child.poll().unwrap(), Some(status), "status not kept");
    }
}

/// F5 becomes: no zombie, status kept. The child ends, nobody waits; brood's
/// reaper collects it at once, and the status is there when asked much later.
#[test]
fn f5_no_zombie_status_kept() {
    let child = brood::fork_with(|| 3).unwrap();
    let pid = child.pid();
    // Watch the real process: it must vanish from /proc (reaped), never linger as Z.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stat(pid).is_some() {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still in /proc: {:?}",
            stat(pid)
        );
        std::thread::yield_now();
    }
    assert_eq!(child.poll().unwrap(), Some(ExitStatus::Exited(3)));
    assert_eq!(child.wait().unwrap().exitcode(), 3);
    assert!(!child.is_alive());
    // After reaping, signals are no-ops (never sent to a reused pid).
    child.kill().unwrap();
}

/// Guarantee (b): 2,000 children that end unwaited with their handles dropped
/// leave no zombie.
#[test]
fn g_b_2000_dropped_children_leave_no_zombie() {
    require_own_process();
    let mut pids = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let child = brood::fork_with(|| 0).unwrap();
        pids.push(child.pid());
        drop(child);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| stat(*p).is_some())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 2000 children still in /proc, zombies of ours: {:?}",
            left.len(),
            zombies_of(me())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(zombies_of(me()), Vec::<u32>::new());
}

/// Guarantee (a), fork_with: 100 trials of a parent SIGKILLed right after
/// `fork_with` returned; its child with `OnParentDeath::Signal(KILL)` is gone
/// within 1 s each time.
#[test]
fn g_a_parent_sigkilled_child_follows_100_times() {
    become_subreaper();
    for trial in 0..100 {
        let mut cleanup = Cleanup::default();
        let dies_with_parent = ForkBuilder::new()
            .on_parent_death(OnParentDeath::Signal(Signal::KILL))
            .clone();
        let (parent, grandchild) = family(&mut cleanup, dies_with_parent, || park());
        parent.kill().unwrap();
        assert!(
            wait_exit(grandchild, Duration::from_secs(1)),
            "trial {trial}: child {grandchild} outlived its SIGKILLed parent"
        );
    }
}

/// Guarantee (a), thread variant: a child with a parent-death signal, started
/// from a thread that then ends, lives on until the parent process dies.
#[test]
fn g_a_spawning_thread_exit_does_not_kill_child() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let mut report = Report::new();
    let fd = report.fd();
    let parent = brood::fork_with(move || {
        let worker = std::thread::spawn(|| {
            let child = ForkBuilder::new()
                .on_parent_death(OnParentDeath::Signal(Signal::KILL))
                .fork_with(|| park())
                .unwrap();
            (child.pid(), rustix::thread::gettid().as_raw_nonzero().get())
        });
        let (pid, tid) = worker.join().unwrap();
        // pthread_join can return before the kernel has finished the thread's
        // exit (and so before a parent-death signal would be sent): wait until
        // the thread is gone from /proc, which happens after that point.
        while std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
            std::thread::yield_now();
        }
        say(fd, &pid.to_string());
        park()
    })
    .unwrap();
    cleanup.add(parent.pid());
    let grandchild = cleanup.add(report.pid());
    // The spawning thread has fully exited; the child must still be alive.
    assert!(
        alive(grandchild),
        "child died with the thread that spawned it"
    );
    assert_eq!(stat(grandchild).unwrap().1, parent.pid());
    parent.kill().unwrap();
    assert!(
        wait_exit(grandchild, Duration::from_secs(1)),
        "child outlived its SIGKILLed parent"
    );
}

/// Guarantee (c): SIGCHLD set to SIG_IGN makes the kernel reap our child; brood
/// says so on every query and never claims the child is running.
#[test]
fn g_c_sigchld_ignored_gives_reaped_elsewhere() {
    require_own_process();
    // SAFETY: setting SIGCHLD's disposition; this test process is alone (nextest).
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let child = brood::fork_with(|| 0).unwrap();
    let err = child.wait().unwrap_err();
    assert!(
        matches!(err, brood::Error::ReapedElsewhere { pid } if pid == child.pid()),
        "{err}"
    );
    assert!(matches!(
        child.poll(),
        Err(brood::Error::ReapedElsewhere { .. })
    ));
    assert!(!child.is_alive());
    assert!(matches!(
        child.kill(),
        Err(brood::Error::ReapedElsewhere { .. })
    ));
    // SAFETY: restoring the default disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Guarantee (c): a foreign `waitpid(-1)` that reaps our child first. The race
/// between it and brood's reaper is real, so each round checks that exactly one
/// of them got the status and that brood's answer agrees; the foreign waiter is
/// already blocked in the kernel when the child ends, so it wins almost always.
#[test]
fn g_c_foreign_waitpid_gives_reaped_elsewhere() {
    require_own_process();
    let mut foreign_won = false;
    for _ in 0..50 {
        let mut report = Report::new();
        let fd = report.fd();
        let child = brood::fork_with(move || {
            say(fd, "up");
            park()
        })
        .unwrap();
        assert_eq!(report.line(), "up");
        let pid = child.pid();
        let waiter = std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: waitpid(-1) with a valid status pointer: the foreign code.
            let got = unsafe { libc::waitpid(-1, &mut status, 0) };
            (got, status)
        });
        // Let the waiter block in the kernel first: it shows as sleeping in wait4.
        wait_for_thread_in_wait(&waiter);
        // SAFETY: a raw kill of our own child, as foreign code would do.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let (got, _) = waiter.join().unwrap();
        match child.wait() {
            Err(brood::Error::ReapedElsewhere { pid: p }) => {
                assert_eq!(
                    got, pid as i32,
                    "brood says reaped elsewhere, but it was not"
                );
                assert_eq!(p, pid);
                assert!(matches!(
                    child.poll(),
                    Err(brood::Error::ReapedElsewhere { .. })
                ));
                assert!(matches!(
                    child.kill(),
                    Err(brood::Error::ReapedElsewhere { .. })
                ));
                foreign_won = true;
                break;
            }
            Ok(status) => {
                assert_eq!(status.signal(), Some(Signal::KILL));
                assert_eq!(got, -1, "both brood and waitpid(-1) reaped the child");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        foreign_won,
        "the foreign waitpid never won the race in 50 rounds"
    );
}

fn wait_for_thread_in_wait(handle: &std::thread::JoinHandle<(i32, i32)>) {
    use std::os::unix::thread::JoinHandleExt;
    let _ = handle.as_pthread_t();
    // Find the thread among our tasks whose wchan is do_wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let in_wait = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("wait"))
                    && std::fs::read_to_string(t.path().join("syscall"))
                        .is_ok_and(|s| s.starts_with("61 ") || s.starts_with("247 "))
            });
        if in_wait || Instant::now() > deadline {
            return;
        }
        std::thread::yield_now();
    }
}

/// Guarantee (d): `terminate_timeout` kills a child that ignores SIGTERM once the
/// grace has passed, and not before.
#[test]
fn g_d_terminate_timeout_escalates() {
    let mut report = Report::new();
    let fd = report.fd();
    let child = brood::fork_with(move || {
        ignore_term();
        say(fd, "ready");
        park()
    })
    .unwrap();
    assert_eq!(report.line(), "ready");
    let grace = Duration::from_millis(300);
    let t = Instant::now();
    let status = child.terminate_timeout(grace).unwrap();
    assert!(
        t.elapsed() >= grace,
        "killed before the grace: {:?}",
        t.elapsed()
    );
    assert_eq!(status.signal(), Some(Signal::KILL));
}

/// Guarantee (e): with `Tree::Group`, `kill` reaches a grandchild.
#[test]
fn g_e_group_kill_reaches_grandchild() {
    become_subreaper();
    for tree in [Tree::Group, Tree::Session] {
        let mut cleanup = Cleanup::default();
        let leader = ForkBuilder::new().tree(tree).clone();
        let (child, grandchild) = family_of(&mut cleanup, leader, ForkBuilder::new(), || park());
        let pgrp = brood::os::procfs::stat(grandchild).unwrap().unwrap().pgrp;
        assert_eq!(pgrp, Some(child.pid()));
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
        assert!(
            wait_exit(grandchild, Duration::from_secs(2)),
            "{tree:?}: grandchild survived the kill"
        );
    }
}

/// Without a group, `kill` reaches the child only (Python's behaviour).
#[test]
fn own_tree_kill_spares_grandchild() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let (child, grandchild) = family(&mut cleanup, ForkBuilder::new(), || park());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(alive(grandchild));
}

/// X1: `exit_now` applies no policy: even an `OnExit::Wait` child is left running.
#[test]
fn x1_exit_now_leaves_children() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let waited = ForkBuilder::new().on_exit(OnExit::Wait).clone();
    let (parent, grandchild) = family(&mut cleanup, waited, || brood::exit_now(0));
    assert_eq!(
        parent.wait_timeout(Duration::from_secs(5)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    assert!(alive(grandchild));
}

/// X2 (`OnExit::Wait`), through each normal way out: `brood::exit`,
/// `std::process::exit`, and returning (the forked child's own exit path).
#[test]
fn x2_exit_waits_for_wait_children() {
    become_subreaper();
    for way in ["brood::exit", "std::process::exit", "return"] {
        let mut cleanup = Cleanup::default();
        let waited = ForkBuilder::new().on_exit(OnExit::Wait).clone();
        let (parent, grandchild) = family(&mut cleanup, waited, move || match way {
            "brood::exit" => brood::exit(0),
            "std::process::exit" => std::process::exit(0),
            _ => 0,
        });
        // The parent must still be there, waiting: give it every chance to leave.
        assert_eq!(
            parent.wait_timeout(Duration::from_millis(300)).unwrap(),
            None,
            "{way}: parent left without waiting for its OnExit::Wait child"
        );
        assert!(alive(grandchild));
        // SAFETY: killing the grandchild this test started.
        unsafe { libc::kill(grandchild as i32, libc::SIGKILL) };
        assert_eq!(
            parent.wait_timeout(Duration::from_secs(5)).unwrap(),
            Some(ExitStatus::Exited(0)),
            "{way}: parent did not leave once its child ended"
        );
    }
}

/// X2 (`OnExit::Terminate`): a child that obeys SIGTERM ends at once; one that
/// ignores it is SIGKILLed after the grace — the parent's exit never hangs.
#[test]
fn x2_exit_terminates_terminate_children() {
    become_subreaper();
    for ignores_term in [false, true] {
        let mut cleanup = Cleanup::default();
        let mut report = Report::new();
        let fd = report.fd();
        let grace = Duration::from_millis(400);
        let parent = brood::fork_with(move || {
            // The child must have set up its SIGTERM disposition before we exit
            // (and send it SIGTERM): it tells us on a pipe of our own.
            let (mut ready_r, ready_w) = std::io::pipe().unwrap();
            let ready_fd = std::os::fd::AsRawFd::as_raw_fd(&ready_w);
            let child = ForkBuilder::new()
                .on_exit(OnExit::Terminate { grace })
                .fork_with(move || {
                    if ignores_term {
                        ignore_term();
                    }
                    say(ready_fd, "ready");
                    park()
                })
                .unwrap();
            drop(ready_w);
            let mut byte = [0u8; 1];
            std::io::Read::read_exact(&mut ready_r, &mut byte).unwrap();
            say(fd, &child.pid().to_string());
            brood::exit(0)
        })
        .unwrap();
        cleanup.add(parent.pid());
        let grandchild = cleanup.add(report.pid());
        let t = Instant::now();
        assert_eq!(
            parent.wait_timeout(Duration::from_secs(5)).unwrap(),
            Some(ExitStatus::Exited(0))
        );
        let took = t.elapsed();
        assert!(!exists(grandchild) || stat(grandchild).is_some_and(|(s, _)| s == 'Z'));
        wait_exit(grandchild, Duration::from_secs(1));
        if ignores_term {
            assert!(
                took >= grace - Duration::from_millis(50),
                "killed early: {took:?}"
            );
        } else {
            assert!(
                took < grace,
                "a SIGTERM-obeying child took the whole grace: {took:?}"
            );
        }
    }
}

/// `signals::graceful`: SIGTERM to the parent applies its children's `OnExit`,
/// and the parent still dies *by SIGTERM*.
#[test]
fn graceful_sigterm_applies_on_exit() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let mut report = Report::new();
    let fd = report.fd();
    let parent = brood::fork_with(move || {
        brood::signals::graceful(&[Signal::TERM]).unwrap();
        let child = ForkBuilder::new()
            .on_exit(OnExit::TERMINATE)
            .fork_with(|| park())
            .unwrap();
        say(fd, &child.pid().to_string());
        park()
    })
    .unwrap();
    cleanup.add(parent.pid());
    let grandchild = cleanup.add(report.pid());
    let t = Instant::now();
    parent.terminate().unwrap();
    assert_eq!(parent.wait().unwrap().signal(), Some(Signal::TERM));
    // The child obeys SIGTERM (graceful's handler must not be inherited), so the
    // parent does not sit out the 1 s grace.
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        wait_exit(grandchild, Duration::from_secs(2)),
        "OnExit::Terminate not applied"
    );
}

#[test]
fn graceful_refuses_sigkill() {
    assert!(matches!(
        brood::signals::graceful(&[Signal::KILL]),
        Err(brood::Error::Uncatchable {
            signal: Signal::KILL
        })
    ));
}

/// Several threads wait for and signal one child at once; all see one status.
#[test]
fn concurrent_waiters_agree() {
    let child = brood::fork_with(|| park()).unwrap();
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let c = child.clone();
            std::thread::spawn(move || c.wait().unwrap())
        })
        .collect();
    let killers: Vec<_> = (0..4)
        .map(|_| {
            let c = child.clone();
            std::thread::spawn(move || c.kill().unwrap())
        })
        .collect();
    for k in killers {
        k.join().unwrap();
    }
    for w in waiters {
        assert_eq!(w.join().unwrap().signal(), Some(Signal::KILL));
    }
}
