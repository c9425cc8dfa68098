//! Items queued behind a hung task go to an idle worker. A `map_unordered` of
//! 200 short items on `Pool(2)` whose item 11 never returns used to give 63
//! good items back only after the hung item's timeout (7 with
//! `chunk_size(1)`): they waited in the hung worker's queue while the other
//! worker sat idle.

mod support;

use brood::{CallOptions, Pool, TaskError};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const ITEMS: u64 = 200;
const HUNG: u64 = 11;

/// 5 ms of sleep; item 11 never returns.
fn nap(i: u64) -> u64 {
    if i == HUNG {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    std::thread::sleep(Duration::from_millis(5));
    i
}

/// Takes the map's results until every good item came; returns how long
/// that took. The hung item is still running then (dropping the iterator
/// kills its worker). Fails the test (whose workers then die with it) if
/// they do not all come within [`TIMEOUT`] and 10 s.
fn good_items_arrive(opts: CallOptions, what: &'static str) -> Duration {
    good_items_arrive_from(opts, Input::Collection, what)
}

/// What the map is over: a collection (`map_unordered`) or a lazy iterator
/// of unknown length (`imap_unordered`, pulled within its window).
#[derive(Clone, Copy)]
enum Input {
    Collection,
    Lazy,
}

fn good_items_arrive_from(opts: CallOptions, input: Input, what: &'static str) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(collect_good_items(opts, input, what));
    });
    rx.recv_timeout(TIMEOUT + Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: the good items did not all come"))
}

fn collect_good_items(opts: CallOptions, input: Input, what: &str) -> Duration {
    let pool = Pool::new(2).unwrap();
    let mut cleanup = Cleanup::default();
    for p in pool.worker_pids() {
        cleanup.add(p);
    }
    let t0 = Instant::now();
    let mut seen = HashSet::new();
    let call = pool.with(opts);
    let mut results: Box<dyn Iterator<Item = (usize, Result<u64, TaskError>)>> = match input {
        Input::Collection => Box::new(call.map_unordered(nap, 0..ITEMS).unwrap()),
        // `filter` hides the length: the default lazy chunk, and a window.
        Input::Lazy => Box::new(
            call.imap_unordered(nap, (0..ITEMS).filter(|_| true))
                .unwrap(),
        ),
    };
    while seen.len() < (ITEMS - 1) as usize {
        let (i, r) = results.next().expect("the map ended early");
        assert_eq!(r, Ok(i as u64), "{what}: item {i}");
        assert!(seen.insert(i), "{what}: item {i} answered twice");
    }
    let took = t0.elapsed();
    assert!(!seen.contains(&(HUNG as usize)));
    drop(results);
    for p in pool.worker_pids() {
        cleanup.add(p);
    }
    // The pool still works, with every result once.
    let after = pool.map(nap, 100..120).unwrap();
    assert!(
        after
            .iter()
            .enumerate()
            .all(|(k, r)| *r == Ok(100 + k as u64))
    );
    pool.close().unwrap();
    eprintln!("{what}: {} good items in {took:?}", ITEMS - 1);
    took
}

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn items_behind_a_hung_task_go_to_the_idle_worker() {
    let took = good_items_arrive(CallOptions::new().timeout(TIMEOUT), "default chunks");
    assert!(took < TIMEOUT / 2, "the good items took {took:?}");
}

#[test]
fn items_behind_a_hung_task_go_to_the_idle_worker_chunk_1() {
    let opts = CallOptions::new().timeout(TIMEOUT).chunk_size(1);
    let took = good_items_arrive(opts, "chunk 1");
    assert!(took < TIMEOUT / 2, "the good items took {took:?}");
}

/// Without a timeout the hung item would hold them for ever.
#[test]
fn items_behind_a_hung_task_go_to_the_idle_worker_without_a_timeout() {
    let took = good_items_arrive(CallOptions::new(), "no timeout");
    assert!(took < TIMEOUT / 2, "the good items took {took:?}");
}

/// The same over a lazy input, pulled as the workers need items.
#[test]
fn items_behind_a_hung_task_go_to_the_idle_worker_lazy_input() {
    let opts = CallOptions::new().timeout(TIMEOUT);
    let took = good_items_arrive_from(opts, Input::Lazy, "lazy input");
    assert!(took < TIMEOUT / 2, "the good items took {took:?}");
}

/// A timed-out hung item still fails alone, with every other item answered
/// once, when its queue was handed to another worker.
#[test]
fn the_hung_item_still_times_out_alone() {
    let pool = Pool::new(2).unwrap();
    let mut cleanup = Cleanup::default();
    for p in pool.worker_pids() {
        cleanup.add(p);
    }
    let out = pool
        .with(CallOptions::new().timeout(Duration::from_secs(2)))
        .map(nap, 0..40)
        .unwrap();
    for p in pool.worker_pids() {
        cleanup.add(p);
    }
    for (i, r) in out.iter().enumerate() {
        if i as u64 == HUNG {
            assert!(matches!(r, Err(TaskError::Timeout { .. })), "{r:?}");
        } else {
            assert_eq!(*r, Ok(i as u64));
        }
    }
    pool.close().unwrap();
}
