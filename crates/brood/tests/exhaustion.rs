//! Starts under exhausted resources: with `RLIMIT_NOFILE` lowered so that only
//! k descriptors are free (k = 0…10), every kind of start is `Ok` or a typed
//! error, and afterwards no child of ours is left running or a zombie. Then,
//! with the limit raised again, every kind works: no failure is remembered.
//!
//! One test per kind: each runs in its own process (nextest), so the fork
//! server and the reaper of one kind do not carry over to another.

mod support;

use brood::{Command, Pool, Process, StartMethod};
use std::time::Duration;
use support::*;

brood::init_before_main!();

fn park(_: ()) -> u8 {
    support::park()
}

fn one(x: u32) -> u32 {
    x + 1
}

/// Runs `f` with exactly `k` descriptors free, then restores the limit: the
/// gaps below the highest open descriptor are filled with `/dev/null`s (all
/// but `k` of them), and the soft limit is set just above the highest.
fn with_free_fds<T>(k: usize, f: impl FnOnce() -> T) -> T {
    use std::os::fd::AsRawFd;
    let max = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap_or(2);
    let mut fillers = Vec::new();
    loop {
        let f = std::fs::File::open("/dev/null").unwrap();
        if f.as_raw_fd() > max {
            break;
        }
        fillers.push(f);
    }
    let extra = k.saturating_sub(fillers.len());
    for _ in 0..k.min(fillers.len()) {
        fillers.pop();
    }
    let (soft, hard) = rlimit_nofile();
    set_rlimit_nofile(max as u64 + 1 + extra as u64, hard);
    let out = f();
    set_rlimit_nofile(soft, hard);
    drop(fillers);
    out
}

fn rlimit_nofile() -> (u64, u64) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

fn set_rlimit_nofile(soft: u64, hard: u64) {
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(soft),
            maximum: Some(hard),
        },
    )
    .unwrap();
}

/// Every process below `pid` (children, theirs, …).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// After the attempts: nothing of ours left, alive or zombie (the fork
/// server itself, which outlives its children by design, and the idle spares
/// it keeps forked ahead, at most the two asked for, aside).
fn assert_nothing_left(attempts: &str) {
    let server = brood::fork_server_pid();
    let is_spare = |p: u32| support::cmdline(p).ends_with("(brood spare)");
    let spares = server.map_or(0, |s| {
        children_of(s).into_iter().filter(|&p| is_spare(p)).count()
    });
    assert!(spares <= 2, "{attempts}: {spares} spares");
    let mut left: Vec<(u32, char)> = descendants(me())
        .into_iter()
        .filter(|&p| Some(p) != server)
        .filter_map(|p| stat(p).map(|(state, _)| (p, state)))
        .collect();
    if let Some(s) = server {
        left.extend(
            descendants(s)
                .into_iter()
                .filter(|&p| !is_spare(p))
                .filter_map(|p| stat(p).map(|(state, _)| (p, state))),
        );
    }
    // A server whose start failed after it forked (its client gave up the
    // handshake) and its spares end on their own once they see the client's
    // end close; a spare the server is forking right now has the server's
    // title for a moment. Wait (bounded) for each to end or show as a spare.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    left.retain(|&(p, _)| {
        loop {
            if is_spare(p) || wait_exit(p, Duration::from_millis(10)) {
                break false;
            }
            if std::time::Instant::now() > deadline {
                break true;
            }
        }
    });
    assert!(
        left.is_empty(),
        "{attempts}: left behind (pid, state, command line): {:?}",
        left.iter()
            .map(|&(p, s)| (p, s, support::cmdline(p)))
            .collect::<Vec<_>>()
    );
}

/// Tries `start` for k = 0…10 free descriptors; `finish` ends what started.
fn exhaust<H>(
    what: &str,
    mut start: impl FnMut() -> Result<H, brood::Error>,
    mut finish: impl FnMut(H),
) {
    let mut oks = 0;
    let mut errors = Vec::new();
    for k in 0..=10 {
        match with_free_fds(k, &mut start) {
            Ok(h) => {
                oks += 1;
                finish(h);
            }
            // A typed error: it formats, names something, and is not a panic.
            Err(e) => errors.push(format!("k={k}: {e}")),
        }
    }
    eprintln!("{what}: {oks} Ok, errors: {errors:#?}");
    assert_nothing_left(what);
    // Raised again: it works, and keeps working.
    for _ in 0..3 {
        let h = start().unwrap_or_else(|e| panic!("{what} after raising the limit: {e}"));
        finish(h);
    }
    assert_nothing_left(what);
}

fn end_child(c: brood::Child) {
    let _ = c.kill();
    c.wait().unwrap();
}

#[test]
fn command_under_fd_exhaustion() {
    exhaust(
        "Command",
        || {
            Command::new("sleep")
                .arg("30")
                .spawn()
                .map(|p| p.child().clone())
        },
        end_child,
    );
}

#[test]
fn fork_with_under_fd_exhaustion() {
    exhaust(
        "fork_with",
        || brood::fork_with(|| support::park()),
        end_child,
    );
}

#[test]
fn raw_fork_under_fd_exhaustion() {
    exhaust(
        "fork",
        // SAFETY: the child parks until killed and never returns here.
        || match unsafe { brood::fork() }? {
            brood::Fork::Child => support::park(),
            brood::Fork::Parent(c) => Ok(c),
        },
        end_child,
    );
}

fn process_under_fd_exhaustion(method: StartMethod) {
    exhaust(
        &format!("Process {method:?}"),
        || Process::new(park, ()).start_method(method).start(),
        |h| {
            let _ = h.kill();
            let _ = h.join();
            h.child().wait().ok();
        },
    );
}

#[test]
fn process_fork_under_fd_exhaustion() {
    process_under_fd_exhaustion(StartMethod::Fork);
}

#[test]
fn process_spawn_under_fd_exhaustion() {
    process_under_fd_exhaustion(StartMethod::Spawn);
}

#[test]
fn process_forkserver_under_fd_exhaustion() {
    process_under_fd_exhaustion(StartMethod::ForkServer);
}

fn pool_under_fd_exhaustion(method: StartMethod) {
    exhaust(
        &format!("Pool {method:?}"),
        || Pool::builder(2).start_method(method).build(),
        |pool| {
            assert_eq!(
                pool.map(one, 0..4)
                    .unwrap()
                    .into_iter()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>(),
                [1, 2, 3, 4]
            );
            let pids = pool.worker_pids();
            pool.terminate().unwrap();
            for p in pids {
                assert!(
                    wait_exit(p, Duration::from_secs(10)),
                    "worker {p} still there"
                );
            }
        },
    );
}

#[test]
fn pool_fork_under_fd_exhaustion() {
    pool_under_fd_exhaustion(StartMethod::Fork);
}

#[test]
fn pool_spawn_under_fd_exhaustion() {
    pool_under_fd_exhaustion(StartMethod::Spawn);
}

#[test]
fn pool_forkserver_under_fd_exhaustion() {
    pool_under_fd_exhaustion(StartMethod::ForkServer);
}
