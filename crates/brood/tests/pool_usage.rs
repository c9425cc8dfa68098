//! `Pool::usage`: the CPU time a call's items burnt, against what the items
//! measured themselves, and the workers' peak memory against their `VmHWM`
//! in `/proc`.

mod support;

use brood::{Pool, StartMethod};
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// This thread's CPU time (the kernel's count, ns precision).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; the clock id is the kernel's constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Burns `ms` of this thread's CPU time; returns what it burnt, in ns.
fn burn(ms: u64) -> u64 {
    let start = thread_cpu();
    let mut x = 0u64;
    while thread_cpu() - start < Duration::from_millis(ms) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    (thread_cpu() - start).as_nanos() as u64
}

fn inc(x: u32) -> u32 {
    x + 1
}

/// Touches `mib` MiB, and keeps nothing.
fn touch(mib: usize) -> usize {
    let v = vec![1u8; mib << 20];
    std::hint::black_box(&v);
    mib
}

fn vm_hwm(pid: u32) -> u64 {
    brood::os::procfs::usage(pid).unwrap().peak_rss
}

fn end(pool: Pool) {
    let workers = pool.worker_pids();
    pool.close().unwrap();
    for pid in workers {
        assert!(wait_exit(pid, Duration::from_secs(30)), "worker {pid} left");
    }
}

#[test]
fn a_calls_cpu_time_covers_what_its_items_burnt() {
    let pool = Pool::builder(2).chunk_size(1).build().unwrap();
    let before = pool.usage();
    let burnt: Duration = pool
        .map(burn, [200, 200, 200])
        .unwrap()
        .into_iter()
        .map(|r| Duration::from_nanos(r.unwrap()))
        .sum();
    let call = pool.usage().since(&before);
    assert!(burnt >= Duration::from_millis(600), "{burnt:?}");
    // At least what the items measured, and not much more (the worker's
    // own cost of a few items is µs).
    assert!(call.cpu() >= burnt, "{call:?} against {burnt:?}");
    assert!(
        call.cpu() < burnt + Duration::from_millis(100),
        "{call:?} against {burnt:?}"
    );
    // A later call counts its own only.
    let before = pool.usage();
    let burnt = Duration::from_nanos(pool.map(burn, [200]).unwrap()[0].clone().unwrap());
    let call = pool.usage().since(&before);
    assert!(
        call.cpu() >= burnt && burnt >= Duration::from_millis(180),
        "{call:?}"
    );
    assert!(call.cpu() < burnt + Duration::from_millis(100), "{call:?}");
    end(pool);
}

#[test]
fn a_workers_start_is_not_counted() {
    // A re-executed worker spends milliseconds starting; none of it counts.
    let pool = Pool::builder(1)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    assert_eq!(pool.map(inc, [1]).unwrap(), [Ok(2)]);
    let u = pool.usage();
    assert!(u.cpu() < Duration::from_millis(20), "{u:?}");
    end(pool);
}

#[test]
fn the_peak_is_the_largest_workers_high_water_mark() {
    let pool = Pool::builder(2).chunk_size(1).build().unwrap();
    assert_eq!(pool.map(touch, [64, 8]).unwrap(), [Ok(64), Ok(8)]);
    let u = pool.usage();
    let hwm: Vec<u64> = pool.worker_pids().into_iter().map(vm_hwm).collect();
    assert!(u.peak_rss >= 64 << 20, "{u:?}");
    // The largest VmHWM, as of the workers' last results (it only grows).
    assert!(u.peak_rss <= *hwm.iter().max().unwrap(), "{u:?} {hwm:?}");
    end(pool);
}
