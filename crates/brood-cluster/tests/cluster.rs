//! A real `nats-server -js` (on a free loopback port, with its own store,
//! stopped at the end) and real agent processes: this test binary started
//! again as an agent (`agent_role`). Each guarantee of the cluster pool is
//! checked on what the processes and the server did.

mod support;

use brood::remote::BuildId;
use brood::{Signal, TaskError};
use brood_cluster::{ClusterError, ClusterPool, Credentials};
use std::io::Write;
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set; a no-op
/// in the normal run.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

fn square(x: u64) -> u64 {
    x * x
}

/// Item 3 aborts its worker and item 5 SIGKILLs its own; each run of an
/// item is a line in the log first.
fn fatal((i, log): (u64, String)) -> u64 {
    append(&log, &format!("{i}"));
    match i {
        3 => std::process::abort(),
        5 => {
            // SAFETY: the worker kills itself, which is the point of the test.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            unreachable!()
        }
        _ => i,
    }
}

/// Logs its run; in an agent started with `HOLD` set, says so on the FIFO
/// and never returns.
fn held((i, log, fifo): (u64, String, String)) -> u64 {
    append(&log, &format!("{i} {}", std::process::id()));
    if std::env::var_os(HOLD).is_some() {
        announce_and_park(&fifo, &i.to_string());
    }
    i * 10
}

const HOLD: &str = "BROOD_CLUSTER_TEST_HOLD";

#[test]
fn every_item_gets_exactly_one_result_from_two_agents() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "squares", 2, &[]);
    let _b = AgentProc::start(scene.url(), "squares", 2, &[]);
    let pool = ClusterPool::connect(scene.url(), "squares").unwrap();
    let out = pool.map(square, 0..300u64).unwrap();
    assert_eq!(out.len(), 300);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r, &Ok((i * i) as u64), "item {i}");
    }
    // A second map on the same pool, and nothing left on the server.
    assert_eq!(pool.map(square, [7u64]).unwrap(), [Ok(49)]);
    assert_eq!(scene.server.queue_state("squares"), (0, 0, 0));
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_task_past_the_driver_s_timeout_fails_alone_with_timeout() {
    let Some(scene) = Scene::new() else { return };
    let _a = AgentProc::start(scene.url(), "timeouts", 2, &[]);
    let pool = ClusterPool::builder(scene.url(), "timeouts")
        .task_timeout(Duration::from_millis(500))
        .connect()
        .unwrap();
    let out = pool.map(nap, [600_000u64, 1]).unwrap();
    assert!(
        matches!(&out[0], Err(TaskError::Timeout { timeout, .. }) if *timeout == Duration::from_millis(500)),
        "{out:?}"
    );
    assert_eq!(out[1], Ok(1));
    assert_eq!(scene.server.queue_state("timeouts"), (0, 0, 0));
}

#[test]
fn a_task_that_kills_its_worker_fails_alone_and_is_not_run_again() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let _a = AgentProc::start(scene.url(), "fatal", 2, &[]);
    let pool = ClusterPool::builder(scene.url(), "fatal")
        .heartbeat_timeout(Duration::from_secs(1))
        .connect()
        .unwrap();
    let out = pool
        .map(fatal, (0..8u64).map(|i| (i, log.clone())))
        .unwrap();
    for (i, r) in out.iter().enumerate() {
        match i {
            3 => assert!(
                matches!(r, Err(TaskError::WorkerDied { signal: Some(s), .. }) if *s == Signal::ABORT),
                "{r:?}"
            ),
            5 => assert!(
                matches!(r, Err(TaskError::WorkerDied { signal: Some(s), .. }) if *s == Signal::KILL),
                "{r:?}"
            ),
            _ => assert_eq!(r, &Ok(i as u64)),
        }
    }
    // Every task was acked (nothing left to give out again), and each item
    // ran exactly once: the fatal ones were not retried.
    assert_eq!(scene.server.queue_state("fatal"), (0, 0, 0));
    let mut runs = lines(&log);
    runs.sort();
    assert_eq!(runs, ["0", "1", "2", "3", "4", "5", "6", "7"]);
}

#[test]
fn an_agent_killed_mid_map_loses_nothing() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let (fifo, started) = scene.fifo("started");
    // Agent A holds the two tasks it takes, forever.
    let mut a = AgentProc::start(scene.url(), "lossless", 2, &[(HOLD, "1")]);
    let pool = ClusterPool::builder(scene.url(), "lossless")
        .heartbeat_timeout(Duration::from_secs(1))
        .connect()
        .unwrap();
    let items: Vec<_> = (0..6u64).map(|i| (i, log.clone(), fifo.clone())).collect();
    // Not scoped: a failed check below must not wait for the map.
    let map = std::thread::spawn(move || pool.map(held, items));
    // Both of A's workers are inside a task: kill A (and so its workers),
    // then start B.
    let mut r = std::io::BufReader::new(&started);
    // (Which two of the first ones it takes is the server's choice.)
    let held_items: Vec<u64> = [read_line(&mut r), read_line(&mut r)]
        .iter()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(
        held_items[0] != held_items[1] && held_items.iter().all(|&i| i < 3),
        "{held_items:?}"
    );
    a.kill();
    scene.family.reap_orphans();
    let _b = AgentProc::start(scene.url(), "lossless", 2, &[]);
    let out = map.join().unwrap().unwrap();
    assert_eq!(out, (0..6).map(|i| Ok(i * 10)).collect::<Vec<_>>());
    // The two held items ran twice (in A, then in B): at least once; the
    // others once. Each got one result.
    let mut runs: Vec<u64> = lines(&log)
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    runs.sort();
    let mut expected: Vec<u64> = (0..6).chain(held_items).collect();
    expected.sort();
    assert_eq!(runs, expected);
    assert_eq!(scene.server.queue_state("lossless"), (0, 0, 0));
}

/// A loopback URL where nothing listens.
fn nobody() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("nats://{}", l.local_addr().unwrap())
}

#[test]
fn an_agent_asked_wrongly_says_why_and_exits_1() {
    let url = nobody();
    for (job, says) in [(None, "BROOD_AGENT_JOB"), (Some("j"), url.as_str())] {
        let mut agent = std::process::Command::new(std::env::current_exe().unwrap());
        agent
            .args(["--exact", "agent_role", "--nocapture"])
            .env("BROOD_AGENT", &url)
            .env_remove("BROOD_AGENT_JOB");
        if let Some(job) = job {
            agent.env("BROOD_AGENT_JOB", job);
        }
        let out = agent.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("brood agent: ") && stderr.contains(says),
            "{stderr}"
        );
    }
}

#[test]
fn no_server_or_a_bad_job_name_is_a_clear_error() {
    let url = nobody();
    let port = url.rsplit(':').next().unwrap();
    let err = ClusterPool::builder(&url, "nobody")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let err = ClusterPool::connect(&url, "a.b").unwrap_err();
    assert!(err.to_string().contains("\"a.b\""), "{err}");
}

#[test]
fn an_agent_of_another_build_refuses_naming_both_builds() {
    let Some(scene) = Scene::new() else { return };
    let here = BuildId::current().unwrap().to_string();
    let Some(exe) = other_build(scene.dir.path(), &here) else {
        eprintln!("SKIPPED: this test binary has no build id to change");
        return;
    };
    let mut agent = AgentProc::start_exe(&exe, scene.url(), "builds", 1, &[]);
    let pool = ClusterPool::connect(scene.url(), "builds").unwrap();
    let out = pool.map(square, [1u64, 2]).unwrap();
    for r in &out {
        let Err(TaskError::Failed { reason }) = r else {
            panic!("{r:?}")
        };
        // The task's build, and the agent's: this one's with a byte flipped.
        assert!(reason.contains(&here), "{reason}");
        assert_eq!(reason.matches("build-id ").count(), 2, "{reason}");
    }
    // The agent refused without running anything, and goes on.
    assert!(agent.running());
    assert_eq!(scene.server.queue_state("builds"), (0, 0, 0));
}

#[test]
fn a_task_whose_agents_keep_dying_fails_after_its_deliveries() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let (fifo, started) = scene.fifo("started");
    let pool = ClusterPool::builder(scene.url(), "doomed")
        .heartbeat_timeout(Duration::from_secs(1))
        .max_deliveries(2)
        .connect()
        .unwrap();
    let item = (0u64, log.clone(), fifo);
    let map = std::thread::spawn(move || pool.map(held, [item]));
    // Two agents in turn take the task and are SIGKILLed while they run it.
    let mut r = std::io::BufReader::new(&started);
    for _ in 0..2 {
        let mut agent = AgentProc::start(scene.url(), "doomed", 1, &[(HOLD, "1")]);
        assert_eq!(read_line(&mut r), "0\n");
        agent.kill();
        scene.family.reap_orphans();
    }
    // The server finds a task past its deliveries when an agent asks for
    // work (and tells the driver), so a live agent is needed to see it fail.
    let _last = AgentProc::start(scene.url(), "doomed", 1, &[]);
    let out = map.join().unwrap().unwrap();
    assert!(
        matches!(&out[0], Err(TaskError::Failed { reason }) if reason.contains("given out 2 times")),
        "{out:?}"
    );
    assert_eq!(lines(&log).len(), 2);
    assert_eq!(scene.server.queue_state("doomed"), (0, 0, 0));
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let Some(server) = Server::start_with(&["--user", "job", "--pass", "right"]) else {
        return;
    };
    let err = ClusterPool::builder(&server.url, "locked")
        .credentials(Credentials::UserPassword {
            user: "job".into(),
            password: "wrong".into(),
        })
        .connect()
        .unwrap_err();
    assert!(
        matches!(&err, ClusterError::Connect { cause, .. } if cause.to_lowercase().contains("auth")),
        "{err}"
    );
    let pool = ClusterPool::builder(&server.url, "locked")
        .credentials(Credentials::UserPassword {
            user: "job".into(),
            password: "right".into(),
        })
        .connect()
        .unwrap();
    // No agent needed to see an argument over the server's payload limit
    // (1 MiB by default) fail alone, with the server's words.
    let out = pool.map(len, [vec![0u8; 2 << 20]]).unwrap();
    assert!(
        matches!(&out[0], Err(TaskError::Failed { reason }) if reason.contains("payload")),
        "{out:?}"
    );
}

fn len(v: Vec<u8>) -> usize {
    v.len()
}

/// Item 100 says on the FIFO that it runs; every item returns `3 i`.
fn marked((i, fifo): (u64, String)) -> u64 {
    if i == 100 {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        f.write_all(b"100\n").unwrap();
    }
    3 * i
}

#[test]
fn the_server_restarted_mid_map_loses_and_doubles_nothing() {
    let Some(mut scene) = Scene::new() else {
        return;
    };
    let (fifo, started) = scene.fifo("started");
    let _a = AgentProc::start(scene.url(), "restart", 2, &[]);
    let _b = AgentProc::start(scene.url(), "restart", 2, &[]);
    let pool = ClusterPool::builder(scene.url(), "restart")
        .heartbeat_timeout(Duration::from_secs(2))
        .connect()
        .unwrap();
    let items: Vec<_> = (0..400u64).map(|i| (i, fifo.clone())).collect();
    let map = std::thread::spawn(move || pool.map(marked, items));
    let mut r = std::io::BufReader::new(&started);
    assert_eq!(read_line(&mut r), "100\n");
    let restarted = std::time::Instant::now();
    scene.server.restart();
    let out = map.join().unwrap().unwrap();
    assert_eq!(out, (0..400).map(|i| Ok(3 * i)).collect::<Vec<_>>());
    // Agents and driver find the server again at once, not when a pull or
    // a reader gives up (which once took 80 s here); 3 s on a quiet machine.
    let took = restarted.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(scene.server.queue_state("restart"), (0, 0, 0));
}

const DRIVER: &str = "BROOD_CLUSTER_TEST_DRIVER";

/// Logs its run (item 2 also says so on the FIFO), then takes 200 ms.
fn slow((i, log, fifo): (u64, String, String)) -> u64 {
    append(&log, &format!("{i}"));
    if i == 2 {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        f.write_all(b"2\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    i
}

/// The driver, when this binary is started with `DRIVER` set (to the URL,
/// with the log and the FIFO after it): a map of 200 slow items. A no-op in
/// the normal run.
#[test]
fn driver_role() {
    let Some(args) = std::env::var_os(DRIVER) else {
        return;
    };
    let args = args.to_string_lossy().into_owned();
    let [url, log, fifo]: [&str; 3] = args.split(' ').collect::<Vec<_>>().try_into().unwrap();
    let pool = ClusterPool::connect(url, "orphaned").unwrap();
    let items = (0..200u64).map(|i| (i, log.to_string(), fifo.to_string()));
    let _ = pool.map(slow, items);
}

#[test]
fn agents_drop_the_tasks_of_a_driver_that_was_killed() {
    let Some(scene) = Scene::new() else { return };
    let log = scene.file("runs");
    let (fifo, started) = scene.fifo("started");
    let _a = AgentProc::start(scene.url(), "orphaned", 1, &[]);
    let mut driver = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "driver_role", "--nocapture"])
        .env(DRIVER, format!("{} {log} {fifo}", scene.url()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The driver's map runs (item 2 started): SIGKILL the driver.
    let mut r = std::io::BufReader::new(&started);
    assert_eq!(read_line(&mut r), "2\n");
    driver.kill().unwrap();
    driver.wait().unwrap();
    // The agent drains the queue: the tasks it takes once the driver has
    // been silent for 5 s, it drops unrun. (Run one by one, the 200 items
    // would take 40 s.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (pending, acks, _) = scene.server.queue_state("orphaned");
        if pending == 0 && acks == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never drained"
        );
        // Polls the server's state: nothing to wait on but the server.
        std::thread::sleep(Duration::from_millis(100));
    }
    let runs = lines(&log).len();
    assert!(runs < 100, "{runs} of 200 items ran for a dead driver");
}
