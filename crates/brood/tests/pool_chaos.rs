//! Chaos: a 20,000-item map while a worker is SIGKILLed every 25 ms. Each item
//! gets exactly one result, every value is right, only the items that were
//! running when their worker died fail (and say so), the pool works
//! afterwards, and no process is left behind.

mod support;

use brood::{Pool, StartMethod, TaskError};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const ITEMS: u64 = 20_000;

/// About 50 µs of work, so that the map lasts long enough for dozens of kills.
fn busy_square(x: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(50);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
    x * x
}

fn chaos(method: StartMethod) {
    let t0 = Instant::now();
    let pool = Pool::builder(2).start_method(method).build().unwrap();
    let seen: Arc<Mutex<HashSet<u32>>> = Arc::default();
    seen.lock().unwrap().extend(pool.worker_pids());
    let done = AtomicBool::new(false);
    let (kills, results) = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let mut kills = 0u32;
            let mut turn = 0usize;
            while !done.load(Ordering::Acquire) {
                // The rate is the test's subject, not a synchronisation.
                std::thread::sleep(Duration::from_millis(25));
                let pids = pool.worker_pids();
                seen.lock().unwrap().extend(&pids);
                if let Some(&pid) = pids.get(turn % pids.len().max(1)) {
                    turn += 1;
                    // A pidfd: the pid cannot have been reused meanwhile.
                    let sent = brood::os::PidFd::open(pid)
                        .and_then(|fd| fd.send_signal(brood::Signal::KILL));
                    if sent.is_ok() {
                        kills += 1;
                    }
                }
            }
            kills
        });
        let results: Vec<(usize, Result<u64, TaskError>)> =
            pool.map_unordered(busy_square, 0..ITEMS).unwrap().collect();
        done.store(true, Ordering::Release);
        (killer.join().unwrap(), results)
    });
    let mut cleanup = Cleanup::default();
    for &p in seen.lock().unwrap().iter() {
        cleanup.add(p);
    }

    // Exactly one result per item.
    assert_eq!(results.len() as u64, ITEMS, "{method:?}");
    let mut got = vec![0u8; ITEMS as usize];
    let mut failed = 0u32;
    for (i, r) in &results {
        got[*i] += 1;
        match r {
            Ok(v) => assert_eq!(*v, (*i as u64).pow(2), "{method:?}: item {i}"),
            Err(TaskError::WorkerDied { signal, .. }) => {
                assert_eq!(*signal, Some(brood::Signal::KILL), "{method:?}: item {i}");
                failed += 1;
            }
            Err(e) => panic!("{method:?}: item {i}: {e}"),
        }
    }
    assert!(
        got.iter().all(|&n| n == 1),
        "{method:?}: an item answered twice or never"
    );
    assert!(
        kills >= 10,
        "{method:?}: only {kills} kills landed during the map"
    );
    assert!(
        failed <= kills,
        "{method:?}: {failed} failures for {kills} kills"
    );

    // Still a working pool.
    let after = pool.map(busy_square, 0..100u64).unwrap();
    assert!(
        after
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Ok((i as u64).pow(2)))
    );
    seen.lock().unwrap().extend(pool.worker_pids());
    let everyone: Vec<u32> = seen.lock().unwrap().iter().copied().collect();
    for &p in &everyone {
        cleanup.add(p);
    }
    pool.close().unwrap();
    for &p in &everyone {
        assert!(!exists(p), "{method:?}: worker {p} outlived its pool");
    }
    assert!(zombies_of(me()).is_empty(), "{method:?}: zombies left");
    eprintln!(
        "{method:?}: {ITEMS} items, {kills} kills, {failed} items failed with their worker, \
         {} workers in all, {:?}",
        everyone.len(),
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "{method:?}: too slow"
    );
}

#[test]
fn a_map_survives_a_worker_killed_every_25_ms_fork_server() {
    chaos(StartMethod::ForkServer);
}

#[test]
fn a_map_survives_a_worker_killed_every_25_ms_fork() {
    chaos(StartMethod::Fork);
}

#[test]
fn a_map_survives_a_worker_killed_every_25_ms_spawn() {
    chaos(StartMethod::Spawn);
}
