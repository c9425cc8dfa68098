//! `OnDrop`: what a child's last dropped handle does, for every kind, observed
//! on real processes through pidfds opened before the drop (the handles are
//! gone, so the process itself is what is watched).

mod support;

use brood::os::PidFd;
use brood::{Command, ForkBuilder, OnDrop, Pool, Process, StartMethod, Stdio, Tree};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// How long `pid` takes to end from now (None: still there after `limit`).
fn ends_within(fd: &PidFd, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    fd.wait_exited(Some(limit))
        .unwrap()
        .then(|| start.elapsed())
}

/// Drops `handle` (the last handle of process `pid`, running now) and says
/// whether the process then ended within 5 s.
fn ends_when_dropped<H>(pid: u32, handle: H, what: &str) {
    let fd = PidFd::open(pid).unwrap();
    assert_eq!(
        ends_within(&fd, Duration::from_millis(50)),
        None,
        "{what}: not running"
    );
    drop(handle);
    assert!(
        ends_within(&fd, Duration::from_secs(5)).is_some(),
        "{what}: still running"
    );
}

/// A shell that ignores SIGTERM and then becomes `sleep 30` (exec keeps the
/// ignored disposition), so only SIGKILL ends it; returned once it ignores
/// SIGTERM (it says so on stdout).
fn deaf(on_drop: OnDrop) -> brood::Popen {
    let mut p = Command::new("sh")
        .args(["-c", "trap '' TERM; echo ready; exec sleep 30"])
        .stdout(Stdio::piped())
        .on_drop(on_drop)
        .spawn()
        .unwrap();
    let line = support::first_line(&mut p);
    assert_eq!(line, "ready\n");
    p
}

#[test]
fn detach_is_the_default_and_leaves_the_child_running() {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    assert_eq!(child.child().policy().on_drop, OnDrop::Detach);
    let pid = child.pid();
    let mut cleanup = Cleanup::default();
    cleanup.add(pid);
    let fd = PidFd::open(pid).unwrap();
    drop(child);
    assert_eq!(ends_within(&fd, Duration::from_millis(200)), None);
    assert!(alive(pid));
}

#[test]
fn kill_applies_when_the_last_clone_goes() {
    let popen = deaf(OnDrop::Kill);
    let fd = PidFd::open(popen.pid()).unwrap();
    let clone = popen.child().clone();
    drop(popen);
    assert_eq!(
        ends_within(&fd, Duration::from_millis(200)),
        None,
        "a clone still holds it"
    );
    drop(clone);
    assert!(
        ends_within(&fd, Duration::from_secs(5)).is_some(),
        "the last handle kills it"
    );
}

#[test]
fn terminate_sends_sigterm_first_and_sigkill_after_the_grace() {
    let grace = Duration::from_millis(400);
    // A child that obeys SIGTERM ends at once, long before the grace.
    let polite = Command::new("sleep")
        .arg("30")
        .on_drop(OnDrop::Terminate { grace })
        .spawn()
        .unwrap();
    let fd = PidFd::open(polite.pid()).unwrap();
    drop(polite);
    let took = ends_within(&fd, Duration::from_secs(5)).unwrap();
    assert!(
        took < grace / 2,
        "SIGTERM should end it at once, took {took:?}"
    );
    // One that ignores it gets SIGKILL once the grace is over — and the drop
    // itself does not block.
    let deaf = deaf(OnDrop::Terminate { grace });
    let fd = PidFd::open(deaf.pid()).unwrap();
    let dropped = Instant::now();
    drop(deaf);
    assert!(
        dropped.elapsed() < Duration::from_millis(50),
        "the drop must not wait for the grace"
    );
    let took = ends_within(&fd, Duration::from_secs(5)).unwrap();
    assert!(
        took >= grace - Duration::from_millis(20),
        "killed before the grace ended: {took:?}"
    );
    assert!(
        took < grace + Duration::from_secs(2),
        "killed late: {took:?}"
    );
}

#[test]
fn with_a_group_the_policy_reaches_a_grandchild() {
    become_subreaper();
    for policy in [
        OnDrop::Kill,
        OnDrop::Terminate {
            grace: Duration::from_millis(200),
        },
    ] {
        let mut p = Command::new("sh")
            .args([
                "-c",
                "sh -c \"trap '' TERM; echo \\$\\$; exec sleep 30\"; wait",
            ])
            .stdout(Stdio::piped())
            .tree(Tree::Group)
            .on_drop(policy)
            .spawn()
            .unwrap();
        let line = support::first_line(&mut p);
        let grandchild: u32 = line.trim().parse().unwrap();
        let mut cleanup = Cleanup::default();
        cleanup.add(grandchild);
        let gfd = PidFd::open(grandchild).unwrap();
        let fd = PidFd::open(p.pid()).unwrap();
        drop(p);
        assert!(
            ends_within(&fd, Duration::from_secs(5)).is_some(),
            "{policy:?}: the child"
        );
        assert!(
            ends_within(&gfd, Duration::from_secs(5)).is_some(),
            "{policy:?}: the grandchild"
        );
        reap_if_ours(grandchild);
    }
}

#[test]
fn fork_with_children_follow_their_policy() {
    let child = ForkBuilder::new()
        .on_drop(OnDrop::Kill)
        .fork_with(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        })
        .unwrap();
    ends_when_dropped(child.pid(), child, "fork_with");
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn processes_of_every_start_method_follow_their_policy() {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        for policy in [
            OnDrop::Kill,
            OnDrop::Terminate {
                grace: Duration::from_millis(300),
            },
        ] {
            let h = Process::new(nap, 30_000)
                .start_method(method)
                .on_drop(policy)
                .start()
                .unwrap();
            ends_when_dropped(h.pid(), h, &format!("{method:?} {policy:?}"));
        }
    }
}

#[test]
fn a_dropped_pool_applies_the_policy_to_its_workers() {
    for policy in [
        OnDrop::Kill,
        OnDrop::Terminate {
            grace: Duration::from_millis(300),
        },
    ] {
        let pool = Pool::builder(2)
            .start_method(StartMethod::Fork)
            .on_drop(policy)
            .build()
            .unwrap();
        let fds: Vec<PidFd> = pool
            .worker_pids()
            .into_iter()
            .map(|p| PidFd::open(p).unwrap())
            .collect();
        assert_eq!(fds.len(), 2);
        for fd in &fds {
            assert_eq!(
                ends_within(fd, Duration::from_millis(50)),
                None,
                "a worker is not running"
            );
        }
        let dropped = Instant::now();
        drop(pool);
        assert!(
            dropped.elapsed() < Duration::from_millis(100),
            "{policy:?}: the drop waited"
        );
        for fd in &fds {
            assert!(
                ends_within(fd, Duration::from_secs(5)).is_some(),
                "{policy:?}"
            );
        }
    }
}

#[test]
fn a_normal_exit_finishes_a_pending_grace() {
    // A re-executed copy of this test drops a deaf child with a long grace and
    // returns from main at once: the exit must SIGKILL it when the grace ends.
    if let Some(out) = std::env::var_os("ONDROP_EXIT_CHILD") {
        let deaf = deaf(OnDrop::Terminate {
            grace: Duration::from_millis(300),
        });
        std::fs::write(out, deaf.pid().to_string()).unwrap();
        drop(deaf);
        std::process::exit(0);
    }
    become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pid");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_normal_exit_finishes_a_pending_grace",
            "--nocapture",
        ])
        .env("ONDROP_EXIT_CHILD", &out)
        .status()
        .unwrap();
    assert!(status.success());
    let pid: u32 = std::fs::read_to_string(&out).unwrap().parse().unwrap();
    // Re-parented to us (a subreaper) if it outlived its parent.
    let gone = !exists(pid) || stat(pid).is_some_and(|(s, _)| s == 'Z');
    reap_if_ours(pid);
    kill_and_reap(pid);
    assert!(gone, "the deaf child outlived its parent's exit");
}
