//! `Pool`: order, deaths, panics, timeouts, retirement, and that no worker
//! outlives its pool — observed on real processes (pidfds, `/proc`).

mod support;

use brood::{Pool, Signal, StartMethod, TaskError, Tree};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn inc(x: u64) -> u64 {
    x + 1
}

/// Item 7 SIGKILLs its own worker; the others report the worker's pid.
fn kill_on_seven(x: u32) -> (u32, u32) {
    if x == 7 {
        // SAFETY: the worker kills itself, which is the point of the test.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    (x, std::process::id())
}

/// Item 5 ends its worker with `exit(3)`.
fn exit_on_five(x: u32) -> u32 {
    if x == 5 {
        brood::exit_now(3);
    }
    x
}

fn panic_on_three(x: u32) -> (u32, u32) {
    if x == 3 {
        panic!("three is right out");
    }
    (x, std::process::id())
}

fn hang_on_zero(x: u32) -> u32 {
    if x == 0 {
        park();
    }
    x
}

/// Item 0 starts a grandchild, reports its pid on `fd`, and hangs.
fn grandchild_then_hang((fd, x): (i32, u32)) -> u32 {
    if x == 0 {
        let child = brood::Command::new("sleep").arg("30").spawn().unwrap();
        say(fd, &child.pid().to_string());
        park();
    }
    x
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

/// Registers every worker of `pool` for cleanup and returns their pids.
fn watch(pool: &Pool, cleanup: &mut Cleanup) -> Vec<u32> {
    let pids = pool.worker_pids();
    for &p in &pids {
        cleanup.add(p);
    }
    pids
}

#[test]
fn map_keeps_order_and_unordered_gives_every_index() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        let pool = Pool::builder(2).start_method(m).build().unwrap();
        watch(&pool, &mut cleanup);
        let out = pool.map(inc, 0..1000u64).unwrap();
        let values: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(values, (1..=1000).collect::<Vec<_>>(), "{m:?}");

        let mut seen: Vec<(usize, u64)> = pool
            .map_unordered(inc, 0..1000u64)
            .unwrap()
            .map(|(i, r)| (i, r.unwrap()))
            .collect();
        seen.sort();
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().all(|&(i, v)| v == i as u64 + 1), "{m:?}");
        // An empty map is fine too.
        assert!(pool.map(inc, Vec::new()).unwrap().is_empty());
    }
}

#[test]
fn a_worker_killed_mid_task_fails_only_its_item_and_is_replaced() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        let pool = Pool::builder(2).start_method(m).build().unwrap();
        let before = watch(&pool, &mut cleanup);
        let t = Instant::now();
        let out = pool.map(kill_on_seven, 0..40).unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{m:?}: map took {:?}",
            t.elapsed()
        );
        let mut dead = None;
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok((x, _)) => assert_eq!(*x as usize, i),
                Err(TaskError::WorkerDied {
                    pid,
                    signal: Some(Signal::KILL),
                    ..
                }) if i == 7 => dead = Some(*pid),
                Err(e) => panic!("{m:?}: item {i}: {e}"),
            }
        }
        let dead = dead.expect("item 7 failed with WorkerDied");
        assert!(before.contains(&dead));
        // Reaped by brood: not even a zombie.
        assert!(
            !exists(dead),
            "{m:?}: worker {dead} still exists: {:?}",
            stat(dead)
        );
        let after = watch(&pool, &mut cleanup);
        assert_eq!(after.len(), 2);
        assert!(!after.contains(&dead));
        assert!(after.iter().all(|&p| alive(p)));
        // The pool is not poisoned.
        assert_eq!(pool.map(inc, [1, 2]).unwrap(), [Ok(2), Ok(3)]);
    }
}

#[test]
fn a_worker_that_exits_fails_only_its_item() {
    let mut cleanup = Cleanup::default();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    watch(&pool, &mut cleanup);
    let out = pool.map(exit_on_five, 0..12).unwrap();
    for (i, r) in out.iter().enumerate() {
        match r {
            Err(TaskError::WorkerDied {
                signal: None,
                status: Some(st),
                ..
            }) if i == 5 => assert_eq!(st.code(), Some(3)),
            r => assert_eq!(r, &Ok(i as u32)),
        }
    }
    watch(&pool, &mut cleanup);
}

#[test]
fn a_panic_fails_its_item_and_the_worker_goes_on() {
    let mut cleanup = Cleanup::default();
    // The worker is made inside the capture, so it inherits the captured stderr.
    let ((pool, before, out), stderr) = support::capture_stderr(|| {
        let pool = Pool::builder(1)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap();
        let before = watch(&pool, &mut cleanup);
        let out = pool.map(panic_on_three, 0..6).unwrap();
        (pool, before, out)
    });
    assert!(
        !stderr.contains("three is right out"),
        "the panic was printed on the parent's stderr: {stderr:?}"
    );
    for (i, r) in out.iter().enumerate() {
        if i == 3 {
            match r {
                Err(TaskError::Panicked { message, location }) => {
                    assert_eq!(message, "three is right out");
                    let location = location.as_deref().unwrap_or("(none)");
                    assert!(location.contains("pool.rs:"), "{location}");
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert_eq!(r, &Ok((i as u32, before[0])));
        }
    }
    assert_eq!(pool.worker_pids(), before);
}

#[test]
fn a_task_past_its_timeout_fails_and_its_worker_is_killed() {
    let mut cleanup = Cleanup::default();
    let timeout = Duration::from_millis(300);
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .task_timeout(timeout)
        .build()
        .unwrap();
    let before = watch(&pool, &mut cleanup);
    let t = Instant::now();
    let out = pool.map(hang_on_zero, 0..20).unwrap();
    let took = t.elapsed();
    assert!(took >= timeout && took < timeout * 10, "took {took:?}");
    let Err(TaskError::Timeout { pid, timeout: t }) = &out[0] else {
        panic!("{:?}", out[0]);
    };
    assert_eq!(*t, timeout);
    assert!(before.contains(pid));
    assert!(!exists(*pid));
    for (i, r) in out.iter().enumerate().skip(1) {
        assert_eq!(r, &Ok(i as u32));
    }
    let after = watch(&pool, &mut cleanup);
    assert_eq!(after.len(), 2);
    assert!(!after.contains(pid));
}

#[test]
fn a_timeout_with_tree_group_kills_what_the_task_started() {
    become_subreaper();
    let mut cleanup = Cleanup::default();
    let mut report = Report::new();
    let fd = report.fd();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .task_timeout(Duration::from_millis(200))
        .tree(Tree::Group)
        .build()
        .unwrap();
    watch(&pool, &mut cleanup);
    let out = pool
        .map(grandchild_then_hang, (0..4).map(|x| (fd, x)))
        .unwrap();
    let grandchild = cleanup.add(report.pid());
    assert!(
        matches!(out[0], Err(TaskError::Timeout { .. })),
        "{:?}",
        out[0]
    );
    assert_eq!(out[1..], [Ok(1), Ok(2), Ok(3)]);
    assert!(wait_exit(grandchild, Duration::from_secs(1)));
}

#[test]
fn a_worker_killed_between_maps_is_replaced_without_failing_anything() {
    let mut cleanup = Cleanup::default();
    let pool = Pool::builder(2)
        .start_method(StartMethod::ForkServer)
        .build()
        .unwrap();
    let before = watch(&pool, &mut cleanup);
    let fd = pidfd(before[0]).unwrap();
    kill_and_reap(before[0]);
    assert!(exits_within(&fd, Duration::from_secs(1)));
    let out = pool.map(inc, 0..100u64).unwrap();
    assert!(out.iter().enumerate().all(|(i, r)| r == &Ok(i as u64 + 1)));
    let after = watch(&pool, &mut cleanup);
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&before[0]));
}

#[test]
fn workers_retire_after_max_tasks_per_child() {
    for m in [StartMethod::Fork, StartMethod::ForkServer] {
        let mut cleanup = Cleanup::default();
        let pool = Pool::builder(2)
            .start_method(m)
            .max_tasks_per_child(2)
            .build()
            .unwrap();
        watch(&pool, &mut cleanup);
        let out = pool.map(pid_of, 0..10).unwrap();
        let pids: HashSet<u32> = out.into_iter().map(Result::unwrap).collect();
        for &p in &pids {
            cleanup.add(p);
        }
        assert!(pids.len() >= 5, "{m:?}: {pids:?}");
        for p in pids {
            if !pool.worker_pids().contains(&p) {
                assert!(
                    !exists(p),
                    "{m:?}: retired worker {p} lingers: {:?}",
                    stat(p)
                );
            }
        }
    }
}

#[test]
fn drop_and_terminate_and_close_end_every_worker() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        for how in ["drop", "terminate", "close"] {
            let pool = Pool::builder(3).start_method(m).build().unwrap();
            let pids = watch(&pool, &mut cleanup);
            let fds: Vec<_> = pids.iter().map(|&p| pidfd(p).unwrap()).collect();
            assert_eq!(pool.map(inc, [1]).unwrap(), [Ok(2)]);
            match how {
                "drop" => drop(pool),
                "terminate" => {
                    pool.terminate().unwrap();
                    assert!(pool.map(inc, [1]).is_err());
                }
                _ => {
                    pool.close().unwrap();
                    assert!(pool.map(inc, [1]).is_err());
                }
            }
            for (fd, &p) in fds.iter().zip(&pids) {
                assert!(exits_within(fd, Duration::ZERO), "{m:?} {how}: {p} runs");
                assert!(!exists(p), "{m:?} {how}: {p} is {:?}", stat(p));
            }
        }
    }
}

/// A parent process (forked from this test) that builds a pool with `build`,
/// reports its two worker pids and parks. Returns the parent and pidfds of the
/// workers; all of them are registered in `cleanup`.
fn parent_with_pool(
    cleanup: &mut Cleanup,
    build: impl FnOnce() -> Pool + Send,
) -> (brood::Child, Vec<brood::os::PidFd>) {
    let mut report = Report::new();
    let fd = report.fd();
    let parent = brood::fork_with(move || {
        let pool = build();
        for p in pool.worker_pids() {
            say(fd, &p.to_string());
        }
        park()
    })
    .unwrap();
    cleanup.add(parent.pid());
    let workers = [report.pid(), report.pid()];
    let fds = workers.iter().map(|&p| pidfd(p).unwrap()).collect();
    for &p in &workers {
        cleanup.add(p);
    }
    (parent, fds)
}

#[test]
fn workers_die_with_a_sigkilled_parent() {
    for m in [StartMethod::Fork, StartMethod::Spawn] {
        let mut cleanup = Cleanup::default();
        let (parent, fds) = parent_with_pool(&mut cleanup, move || {
            Pool::builder(2).start_method(m).build().unwrap()
        });
        parent.kill().unwrap();
        parent.wait().unwrap();
        for fd in &fds {
            assert!(exits_within(fd, Duration::from_secs(1)), "{m:?}");
        }
    }
}

#[test]
fn sigterm_with_graceful_ends_the_workers() {
    let mut cleanup = Cleanup::default();
    let (parent, fds) = parent_with_pool(&mut cleanup, || {
        brood::signals::graceful(&[Signal::TERM]).unwrap();
        Pool::builder(2)
            .start_method(StartMethod::Fork)
            .build()
            .unwrap()
    });
    parent.terminate().unwrap();
    // The parent applied OnExit::Terminate to the workers, then died of SIGTERM.
    assert_eq!(parent.wait().unwrap().signal(), Some(Signal::TERM));
    for fd in &fds {
        assert!(exits_within(fd, Duration::ZERO));
    }
}

#[test]
fn a_pool_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let mut cleanup = Cleanup::default();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    watch(&pool, &mut cleanup);
    send_sync(&pool);
    std::thread::scope(|s| {
        let a = s.spawn(|| pool.map(inc, 0..500u64).unwrap());
        let b = s.spawn(|| pool.map(inc, 500..1000u64).unwrap());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a.iter().enumerate().all(|(i, r)| r == &Ok(i as u64 + 1)));
        assert!(b.iter().enumerate().all(|(i, r)| r == &Ok(i as u64 + 501)));
    });
}

fn nap_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A read-only query answers at once: `worker_pids` from another thread while
/// a map runs (it used to wait for the whole map).
#[test]
fn worker_pids_answers_while_a_map_runs() {
    let mut cleanup = Cleanup::default();
    let pool = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .build()
        .unwrap();
    let before = watch(&pool, &mut cleanup);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let mapping = s.spawn(|| {
            started_tx.send(()).unwrap();
            pool.map(nap_ms, vec![100u64; 10]).unwrap()
        });
        started_rx.recv().unwrap();
        // The map is under way (each item sleeps 100 ms, 500 ms in all).
        let mut slowest = Duration::ZERO;
        while !mapping.is_finished() {
            let t = Instant::now();
            let pids = pool.worker_pids();
            slowest = slowest.max(t.elapsed());
            assert_eq!(pids, before);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            slowest < Duration::from_millis(50),
            "worker_pids took {slowest:?}"
        );
        assert!(mapping.join().unwrap().into_iter().all(|r| r == Ok(100)));
    });
}

/// Leaks 20 MiB (touched) and says which worker ran it.
fn leak_20_mib(_: u32) -> u32 {
    std::mem::forget(vec![1u8; 20 << 20]);
    std::process::id()
}

#[test]
fn a_worker_over_its_memory_is_retired_after_its_task() {
    for m in METHODS {
        let mut cleanup = Cleanup::default();
        let pool = Pool::builder(1)
            .start_method(m)
            .max_memory_per_child(64 << 20)
            .chunk_size(1)
            .build()
            .unwrap();
        watch(&pool, &mut cleanup);
        let out = pool.map(leak_20_mib, 0..20u32).unwrap();
        let order: Vec<u32> = out.iter().map(|r| *r.as_ref().unwrap()).collect();
        let pids: HashSet<u32> = order.iter().copied().collect();
        for &p in &pids {
            cleanup.add(p);
        }
        // 20 MiB a task under 64 MiB: past it after its 4th task at the
        // latest, a worker finishes the (at most two) it holds and retires.
        for &p in &pids {
            let ran = order.iter().filter(|&&q| q == p).count();
            assert!(ran <= 6, "{m:?}: worker {p} ran {ran} tasks: {order:?}");
        }
        assert!(
            pids.len() >= 4,
            "{m:?}: {} workers ran 20 tasks",
            pids.len()
        );
        pool.close().unwrap();
        for p in pids {
            assert!(!alive(p), "{m:?}: worker {p} outlived its pool");
        }
    }
}
