//! The calls of a `ClusterPool` beyond `map`, and chunks: `imap`,
//! `imap_unordered`, `try_map`, `submit`, `CallOptions`, a chunk with an
//! item that kills its agents, and Ctrl-C in the driver — each against a
//! real `nats-server` and real agent processes (this binary started again).

mod support;

use brood::{CallOptions, TaskError};
use brood_cluster::ClusterPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

const HOLD: &str = "BROOD_CLUSTER_TEST_HOLD";
const DRIVER: &str = "BROOD_CLUSTER_TEST_CTRL_C_DRIVER";

fn triple(x: u64) -> u64 {
    3 * x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Logs `i pid`; in an agent started with `HOLD` set, says so on the FIFO
/// and never returns (item 0 of a chunk whose items all hold).
fn held((i, log, fifo): (u64, String, String)) -> u64 {
    append(&log, &format!("{i} {}", std::process::id()));
    if std::env::var_os(HOLD).is_some() {
        announce_and_park(&fifo, &i.to_string());
    }
    i
}

/// Whether process `pid` ends within `d` (watched through its pidfd).
fn ends_within(pid: u32, d: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    if fd < 0 {
        return true; // gone already
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of ours, then our own descriptor closed.
    let ready = unsafe { libc::poll(&mut p, 1, d.as_millis() as i32) } == 1;
    unsafe { libc::close(fd) };
    ready
}

#[test]
fn ten_thousand_items_in_chunks_each_get_their_one_right_result() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "chunks", 2, &[]);
    let _b = AgentProc::start(scene.url(), "chunks", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "chunks").unwrap();
    let out = pool.map(triple, 0..10_000u64).unwrap();
    assert_eq!(out.len(), 10_000);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r, &Ok(3 * i as u64), "item {i}");
    }
    assert_eq!(scene.server.queue_state("chunks"), (0, 0, 0));
}

#[test]
fn imap_imap_unordered_try_map_and_submit_answer_like_the_local_pool() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "calls", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "calls").unwrap();
    // In order, from an iterator with no length, small chunks.
    let lazy = (0..500u64).filter(|_| true);
    let ordered: Vec<u64> = pool
        .with(CallOptions::new().chunk_size(7))
        .imap(triple, lazy)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..500).map(|x| 3 * x).collect::<Vec<_>>());
    // Every index once, whatever the order.
    let mut seen: Vec<usize> = pool
        .imap_unordered(triple, 0..300u64)
        .unwrap()
        .map(|(i, r)| {
            assert_eq!(r, Ok(3 * i as u64));
            i
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    // An endless input: the first ten, and the rest withdrawn.
    let first: Vec<u64> = pool
        .imap(triple, 0u64..)
        .unwrap()
        .take(10)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..10).map(|x| 3 * x).collect::<Vec<_>>());
    assert_eq!(pool.try_map(triple, [1, 2]).unwrap(), [3, 6]);
    let task = pool.submit(triple, 14).unwrap();
    assert_eq!(task.wait(), Ok(42));
    // Nothing left queued for the calls that ended, the endless one too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scene.server.queue_state("calls").0 != 0 {
        assert!(Instant::now() < deadline, "tasks left queued");
        // Polls the server: nothing to wait on but its state.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn call_options_give_the_timeout_and_report_progress() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "options", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "options").unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let opts = CallOptions::new()
        .timeout(Duration::from_millis(500))
        .chunk_size(1)
        .progress(move |p| {
            counter.store(p.done, Ordering::Relaxed);
        });
    let t = Instant::now();
    let out = pool.with(opts).map(nap, [1, 60_000]).unwrap();
    assert_eq!(out[0], Ok(1));
    assert!(matches!(out[1], Err(TaskError::Timeout { .. })), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}

/// In an agent started with `HOLD` set, item 3 says so on the FIFO and
/// never returns; the others return themselves.
fn holds_on_three((i, fifo): (u64, String)) -> u64 {
    if i == 3 && std::env::var_os(HOLD).is_some() {
        announce_and_park(&fifo, "3");
    }
    i
}

#[test]
fn a_chunk_whose_agents_keep_dying_is_split_and_only_its_killer_fails() {
    let Some(scene) = Scene::new() else { return };
    let (fifo, started) = scene.fifo("started");
    let pool = ClusterPool::builder(scene.url(), "split")
        .heartbeat_timeout(Duration::from_secs(1))
        .max_deliveries(2)
        .connect()
        .unwrap();
    let items: Vec<(u64, String)> = (0..8u64).map(|i| (i, fifo.clone())).collect();
    let map = std::thread::spawn(move || {
        pool.with(CallOptions::new().chunk_size(8))
            .map(holds_on_three, items)
    });
    // The chunk of 8, twice, then item 3 alone, twice: each time the agent
    // holding item 3 is SIGKILLed.
    let mut r = std::io::BufReader::new(&started);
    for _ in 0..4 {
        let mut agent = AgentProc::start(scene.url(), "split", 1, &[(HOLD, "1")]);
        assert_eq!(read_line(&mut r), "3\n");
        agent.kill();
        scene.family.reap_orphans();
    }
    // A live agent lets the server see item 3 past its deliveries.
    let _last = AgentProc::start(scene.url(), "split", 1, &[]);
    let out = map.join().unwrap().unwrap();
    for (i, r) in out.iter().enumerate() {
        if i == 3 {
            assert!(
                matches!(r, Err(TaskError::Failed { reason }) if reason.contains("given out 2 times")),
                "{r:?}"
            );
        } else {
            assert_eq!(r, &Ok(i as u64), "item {i}");
        }
    }
    assert_eq!(scene.server.queue_state("split"), (0, 0, 0));
}

/// The driver, when this binary is started with `DRIVER` set (the URL, the
/// log, the FIFO and the chunk size): 4 held items; prints how its map
/// ended.
#[test]
fn ctrl_c_driver_role() {
    let Some(args) = std::env::var_os(DRIVER) else {
        return;
    };
    let args = args.to_string_lossy().into_owned();
    let [url, log, fifo, chunk]: [&str; 4] =
        args.split(' ').collect::<Vec<_>>().try_into().unwrap();
    let pool = ClusterPool::connect(url, "ctrlc").unwrap();
    let items = (0..4u64).map(|i| (i, log.to_string(), fifo.to_string()));
    let opts = CallOptions::new().chunk_size(chunk.parse().unwrap());
    match pool.with(opts).map(held, items) {
        Err(brood::Error::Interrupted) => println!("interrupted"),
        other => println!("{other:?}"),
    }
}

#[test]
fn ctrl_c_in_the_driver_ends_its_map_within_a_second_and_kills_the_workers() {
    // One chunk of 4 (a map on the agent's pool), and chunks of one (each a
    // task submitted to it).
    ctrl_c_with_chunks_of(4);
    ctrl_c_with_chunks_of(1);
}

fn ctrl_c_with_chunks_of(chunk: usize) {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let (fifo, started) = scene.fifo("started");
    let _a = AgentProc::start(scene.url(), "ctrlc", 2, &[(HOLD, "1")]);
    let driver = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ctrl_c_driver_role", "--nocapture", "--quiet"])
        .env(DRIVER, format!("{} {log} {fifo} {chunk}", scene.url()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both workers of the agent hold an item of the chunk.
    let mut r = std::io::BufReader::new(&started);
    read_line(&mut r);
    read_line(&mut r);
    let workers: Vec<u32> = lines(&log)
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let t = Instant::now();
    // SAFETY: signalling our own child, which we have not reaped.
    unsafe { libc::kill(driver.id() as i32, libc::SIGINT) };
    let out = driver.wait_with_output().unwrap();
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted"), "{text:?} {:?}", out.status);
    assert!(took < Duration::from_secs(1), "the driver took {took:?}");
    // The agent kills the workers running the withdrawn chunk.
    for w in workers {
        assert!(
            ends_within(w, Duration::from_secs(5)),
            "worker {w} still runs"
        );
    }
    eprintln!("chunks of {chunk}: Ctrl-C to the driver's exit: {took:?}");
}

/// Each worker's state: a table, and a line per run of the initializer.
fn load((n, log): (u32, String)) -> Vec<String> {
    append(&log, &std::process::id().to_string());
    (0..n).map(|i| format!("item {i}")).collect()
}

// The state's type is the initializer's value: `&Vec`, not a slice.
#[allow(clippy::ptr_arg)]
fn name(table: &Vec<String>, i: u32) -> String {
    table[i as usize].clone()
}

fn refuse(_: u32) -> Vec<String> {
    panic!("no table today")
}

#[test]
fn map_with_runs_the_initializer_once_per_worker_on_every_agent() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("inits");
    let _a = AgentProc::start(scene.url(), "tables", 2, &[]);
    let _b = AgentProc::start(scene.url(), "tables", 2, &[]);
    let pool = ClusterPool::builder(scene.url(), "tables")
        .initializer(load, (1000, log.clone()))
        .connect()
        .unwrap();
    let out = pool
        .with(CallOptions::new().chunk_size(10))
        .map_with(name, 0..1000u32)
        .unwrap();
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r.as_deref(), Ok(format!("item {i}").as_str()), "item {i}");
    }
    // Again: the agents keep their pools, nothing runs the initializer anew.
    let before = lines(&log);
    let again = pool.map_with(name, [7u32]).unwrap();
    assert_eq!(again[0].as_deref(), Ok("item 7"));
    assert_eq!(lines(&log), before);
    // Once per worker: no pid twice, at most 2 agents x 2 workers.
    let mut pids = before.clone();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), before.len(), "{before:?}");
    assert!((1..=4).contains(&before.len()), "{before:?}");
    // A plain map on the same pool still runs on the plain workers.
    assert_eq!(pool.map(triple, [2u64]).unwrap(), [Ok(6)]);
}

#[test]
fn a_failing_initializer_or_none_fails_the_items_saying_why() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "untabled", 1, &[]);
    let failing = ClusterPool::builder(scene.url(), "untabled")
        .initializer(refuse, 3)
        .connect()
        .unwrap();
    let out = failing.map_with(name, [1u32, 2]).unwrap();
    for r in &out {
        assert!(
            matches!(r, Err(TaskError::Failed { reason }) if reason.contains("no table today")),
            "{r:?}"
        );
    }
    let none = ClusterPool::connect(scene.url(), "untabled").unwrap();
    let out = none.map_with(name, [1u32]).unwrap();
    assert!(
        matches!(&out[0], Err(e) if e.to_string().contains("initializer")),
        "{out:?}"
    );
}

const RESUME_DRIVER: &str = "BROOD_CLUSTER_TEST_RESUME_DRIVER";

/// Logs `i`; in an agent started with `HOLD` set, item 30 says so on the
/// FIFO and never returns.
fn logged((i, log, fifo): (u64, String, String)) -> u64 {
    append(&log, &i.to_string());
    if i == 30 && std::env::var_os(HOLD).is_some() {
        announce_and_park(&fifo, "30");
    }
    10 * i
}

fn nightly(url: &str, log: &str, fifo: &str) -> brood::Result<Vec<Result<u64, TaskError>>> {
    let pool = ClusterPool::connect(url, "resume").unwrap();
    let items = (0..40u64).map(|i| (i, log.to_string(), fifo.to_string()));
    pool.with(CallOptions::new().chunk_size(1))
        .named("nightly-1")
        .map(logged, items)
}

/// The first driver of the named call (killed by the test).
#[test]
fn resume_driver_role() {
    let Some(args) = std::env::var_os(RESUME_DRIVER) else {
        return;
    };
    let args = args.to_string_lossy().into_owned();
    let [url, log, fifo]: [&str; 3] = args.split(' ').collect::<Vec<_>>().try_into().unwrap();
    let _ = nightly(url, log, fifo);
}

#[test]
fn a_named_call_resumed_by_a_new_driver_runs_only_what_was_not_answered() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let (fifo, started) = scene.fifo("started");
    let mut agent = AgentProc::start(scene.url(), "resume", 1, &[(HOLD, "1")]);
    let mut driver = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "resume_driver_role", "--nocapture", "--quiet"])
        .env(RESUME_DRIVER, format!("{} {log} {fifo}", scene.url()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Items 0..30 answered, item 30 held: the driver dies, and its agent.
    let mut r = std::io::BufReader::new(&started);
    assert_eq!(read_line(&mut r), "30\n");
    driver.kill().unwrap();
    driver.wait().unwrap();
    agent.kill();
    scene.family.reap_orphans();
    let _b = AgentProc::start(scene.url(), "resume", 1, &[]);
    let out = nightly(scene.url(), &log, &fifo).unwrap();
    assert_eq!(out, (0..40).map(|i| Ok(10 * i)).collect::<Vec<_>>());
    let mut runs = vec![0; 40];
    for l in lines(&log) {
        runs[l.parse::<usize>().unwrap()] += 1;
    }
    // Answered before the crash: not run again. The rest run at least once:
    // an agent that pulls a chunk the dead driver left before the resumed
    // driver takes them away runs it too (execution is at least once; each
    // item still has one result, checked above).
    let again: Vec<usize> = (0..30).filter(|&i| runs[i] != 1).collect();
    assert!(again.is_empty(), "answered items ran again: {runs:?}");
    assert!(
        runs[30..].iter().all(|&n| n >= 1),
        "runs per item: {runs:?}"
    );
    // It ended: nothing of it is left on the server.
    assert_eq!(scene.server.queue_state("resume"), (0, 0, 0));
}

const WAITING_DRIVER: &str = "BROOD_CLUSTER_TEST_WAITING_DRIVER";

/// A driver with no agent yet (the URL in `WAITING_DRIVER`): prints how
/// many items came back right.
#[test]
fn waiting_driver_role() {
    let Some(url) = std::env::var_os(WAITING_DRIVER) else {
        return;
    };
    let pool = ClusterPool::connect(&url.to_string_lossy(), "lonely").unwrap();
    let out = pool.map(triple, 0..50u64).unwrap();
    let right = out
        .iter()
        .enumerate()
        .filter(|(i, r)| **r == Ok(3 * *i as u64))
        .count();
    println!("right {right}");
}

#[test]
fn a_call_with_no_agent_says_it_waits_and_ends_once_one_comes() {
    use std::io::BufRead;
    let Some(scene) = Scene::new() else { return };
    let mut driver = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "waiting_driver_role", "--nocapture", "--quiet"])
        .env(WAITING_DRIVER, scene.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(driver.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for agents") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "stderr ended");
    }
    assert!(line.contains("BROOD_AGENT_JOB=lonely"), "{line}");
    let _a = AgentProc::start(scene.url(), "lonely", 2, &[]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let out = driver.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "right 50"), "{text}");
    assert!(rest.contains("agents are taking"), "{rest}");
}

/// Item 3 SIGKILLs its worker the first time it runs (the marker file does
/// not exist yet), and returns itself after; each run is a line in the log.
fn dies_once((i, log, marker): (u64, String, String)) -> u64 {
    append(&log, &i.to_string());
    if i == 3 && std::fs::File::create_new(&marker).is_ok() {
        // SAFETY: the worker kills itself, which is the point of the test.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    i
}

#[test]
fn an_item_whose_worker_died_runs_again_only_when_retries_are_asked_for() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "retries", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "retries").unwrap();
    let items = |log: &str, marker: &str| {
        (0..8u64)
            .map(|i| (i, log.to_string(), marker.to_string()))
            .collect::<Vec<_>>()
    };
    // By default: WorkerDied, run once.
    let (log, marker) = (scene.file("runs-0"), scene.file("marker-0"));
    let out = pool
        .with(CallOptions::new().chunk_size(4))
        .map(dies_once, items(&log, &marker))
        .unwrap();
    assert!(
        matches!(&out[3], Err(TaskError::WorkerDied { signal: Some(s), .. }) if *s == brood::Signal::KILL),
        "{out:?}"
    );
    assert_eq!(lines(&log).iter().filter(|l| *l == "3").count(), 1);
    // With retries: the second run answers; the others ran once.
    let (log, marker) = (scene.file("runs-1"), scene.file("marker-1"));
    let out = pool
        .with(CallOptions::new().chunk_size(4))
        .retries(2)
        .map(dies_once, items(&log, &marker))
        .unwrap();
    assert_eq!(out, (0..8).map(Ok).collect::<Vec<_>>());
    let mut runs = lines(&log);
    runs.sort();
    assert_eq!(runs, ["0", "1", "2", "3", "3", "4", "5", "6", "7"]);
}

#[test]
fn a_call_that_ends_leaves_the_queued_chunks_of_another_call_of_its_job() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "two-calls", 1, &[]);
    let long = ClusterPool::connect(scene.url(), "two-calls").unwrap();
    let short = ClusterPool::connect(scene.url(), "two-calls").unwrap();
    // One driver's call: 40 chunks of a 20 ms nap; with one worker, most of
    // them wait queued while the other driver's calls begin and end.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = long
            .with(CallOptions::new().chunk_size(1))
            .map(nap, vec![20u64; 40]);
        let _ = tx.send(out);
    });
    for k in 0..8u64 {
        let out = short.map(triple, k..k + 3).unwrap();
        assert_eq!(out, [Ok(3 * k), Ok(3 * k + 3), Ok(3 * k + 6)]);
    }
    // Every chunk of the first call is still answered: the calls that ended
    // took nothing of it with them.
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the first call never ended: chunks of it were lost")
        .unwrap();
    assert_eq!(out, vec![Ok(20u64); 40]);
    assert_eq!(scene.server.queue_state("two-calls"), (0, 0, 0));
}
