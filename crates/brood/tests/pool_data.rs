//! `Pool` for data work: per-worker state from an initializer, and lazy
//! input (`imap`, `imap_unordered`) pulled only as workers need it — observed
//! on real workers (their pids, `/proc/self/statm`).

mod support;

use brood::{Error, Pool, SharedSlice, StartMethod, TaskError};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

brood::init_before_main!();

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

/// A worker's state: the initializer's argument, and the pid it ran in.
fn load(tag: String) -> (String, u32) {
    (tag, std::process::id())
}

/// Reports the state and the pid of the worker that ran the task.
fn look((tag, made_in): &(String, u32), x: u32) -> (String, u32, u32, u32) {
    if x == 7 {
        // SAFETY: the worker kills itself, which is the point of the test.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    (tag.clone(), *made_in, std::process::id(), x)
}

fn inc(x: u64) -> u64 {
    x + 1
}

fn refuse(_: u8) -> u8 {
    panic!("no table to load")
}

#[test]
fn the_initializer_runs_once_in_each_worker_under_every_start_method() {
    for method in METHODS {
        let pool = Pool::builder(2)
            .start_method(method)
            .chunk_size(1)
            .initializer(load, "table".to_string())
            .build()
            .unwrap();
        let first = pool.worker_pids();
        let out = pool.map_with(look, 0..20).unwrap();
        let mut ran_in = HashSet::new();
        for (x, r) in out.into_iter().enumerate() {
            if x == 7 {
                assert!(
                    matches!(r, Err(TaskError::WorkerDied { .. })),
                    "{method:?}: {r:?}"
                );
                continue;
            }
            let (tag, made_in, ran, got) = r.unwrap();
            assert_eq!((tag.as_str(), got as usize), ("table", x));
            // The state was made in the very worker that used it, also in
            // the one that replaced the killed worker.
            assert_eq!(made_in, ran, "{method:?}: state of {made_in} seen in {ran}");
            ran_in.insert(ran);
        }
        assert!(ran_in.len() >= 2, "{method:?}: {ran_in:?}");
        assert!(
            ran_in.iter().any(|p| !first.contains(p)),
            "{method:?}: the replacement ran nothing"
        );
        pool.close().unwrap();
        for p in ran_in {
            assert!(!exists(p), "{method:?}: worker {p} outlived close");
        }
    }
}

#[test]
fn a_failing_initializer_fails_the_start_with_its_message() {
    for method in METHODS {
        let err = Pool::builder(2)
            .start_method(method)
            .initializer(refuse, 0)
            .build()
            .unwrap_err();
        let Error::PoolInitializer { pid, message } = &err else {
            panic!("{method:?}: {err}");
        };
        assert!(message.contains("no table to load"), "{message}");
        assert!(
            message.contains("pool_data.rs"),
            "{method:?}: no location: {message}"
        );
        assert!(
            wait_exit(*pid, std::time::Duration::from_secs(5)),
            "{method:?}: worker {pid} lives on"
        );
    }
}

#[test]
fn a_task_with_state_on_a_pool_without_one_fails_naming_the_type() {
    let pool = Pool::new(1).unwrap();
    let out = pool.map_with(look, [1]).unwrap();
    let Err(TaskError::Failed { reason }) = &out[0] else {
        panic!("{out:?}");
    };
    assert!(reason.contains("(alloc::string::String, u32)"), "{reason}");
    assert!(reason.contains("initializer"), "{reason}");
}

/// Counts what is pulled from it.
fn counted(n: u64, pulled: &Arc<AtomicUsize>) -> impl Iterator<Item = u64> + Send + 'static {
    let pulled = Arc::clone(pulled);
    (0..n).inspect(move |_| {
        pulled.fetch_add(1, Ordering::Relaxed);
    })
}

#[test]
fn imap_pulls_only_as_workers_need_items_and_keeps_order() {
    for method in METHODS {
        let pool = Pool::builder(2).start_method(method).build().unwrap();
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut it = pool.imap(inc, counted(1_000_000, &pulled)).unwrap();
        assert_eq!(it.next(), Some(Ok(1)));
        let at_first = pulled.load(Ordering::Relaxed);
        // Its exact length gives Python's chunk (4,096 here): a few chunks
        // per worker are pulled ahead, never the million.
        assert!(
            at_first <= 40_000,
            "{method:?}: {at_first} items pulled for the first result"
        );
        let mut most_ahead = 0;
        for (k, r) in it.by_ref().take(200_000).enumerate() {
            assert_eq!(r, Ok(k as u64 + 2));
            most_ahead = most_ahead.max(pulled.load(Ordering::Relaxed) - (k + 2));
        }
        assert!(
            most_ahead <= 40_000,
            "{method:?}: {most_ahead} pulled ahead"
        );
        // Dropped before the end: the rest is never pulled.
        drop(it);
        assert!(pulled.load(Ordering::Relaxed) < 250_000);
        assert_eq!(pool.map(inc, [1]).unwrap(), [Ok(2)], "{method:?}");
    }
}

#[test]
fn imap_unordered_gives_every_index_once_and_a_death_costs_one_item() {
    fn die_on_500(x: u32) -> u32 {
        if x == 500 {
            brood::exit_now(9);
        }
        x
    }
    let pool = Pool::builder(2).build().unwrap();
    let mut seen = vec![false; 2000];
    for (i, r) in pool.imap_unordered(die_on_500, 0..2000u32).unwrap() {
        assert!(!seen[i], "index {i} twice");
        seen[i] = true;
        match r {
            Ok(x) => assert_eq!(x as usize, i),
            Err(TaskError::WorkerDied { status, .. }) => {
                assert_eq!(i, 500);
                assert_eq!(status.and_then(|s| s.code()), Some(9));
            }
            Err(e) => panic!("{i}: {e}"),
        }
    }
    assert!(seen.iter().all(|&s| s));
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn imap_over_ten_million_items_keeps_the_parent_small() {
    let pool = Pool::builder(2).chunk_size(4096).build().unwrap();
    // Warm up the pool's buffers, then measure.
    assert_eq!(pool.imap(inc, 0..10_000u64).unwrap().count(), 10_000);
    let before = rss_bytes();
    let mut peak = before;
    let mut sum = 0u64;
    let n = 10_000_000u64;
    for (k, r) in pool
        .imap(inc, (0..n).filter(|&x| x < n))
        .unwrap()
        .enumerate()
    {
        sum += r.unwrap();
        if k % 100_000 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    assert_eq!(sum, n * (n + 1) / 2);
    let growth = peak.saturating_sub(before);
    eprintln!("parent RSS growth over 10M items: {} KiB", growth >> 10);
    assert!(growth < 50 << 20, "grew by {} MiB", growth >> 20);
}

/// Sums its part of the shared data, and says whether this worker has the
/// data mapped read-only from a sealed memfd (`/proc/self/maps`).
fn sum_part((data, part): (SharedSlice<f64>, Range<usize>)) -> (f64, u32, bool) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped_ro = maps.lines().any(|l| {
        l.contains("memfd:brood-shared-data") && l.split_whitespace().nth(1) == Some("r--s")
    });
    (data[part].iter().sum(), std::process::id(), mapped_ro)
}

/// A result built in the worker's shared memory.
fn squares(n: usize) -> SharedSlice<u64> {
    SharedSlice::build(n, |out| {
        for (i, x) in out.iter_mut().enumerate() {
            *x = (i * i) as u64;
        }
    })
    .unwrap()
}

#[test]
fn shared_data_crosses_as_memory_under_every_start_method() {
    const N: usize = 1 << 20;
    let data = SharedSlice::from_fn(N, |i| i as f64).unwrap();
    let expected = (N as f64 - 1.0) * N as f64 / 2.0;
    for method in METHODS {
        let pool = Pool::builder(2)
            .start_method(method)
            .chunk_size(1)
            .build()
            .unwrap();
        for round in 0..2 {
            let parts = (0..16).map(|k| (data.clone(), k * N / 16..(k + 1) * N / 16));
            let out = pool.map(sum_part, parts).unwrap();
            let mut total = 0.0;
            let mut workers = HashSet::new();
            for r in out {
                let (s, pid, mapped_ro) = r.unwrap();
                assert!(
                    mapped_ro,
                    "{method:?}: worker {pid} has no read-only shared mapping"
                );
                total += s;
                workers.insert(pid);
            }
            assert_eq!(total, expected, "{method:?} round {round}");
            // Which workers ran items is the pool's choice (on a loaded
            // machine one may run them all, its sibling's stolen back): each
            // that did had the mapping, checked above.
            assert!(!workers.is_empty(), "{method:?}");
        }
        // Results the workers wrote into shared memory, read here.
        let back = pool.map(squares, [10, 100_000]).unwrap();
        let big = back[1].as_ref().unwrap();
        assert_eq!((big.len(), big[99_999]), (100_000, 99_999 * 99_999));
        assert_eq!(
            back[0].as_ref().unwrap().to_vec(),
            (0..10).map(|i| i * i).collect::<Vec<u64>>()
        );
        pool.close().unwrap();
        // Still readable once the workers are gone.
        assert_eq!(big[12], 144, "{method:?}");
    }
}

#[test]
fn shared_data_outside_a_pool_is_a_clear_error() {
    let data = SharedSlice::from_slice(&[1u8, 2, 3]).unwrap();
    let err = postcard::to_allocvec(&data).unwrap_err();
    assert!(err.to_string().contains("Serde"), "{err}");
    // As a Process argument it cannot cross either: the start says why.
    fn first(d: SharedSlice<u8>) -> u8 {
        d[0]
    }
    let started = brood::Process::new(first, data)
        .start_method(StartMethod::Spawn)
        .start();
    let why = match started {
        Err(e) => e.to_string(),
        Ok(h) => h.join().unwrap_err().to_string(),
    };
    assert!(why.contains("SharedSlice"), "{why}");
}

/// How many shared-data mappings this worker has.
fn shared_mappings(_: u8) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|l| l.contains("memfd:brood-shared-data"))
        .count()
}

#[test]
fn a_worker_keeps_shared_data_between_maps_and_lets_go_when_the_pool_does() {
    for method in METHODS {
        let pool = Pool::builder(1).start_method(method).build().unwrap();
        let data = SharedSlice::from_fn(4096, |i| i as f64).unwrap();
        let part = |_| (data.clone(), 0..4096);
        assert!(pool.map(sum_part, (0..4).map(part)).unwrap()[0].is_ok());
        assert_eq!(
            pool.map(shared_mappings, [0]).unwrap(),
            [Ok(1)],
            "{method:?}"
        );
        // Sent once: a second map reuses the worker's mapping.
        assert!(pool.map(sum_part, (0..4).map(part)).unwrap()[0].is_ok());
        assert_eq!(
            pool.map(shared_mappings, [0]).unwrap(),
            [Ok(1)],
            "{method:?}"
        );
        drop(data);
        assert_eq!(
            pool.map(shared_mappings, [0]).unwrap(),
            [Ok(0)],
            "{method:?}"
        );
    }
}

/// A result past the size that crosses in a `memfd` (1 MiB).
const BIG: usize = 3 << 20;

/// `n` bytes that differ from their neighbours, plus the seed (so that each
/// item's result is its own); item 1 kills its worker instead.
fn big(seed: usize) -> Vec<u8> {
    if seed == 1 {
        // SAFETY: the worker kills itself, which is the point of the test.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    (0..BIG).map(|i| ((i + seed) % 251) as u8).collect()
}

fn intact(seed: usize, v: &[u8]) -> bool {
    v.len() == BIG
        && v.iter()
            .enumerate()
            .all(|(i, &b)| b == ((i + seed) % 251) as u8)
}

fn two_workers_chunk_one(method: StartMethod) -> Pool {
    Pool::builder(2)
        .start_method(method)
        .chunk_size(1)
        .build()
        .unwrap()
}

/// Descriptors of process `pid` ("self": this one) open on a result's memfd.
fn result_fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("memfd:brood-result"))
        .count()
}

#[test]
fn big_results_arrive_intact_by_map_imap_and_submit_and_leave_no_descriptor() {
    for method in METHODS {
        let pool = two_workers_chunk_one(method);
        let out = pool.map(big, [0, 2, 3]).unwrap();
        for (seed, r) in [0, 2, 3].into_iter().zip(&out) {
            assert!(intact(seed, r.as_ref().unwrap()), "{method:?} map {seed}");
        }
        for (seed, r) in [4, 5].into_iter().zip(pool.imap(big, [4, 5]).unwrap()) {
            assert!(intact(seed, &r.unwrap()), "{method:?} imap {seed}");
        }
        let task = pool.submit(big, 6).unwrap();
        assert!(intact(6, &task.wait().unwrap()), "{method:?} submit");
        // It crossed in a memfd, which the handle holds mapped until it goes.
        let mapped = || {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .contains("memfd:brood-result")
        };
        assert!(mapped(), "{method:?}: the result did not cross in a memfd");
        drop((out, task));
        assert!(!mapped(), "{method:?}: a result's memfd is still mapped");
        assert_eq!(
            result_fds("self"),
            0,
            "{method:?}: a result's memfd is open"
        );
        for pid in pool.worker_pids() {
            assert_eq!(result_fds(&pid.to_string()), 0, "{method:?}: worker {pid}");
        }
    }
}

#[test]
fn a_worker_that_dies_among_big_results_fails_only_its_item() {
    for method in METHODS {
        let pool = two_workers_chunk_one(method);
        let out = pool.map(big, [0, 1, 2, 3]).unwrap();
        assert!(
            matches!(out[1], Err(TaskError::WorkerDied { .. })),
            "{method:?}: {:?}",
            out[1].as_ref().map(Vec::len)
        );
        for seed in [0, 2, 3] {
            assert!(
                intact(seed, out[seed].as_ref().unwrap()),
                "{method:?} {seed}"
            );
        }
    }
}

/// Leaves the worker no descriptor to make a `memfd` with, then returns a
/// big result: it crosses through the socket instead.
fn big_without_descriptors(seed: usize) -> Vec<u8> {
    // SAFETY: dup and close of a descriptor this function made; setrlimit
    // and memfd_create with valid arguments.
    unsafe {
        // The lowest free descriptor number: every one below it is open.
        let free = libc::dup(0);
        assert!(free >= 0);
        libc::close(free);
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = free as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        let probe = libc::memfd_create(c"probe".as_ptr(), libc::MFD_CLOEXEC);
        assert!(probe < 0, "the worker could still open a descriptor");
    }
    big(seed)
}

#[test]
fn a_worker_out_of_descriptors_still_sends_its_big_result() {
    for method in METHODS {
        let pool = Pool::builder(1).start_method(method).build().unwrap();
        let out = pool.map(big_without_descriptors, [2]).unwrap();
        assert!(intact(2, out[0].as_ref().unwrap()), "{method:?}");
        // The worker goes on (its limit stays low: the results go inline).
        let out = pool.map(big, [3]).unwrap();
        assert!(intact(3, out[0].as_ref().unwrap()), "{method:?}");
    }
}

/// Sets this process's limit on open files to `free` descriptors past the
/// lowest free one; gives back the old limit.
fn limit_free_fds(free: u64) -> libc::rlimit {
    // SAFETY: dup and close of a descriptor made here; get/setrlimit with
    // valid pointers.
    unsafe {
        let lowest = libc::dup(0);
        assert!(lowest >= 0);
        libc::close(lowest);
        let mut old: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: lowest as libc::rlim_t + free,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
        old
    }
}

#[test]
fn a_pool_out_of_descriptors_fails_a_big_result_by_name_and_goes_on() {
    for method in METHODS {
        let pool = Pool::builder(1).start_method(method).build().unwrap();
        pool.map(inc, 0..4).unwrap();
        for free in 0..4 {
            let old = limit_free_fds(free);
            let got = pool.map(big, [2]);
            // SAFETY: restoring the limit read above.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) };
            // Refused at the start, or the result came, or its item failed
            // saying why: never wrong bytes, never a hang.
            if let Ok(mut out) = got {
                match out.pop().unwrap() {
                    Ok(v) => assert!(intact(2, &v), "{method:?}, {free} free"),
                    Err(TaskError::Failed { reason }) => {
                        assert!(reason.contains("descriptors"), "{method:?}: {reason}")
                    }
                    Err(e) => panic!("{method:?}, {free} free: {e:?}"),
                }
            }
        }
        let out = pool.map(big, [3]).unwrap();
        assert!(intact(3, out[0].as_ref().unwrap()), "{method:?}");
        assert_eq!(result_fds("self"), 0, "{method:?}");
    }
}
