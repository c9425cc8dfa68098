//! A job seen from outside (`JobStatus`, what `brood job` shows), with a
//! real `nats-server -js` and real agent processes (this test binary started
//! again as an agent): a held task shows as running, with its agent and its
//! item; answered tasks count; a job the server never saw is a typed error.

mod support;

use brood::remote::BuildId;
use brood::{CallOptions, TaskError};
use brood_cluster::{ClusterError, ClusterPool, Credentials, JobStatus, JobWatch};
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set; a no-op
/// in the normal run.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

const HOLD: &str = "BROOD_CLUSTER_TEST_HOLD";

/// In an agent started with `HOLD` set, says so on the FIFO and never
/// returns; else item 2 panics and the others give `i * 10`.
fn held((i, fifo): (u64, String)) -> u64 {
    if std::env::var_os(HOLD).is_some() {
        announce_and_park(&fifo, &i.to_string());
    }
    assert_ne!(i, 2, "item 2 fails");
    i * 10
}

/// The job's status, read again until `ok` holds of it (agents publish
/// every second; a loaded machine may be late), or a panic with the last.
fn status_until(url: &str, job: &str, ok: impl Fn(&JobStatus) -> bool) -> JobStatus {
    let mut last = None;
    for _ in 0..30 {
        let s = JobStatus::read(url, Credentials::None, job, JobStatus::LISTEN).unwrap();
        if ok(&s) {
            return s;
        }
        last = Some(s);
    }
    panic!("the job's status never came: {last:#?}");
}

#[test]
fn a_held_task_shows_its_agent_and_item_and_answered_tasks_count() {
    let Some(scene) = Scene::new() else { return };
    let (fifo, started) = scene.fifo("started");
    // Agent A, one worker, holds the first task it takes, forever.
    let mut a = AgentProc::start(scene.url(), "watched", 1, &[(HOLD, "1")]);
    let pool = ClusterPool::builder(scene.url(), "watched")
        .heartbeat_timeout(Duration::from_secs(2))
        .connect()
        .unwrap();
    // Three chunks of two items: A takes one (whichever the server has
    // first) and holds its first item.
    let items: Vec<_> = (0..6u64).map(|i| (i, fifo.clone())).collect();
    let map =
        std::thread::spawn(move || pool.with(CallOptions::new().chunk_size(2)).map(held, items));
    let first: u64 = read_line(&mut std::io::BufReader::new(&started))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first % 2, 0, "the first item of its chunk");

    let s = status_until(scene.url(), "watched", |s| {
        s.agents.len() == 1 && s.agents[0].running == 2 && s.drivers.len() == 1
    });
    let agent = &s.agents[0];
    assert_eq!(agent.pid, a.pid());
    assert_eq!(agent.workers, 1);
    assert_eq!(agent.build, BuildId::current().unwrap().to_string());
    assert_eq!((agent.answered, agent.failed), (0, 0));
    let longest = agent.longest.clone().expect("the held task");
    assert_eq!((longest.item, longest.items), (first, 2));
    // The map of the held task is the one whose driver beats.
    assert_eq!(s.drivers, std::slice::from_ref(&longest.map));
    // On the server: the held chunk given out, the two others waiting.
    assert_eq!((s.running, s.pending, s.done), (1, 2, 0));
    // Still stuck, and for longer.
    let again = status_until(scene.url(), "watched", |s| {
        s.agents.len() == 1
            && s.agents[0]
                .longest
                .as_ref()
                .is_some_and(|l| l.seconds > longest.seconds)
    });
    assert_eq!(again.agents[0].longest.as_ref().unwrap().item, first);

    // A goes (with its worker), B runs all six.
    a.kill();
    scene.family.reap_orphans();
    let b = AgentProc::start(scene.url(), "watched", 2, &[]);
    let out = map.join().unwrap().unwrap();
    for (i, r) in out.iter().enumerate() {
        match i {
            2 => assert!(matches!(r, Err(TaskError::Panicked { .. })), "{r:?}"),
            _ => assert_eq!(r, &Ok(i as u64 * 10)),
        }
    }
    let s = status_until(scene.url(), "watched", |s| {
        s.agents.len() == 1 && s.agents[0].answered == 6 && s.drivers.is_empty()
    });
    assert_eq!(s.agents[0].pid, b.pid());
    assert_eq!((s.done, s.failed), (6, 1));
    assert_eq!(
        (s.agents[0].running, s.agents[0].longest.clone()),
        (0, None)
    );
    // The map is over: nothing queued; its three outcomes stored until
    // they age out on a server before 2.10.11, gone at once on a later one.
    let stored = if scene.server.drops_results_at_the_end() {
        0
    } else {
        3
    };
    assert_eq!((s.pending, s.running, s.results), (0, 0, stored));
}

#[test]
fn a_job_the_server_never_saw_is_an_error_naming_it() {
    let Some(scene) = Scene::new() else { return };
    let err =
        JobStatus::read(scene.url(), Credentials::None, "nosuch", Duration::ZERO).unwrap_err();
    assert_eq!(
        err,
        ClusterError::NoSuchJob {
            job: "nosuch".into(),
            url: scene.url().into()
        }
    );
    assert!(err.to_string().contains("\"nosuch\""), "{err}");
    // Once a driver has been there, the job is there, idle.
    let _pool = ClusterPool::connect(scene.url(), "nosuch").unwrap();
    let s = JobStatus::read(scene.url(), Credentials::None, "nosuch", Duration::ZERO).unwrap();
    assert_eq!((s.pending, s.running, s.done), (0, 0, 0));
    assert!(s.agents.is_empty() && s.drivers.is_empty(), "{s:?}");
}

fn triple(x: u64) -> u64 {
    3 * x
}

#[test]
fn a_watch_sees_the_job_again_after_a_server_restart() {
    let Some(mut scene) = Scene::new() else {
        return;
    };
    let _a = AgentProc::start(scene.url(), "restarts", 1, &[]);
    let pool = ClusterPool::connect(scene.url(), "restarts").unwrap();
    let watch = JobWatch::open(scene.url(), Credentials::None, "restarts").unwrap();
    // Its agent's record, until it has answered `n` tasks (read again as
    // the records come, every second).
    let answered = |n: u64| {
        (0..60).any(|_| {
            std::thread::sleep(Duration::from_millis(500));
            watch
                .status()
                .is_ok_and(|s| s.agents.len() == 1 && s.agents[0].answered == n)
        })
    };
    assert_eq!(pool.map(triple, [1u64]).unwrap(), [Ok(3)]);
    assert!(answered(1), "{:?}", watch.status());
    scene.server.restart();
    // The same watch hears of a task answered after the restart: its
    // client reconnected, its listeners with it.
    assert_eq!(pool.map(triple, [2u64]).unwrap(), [Ok(6)]);
    assert!(answered(2), "{:?}", watch.status());
}

#[test]
fn no_server_is_a_connect_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", l.local_addr().unwrap());
    drop(l);
    let err = JobStatus::read(&url, Credentials::None, "j", Duration::ZERO).unwrap_err();
    assert!(
        matches!(&err, ClusterError::Connect { url: u, .. } if *u == url),
        "{err:?}"
    );
}
