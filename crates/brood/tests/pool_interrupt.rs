//! Ctrl-C during a pool call: the call returns `Err(Interrupted)` within a
//! second, the workers that ran its items are gone (no orphan), and the pool
//! goes on with fresh ones. Run in a forked copy of the test (the program
//! that is interrupted), observed from outside.

mod support;

use brood::{Error, Pool, StartMethod, TaskError};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// Says its pid on the FIFO, then waits forever.
fn busy(fifo: String) -> u32 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // One write(2), so that two workers' lines do not interleave.
    f.write_all(format!("{}\n", std::process::id()).as_bytes())
        .unwrap();
    park()
}

fn inc(x: u32) -> u32 {
    x + 1
}

fn fifo(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("busy");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path.to_string_lossy().into_owned()
}

/// The pids of the first `n` workers that say they are busy on the FIFO.
fn busy_workers(fifo: &str, n: usize) -> Vec<u32> {
    let mut lines = BufReader::new(std::fs::File::open(fifo).unwrap()).lines();
    (0..n)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            line.parse()
                .unwrap_or_else(|_| panic!("{line:?} on the FIFO"))
        })
        .collect()
}

/// In a forked copy: a pool of 2 busy with 3 endless items, interrupted by
/// the test; reports how the call ended and whether the pool still works.
fn interrupted_program(method: StartMethod, own_group: bool, to_group: bool) {
    require_own_process();
    let dir = tempfile::tempdir().unwrap();
    let path = fifo(&dir);
    let mut report = Report::new();
    let fd = report.fd();
    let p = path.clone();
    let child = brood::fork_with(move || {
        if own_group {
            // SAFETY: a new process group for this copy (a terminal's job).
            unsafe { libc::setpgid(0, 0) };
        }
        let pool = Pool::builder(2).start_method(method).build().unwrap();
        say(fd, &format!("workers {:?}", pool.worker_pids()));
        let items = vec![p.clone(); 3];
        let out = pool.map(busy, items);
        let t = Instant::now();
        let ok = matches!(out, Err(Error::Interrupted));
        say(fd, &format!("interrupted {ok}"));
        // Fresh workers for the next call.
        let again = pool.map(inc, [1, 2]).map(|v| v == [Ok(2), Ok(3)]);
        say(fd, &format!("again {:?} {:?}", again.ok(), t.elapsed()));
        0
    })
    .unwrap();
    report.close_writer();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    let workers: Vec<u32> = report
        .line()
        .strip_prefix("workers ")
        .unwrap()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    for &w in &workers {
        cleanup.add(w);
    }
    // Both workers run an item: each said so on the FIFO.
    let busy = busy_workers(&path, 2);
    let t = Instant::now();
    let target = if to_group {
        -(child.pid() as i32)
    } else {
        child.pid() as i32
    };
    // SAFETY: SIGINT to the forked copy (or its group), as Ctrl-C would.
    assert_eq!(unsafe { libc::kill(target, libc::SIGINT) }, 0);
    assert_eq!(report.line(), "interrupted true", "{method:?}");
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{method:?}: {took:?} to return"
    );
    for p in busy {
        assert!(
            !exists(p),
            "{method:?}: worker {p} outlived the interruption"
        );
    }
    let again = report.line();
    assert!(again.starts_with("again Some(true)"), "{method:?}: {again}");
    ends_with_zero(&child, Duration::from_secs(30), &format!("{method:?}"));
}

#[test]
fn sigint_to_the_program_interrupts_a_map_under_every_start_method() {
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        interrupted_program(method, false, false);
    }
}

#[test]
fn ctrl_c_to_the_whole_job_interrupts_a_map() {
    // The terminal's Ctrl-C reaches the program's group: its workers too.
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        interrupted_program(method, true, true);
    }
}

#[test]
fn a_program_that_handles_sigint_itself_keeps_it() {
    require_own_process();
    let child = brood::fork_with(|| {
        // SAFETY: the program ignores SIGINT; brood must leave that so.
        unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
        let pool = Pool::new(1).unwrap();
        // SAFETY: raising SIGINT here, while a map would run next.
        unsafe { libc::raise(libc::SIGINT) };
        let ok = pool.map(inc, [1]).is_ok_and(|v| v == [Ok(2)]);
        i32::from(!ok)
    })
    .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    ends_with_zero(&child, Duration::from_secs(30), "the forked program");
}

#[test]
fn submitted_tasks_fail_as_interrupted() {
    require_own_process();
    let dir = tempfile::tempdir().unwrap();
    let path = fifo(&dir);
    let mut report = Report::new();
    let fd = report.fd();
    let p = path.clone();
    let child = brood::fork_with(move || {
        let pool = Pool::new(2).unwrap();
        let handles: Vec<_> = (0..3)
            .map(|_| pool.submit(busy, p.clone()).unwrap())
            .collect();
        let all = handles
            .iter()
            .all(|h| matches!(h.wait(), Err(TaskError::Interrupted)));
        say(fd, &format!("interrupted {all}"));
        0
    })
    .unwrap();
    report.close_writer();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    for pid in busy_workers(&path, 2) {
        cleanup.add(pid);
    }
    // SAFETY: SIGINT to the forked copy.
    assert_eq!(unsafe { libc::kill(child.pid() as i32, libc::SIGINT) }, 0);
    assert_eq!(report.line(), "interrupted true");
    ends_with_zero(&child, Duration::from_secs(30), "the forked program");
}

/// A one-item chunk awaited with `submit_chunk` and withdrawn: the worker
/// running its item is killed (gone within a second), its outcome is
/// `Interrupted`, and the pool runs the next chunk on a fresh worker.
#[test]
fn a_withdrawn_awaited_chunk_kills_its_worker() {
    use brood::remote::{ChunkEncoder, Withdraw, decode_results};
    let dir = tempfile::tempdir().unwrap();
    let path = fifo(&dir);
    let pool = Pool::new(1).unwrap();
    let mut cleanup = Cleanup::default();
    for w in pool.worker_pids() {
        cleanup.add(w);
    }
    let mut chunk = ChunkEncoder::new(busy).unwrap();
    chunk.push(&path).unwrap();
    let bytes = chunk.finish();
    let withdraw = Withdraw::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let running = pool
        .with(brood::CallOptions::new())
        .submit_chunk(&bytes, Some(&withdraw), &[])
        .unwrap();
    let (outcomes, worker, took) = rt.block_on(async {
        tokio::pin!(running);
        // The task was queued as it was submitted: its worker says so.
        let worker = busy_workers(&path, 1)[0];
        let t = Instant::now();
        withdraw.fire();
        // As an agent does: a tick polls it again, which sees the withdrawal.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let outcomes = loop {
            tokio::select! {
                out = &mut running => break out,
                _ = tick.tick() => {}
            }
        };
        (outcomes, worker, t.elapsed())
    });
    cleanup.add(worker);
    assert_eq!(
        decode_results::<u32>(&outcomes, 1).unwrap(),
        [Err(TaskError::Interrupted)]
    );
    assert!(took < Duration::from_secs(1), "{took:?} to end it");
    // The pool answers a killed worker's task once it has reaped it.
    assert!(
        !exists(worker),
        "worker {worker} still runs the withdrawn item"
    );
    let mut next = ChunkEncoder::new(inc).unwrap();
    next.push(&41).unwrap();
    let again = rt.block_on(
        pool.with(brood::CallOptions::new())
            .submit_chunk(&next.finish(), None, &[])
            .unwrap(),
    );
    assert_eq!(decode_results::<u32>(&again, 1).unwrap(), [Ok(42)]);
    for w in pool.worker_pids() {
        cleanup.add(w);
    }
}
