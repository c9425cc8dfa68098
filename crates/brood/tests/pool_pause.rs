//! `Pool::suspend` / `resume` on real workers: every worker (and what its
//! task started) shows `T` in `/proc` while paused, a map that was running
//! finishes after the resume with every result, and the paused time does
//! not count against an item's timeout.

mod support;

use brood::{CallOptions, Pool, Tree};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);

fn state(pid: u32) -> char {
    stat(pid).map_or('?', |(s, _)| s)
}

/// Waits (reading `/proc` or the file system) until `done` holds.
fn until(done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Marks `dir/started-i`, starts a `sleep` of its own (its pid in
/// `dir/child-i`), waits for `dir/go`, then ends its sleep.
fn step_with_child((dir, i): (PathBuf, u32)) -> u32 {
    let mut sleep = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(dir.join(format!("child-{i}")), sleep.id().to_string()).unwrap();
    std::fs::write(dir.join(format!("started-{i}")), b"").unwrap();
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = sleep.kill();
    let _ = sleep.wait();
    i * 2
}

fn started(dir: &Path, i: u32) -> bool {
    dir.join(format!("started-{i}")).exists()
}

fn child_of(dir: &Path, i: u32) -> u32 {
    std::fs::read_to_string(dir.join(format!("child-{i}")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_suspended_pool_stops_every_worker_and_its_map_finishes_after_resume() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder(2)
        .tree(Tree::Group)
        .chunk_size(1)
        .build()
        .unwrap();
    let workers = pool.worker_pids();
    assert_eq!(workers.len(), 2);
    let items: Vec<(PathBuf, u32)> = (0..6).map(|i| (dir.path().to_path_buf(), i)).collect();
    std::thread::scope(|s| {
        let map = s.spawn(|| pool.map(step_with_child, items).unwrap());
        // Both workers are running an item (one each: chunks of one item).
        assert!(until(|| started(dir.path(), 0) && started(dir.path(), 1)));
        pool.suspend().unwrap();
        // Returned only once every worker, and the sleep its task started
        // (in the worker's group), is stopped.
        let grandchildren = [child_of(dir.path(), 0), child_of(dir.path(), 1)];
        for &pid in workers.iter().chain(&grandchildren) {
            assert_eq!(state(pid), 'T', "{pid} of workers {workers:?}");
        }
        assert_eq!(pool.worker_pids(), workers);
        pool.resume().unwrap();
        assert!(until(|| workers
            .iter()
            .chain(&grandchildren)
            .all(|&p| state(p) != 'T')));
        // The items run on (they were waiting for this).
        std::fs::write(dir.path().join("go"), b"").unwrap();
        let out = map.join().unwrap();
        assert_eq!(out, (0..6).map(|i| Ok(i * 2)).collect::<Vec<_>>());
    });
    // The same workers, none replaced.
    assert_eq!(pool.worker_pids(), workers);
    pool.close().unwrap();
    for pid in workers {
        assert!(wait_exit(pid, LONG), "worker {pid} left");
    }
}

/// Marks `dir/started`, then needs 600 ms of running: 60 steps of 10 ms
/// (a step cut by a stop ends at once after the resume).
fn needs_600ms(dir: PathBuf) -> u32 {
    std::fs::write(dir.join("started"), b"").unwrap();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(10));
    }
    7
}

#[test]
fn paused_time_does_not_count_against_a_task_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder(1).tree(Tree::Group).build().unwrap();
    let worker = pool.worker_pids()[0];
    let opts = CallOptions::new().timeout(Duration::from_secs(1));
    std::thread::scope(|s| {
        let map = s.spawn(|| {
            let t0 = Instant::now();
            let out = pool.with(opts).map(needs_600ms, [dir.path().to_path_buf()]);
            (out.unwrap(), t0.elapsed())
        });
        assert!(until(|| dir.path().join("started").exists()));
        pool.suspend().unwrap();
        assert_eq!(state(worker), 'T');
        // The scenario: a pause of 1.5 s in the middle of the item (not a
        // wait for anything).
        std::thread::sleep(Duration::from_millis(1500));
        pool.resume().unwrap();
        let (out, took) = map.join().unwrap();
        assert_eq!(out, [Ok(7)], "after {took:?}");
        assert!(took >= Duration::from_millis(1500), "{took:?}");
    });
    // Not killed for it: the same worker.
    assert_eq!(pool.worker_pids(), [worker]);
    pool.close().unwrap();
    assert!(wait_exit(worker, LONG));
}

#[test]
fn a_timeout_still_fires_on_the_time_run_around_a_pause() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder(1).tree(Tree::Group).build().unwrap();
    let worker = pool.worker_pids()[0];
    // 600 ms of running against 300 ms: it times out, pause or not.
    let opts = CallOptions::new().timeout(Duration::from_millis(300));
    std::thread::scope(|s| {
        let map = s.spawn(|| pool.with(opts).map(needs_600ms, [dir.path().to_path_buf()]));
        assert!(until(|| dir.path().join("started").exists()));
        pool.suspend().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // Not while paused: the worker is still there, stopped.
        assert_eq!(state(worker), 'T');
        pool.resume().unwrap();
        let out = map.join().unwrap().unwrap();
        assert!(
            matches!(out[0], Err(brood::TaskError::Timeout { .. })),
            "{out:?}"
        );
    });
    assert!(wait_exit(worker, LONG), "the timed-out worker was killed");
    pool.terminate().unwrap();
}

/// From `suspend()` to every worker stopped (it returns then), for pools of
/// 8 workers, each worker's group against its cgroup: interleaved rounds,
/// medians.
#[test]
fn measured_suspend_of_a_pool() {
    let trees: &[Tree] = if brood::containment().cgroups {
        &[Tree::Group, Tree::Cgroup]
    } else {
        &[Tree::Group]
    };
    let pools: Vec<Pool> = trees
        .iter()
        .map(|&t| Pool::builder(8).tree(t).build().unwrap())
        .collect();
    let mut took = vec![Vec::new(); trees.len()];
    for _ in 0..7 {
        for (i, pool) in pools.iter().enumerate() {
            let started = Instant::now();
            pool.suspend().unwrap();
            took[i].push(started.elapsed());
            if trees[i] == Tree::Group {
                assert!(pool.worker_pids().iter().all(|&p| state(p) == 'T'));
            }
            pool.resume().unwrap();
        }
    }
    let figures: Vec<String> = trees
        .iter()
        .zip(&mut took)
        .map(|(t, v)| {
            v.sort();
            format!("{t:?} median {:?} (min {:?}, max {:?})", v[3], v[0], v[6])
        })
        .collect();
    println!(
        "Pool::suspend() of 8 workers until all paused, 7 rounds: {}",
        figures.join("; ")
    );
    for pool in pools {
        let workers = pool.worker_pids();
        pool.close().unwrap();
        for pid in workers {
            assert!(wait_exit(pid, LONG));
        }
    }
}
