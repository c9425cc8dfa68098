//! `Child::wait_async` on real processes: a thousand children awaited at once
//! on one thread without stalling its timers or adding threads, side by side
//! with `tokio::process`, every kind of child, the status shared with the
//! blocking waits, and `ReapedElsewhere` as in the blocking API.
#![cfg(feature = "tokio")]

mod support;

use brood::{Command, Error, Process, StartMethod};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The number of threads of this process, from `/proc/self/task`.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Raises the soft limit on open descriptors to the hard limit (each child
/// holds a pidfd, and each async wait a copy of it).
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    setrlimit(Resource::Nofile, lim).unwrap();
    lim.current.unwrap_or(u64::MAX)
}

#[test]
fn a_thousand_children_awaited_at_once_on_one_thread() {
    const N: usize = 1000;
    let limit = raise_nofile();
    if limit < 3 * N as u64 + 100 {
        eprintln!(
            "skipped: RLIMIT_NOFILE hard limit {limit} is below {}",
            3 * N + 100
        );
        return;
    }
    // Grow the descriptor table now: the kernel doubles it as descriptors
    // are opened, and in a process with several threads each doubling waits
    // for an RCU grace period (`synchronize_rcu` in expand_fdtable), 10-20 ms
    // in which the opening thread — here, the runtime's — is stalled. That is
    // the kernel's cost of 3,000 descriptors, the same for any runtime, not
    // brood's: before this, it was the one tick late by 13-18 ms. The test
    // runs alone (.config/nextest.toml), since it measures timer latency.
    let stdin = std::io::stdin();
    drop(rustix::io::fcntl_dupfd_cloexec(&stdin, 3 * N as i32 + 64).unwrap());
    let rt = current_thread();
    let before = threads();
    let mut cleanup = Cleanup::default();
    let (statuses, worst_late, most_threads) = rt.block_on(async {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A 10 ms timer on the same thread, measuring how late each tick is.
        let ticker = tokio::spawn({
            let done = done.clone();
            async move {
                let (mut worst, mut most) = (Duration::ZERO, 0);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let late = start.elapsed().saturating_sub(Duration::from_millis(10));
                    worst = worst.max(late);
                    most = most.max(threads());
                }
                (worst, most)
            }
        });
        let mut waits = Vec::with_capacity(N);
        for i in 0..N {
            // Odd children exit 3, so that a status given to the wrong waiter shows.
            let script = if i % 2 == 0 {
                "sleep 0.2"
            } else {
                "sleep 0.2; exit 3"
            };
            let child = Command::new("sh")
                .args(["-c", script])
                .spawn()
                .unwrap()
                .into_child();
            cleanup.add(child.pid());
            waits.push(tokio::spawn(child.wait_async()));
            // A spawn is a blocking call; let the timer run between them.
            tokio::task::yield_now().await;
        }
        let mut statuses = Vec::with_capacity(N);
        for w in waits {
            statuses.push(w.await.unwrap().unwrap());
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (worst, most) = ticker.await.unwrap();
        (statuses, worst, most)
    });
    eprintln!(
        "{N} children: threads {before} -> at most {most_threads}; the 10 ms timer at most {worst_late:?} late"
    );
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(
            s.code(),
            Some(if i % 2 == 0 { 0 } else { 3 }),
            "child {i}: {s}"
        );
    }
    for &pid in &cleanup.0 {
        assert!(
            !exists(pid),
            "child {pid} still exists (a zombie?) after its wait"
        );
    }
    assert!(
        most_threads <= before + 2,
        "brood added {} threads (before {before}, at most {most_threads})",
        most_threads - before
    );
    // Alone on this 2-vCPU VM the worst tick is 6-10 ms late; one CI run
    // saw 29 ms (the VM's own noise: the kernel's DAMON thread alone takes
    // ~8 % of a CPU). A runtime blocked by the starts or the waits would be
    // late by the whole second they take, which this still tells apart.
    assert!(
        worst_late <= Duration::from_millis(60),
        "the 10 ms timer was {worst_late:?} late"
    );
    cleanup.0.clear();
}

#[test]
fn brood_and_tokio_process_children_keep_their_own_statuses() {
    let rt = current_thread();
    let mut cleanup = Cleanup::default();
    rt.block_on(async {
        let mut brood_waits = Vec::new();
        let mut tokio_children = Vec::new();
        for i in 0..20 {
            let script = format!("sleep 0.0{i}; exit {}", 10 + i);
            let b = Command::new("sh")
                .args(["-c", &script])
                .spawn()
                .unwrap()
                .into_child();
            cleanup.add(b.pid());
            brood_waits.push(tokio::spawn(b.wait_async()));
            let script = format!("sleep 0.0{i}; exit {}", 50 + i);
            let t = tokio::process::Command::new("sh")
                .args(["-c", &script])
                .spawn()
                .unwrap();
            cleanup.add(t.id().unwrap());
            tokio_children.push(t);
        }
        for (i, w) in brood_waits.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap().code(), Some(10 + i as i32));
        }
        for (i, mut t) in tokio_children.into_iter().enumerate() {
            assert_eq!(t.wait().await.unwrap().code(), Some(50 + i as i32));
        }
    });
    cleanup.0.clear();
}

#[test]
fn async_and_blocking_waiters_see_one_status() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let child = Command::new("sh")
        .args(["-c", "sleep 0.1; exit 5"])
        .spawn()
        .unwrap()
        .into_child();
    let blocking = std::thread::spawn({
        let c = child.clone();
        move || c.wait().unwrap()
    });
    let asyncs: Vec<_> = (0..4).map(|_| rt.spawn(child.wait_async())).collect();
    for a in asyncs {
        assert_eq!(rt.block_on(a).unwrap().unwrap().code(), Some(5));
    }
    assert_eq!(blocking.join().unwrap().code(), Some(5));
    // Once ended, a new wait answers at once.
    assert_eq!(rt.block_on(child.wait_async()).unwrap().code(), Some(5));
}

#[test]
fn dropping_a_wait_future_leaves_the_child_running() {
    let rt = current_thread();
    let child = Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap()
        .into_child();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    let timed_out = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(50), child.wait_async()).await
    });
    assert!(timed_out.is_err());
    assert!(
        alive(child.pid()),
        "dropping the future must not end the child"
    );
    child.kill().unwrap();
    assert_eq!(rt.block_on(child.wait_async()).unwrap().exitcode(), -9);
}

#[test]
fn a_child_reaped_by_the_kernel_is_reaped_elsewhere_for_async_waits_too() {
    // SAFETY: this test runs in a process of its own (nextest); with SIGCHLD
    // ignored the kernel reaps children itself, as a foreign program could.
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let rt = current_thread();
    let child = Command::new("true").spawn().unwrap().into_child();
    let waited = rt.block_on(child.wait_async());
    // SAFETY: restores the saved disposition.
    unsafe { libc::signal(libc::SIGCHLD, old) };
    assert!(
        matches!(waited, Err(Error::ReapedElsewhere { pid }) if pid == child.pid()),
        "{waited:?}"
    );
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms + 1
}

#[test]
fn every_start_method_waits_and_joins_async() {
    let rt = current_thread();
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let h = Process::new(nap, 50).start_method(method).start().unwrap();
        let (joined, status) =
            rt.block_on(async { (h.join_async().await, h.child().wait_async().await) });
        assert_eq!(joined.unwrap(), 51, "{method:?}");
        assert!(status.unwrap().success(), "{method:?}");
        assert!(matches!(
            rt.block_on(h.join_async()),
            Err(brood::JoinError::AlreadyJoined { .. })
        ));
    }
}

#[test]
fn join_async_reports_a_kill_like_join() {
    let rt = current_thread();
    for method in [StartMethod::Fork, StartMethod::ForkServer] {
        let h = Process::new(nap, 30_000)
            .start_method(method)
            .start()
            .unwrap();
        let pid = h.pid();
        let outcome = rt.block_on(async {
            let join = h.join_async();
            // `join!` polls the join first: it waits when the kill comes.
            let kill = async {
                h.kill().unwrap();
            };
            let (joined, ()) = tokio::join!(join, kill);
            joined
        });
        assert!(
            matches!(outcome, Err(brood::JoinError::Killed { pid: p, signal }) if p == pid && signal == brood::Signal::KILL),
            "{method:?}: {outcome:?}"
        );
    }
}

#[test]
fn wait_async_works_without_a_tokio_runtime() {
    // Outside tokio the wait is woken by brood's reaper thread: any executor.
    let child = Command::new("sh")
        .args(["-c", "sleep 0.05; exit 9"])
        .spawn()
        .unwrap()
        .into_child();
    let status = async_io::block_on(child.wait_async()).unwrap();
    assert_eq!(status.code(), Some(9));
}

/// The futures and the map stream are `Send`, so they run on any runtime.
#[test]
fn the_async_api_is_send() {
    fn send<T: Send>(_: &T) {}
    let child = Command::new("true").spawn().unwrap();
    send(&child.child().wait_async());
    child.wait().unwrap();
    let h = Process::new(nap, 0)
        .start_method(StartMethod::Fork)
        .start()
        .unwrap();
    send(&h.join_async());
    h.join().unwrap();
}
