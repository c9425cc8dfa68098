//! Chaos: 20,000 items while the agents are SIGKILLed (each with its
//! workers: its whole process group) and started again every ~200 ms, and
//! `nats-server` is restarted (same port, same store) half-way. Every item
//! must get exactly one result, the right one, within a bound.

mod support;

use brood::CallOptions;
use brood_cluster::ClusterPool;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set; a no-op
/// in the normal run.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

/// The file where an agent started with it set logs each run of an item.
const RUNS: &str = "BROOD_CLUSTER_TEST_RUNS";

/// What item `i` must return: a value the driver checks.
fn expected(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 1_000_003
}

/// Logs its run, with its process group (its agent's pid), then returns
/// the value the driver checks.
fn item(i: u64) -> u64 {
    if let Some(log) = std::env::var_os(RUNS) {
        // SAFETY: getpgrp(2) only returns a number.
        let group = unsafe { libc::getpgrp() };
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        // One write of one line, appended: concurrent workers' lines never
        // interleave.
        f.write_all(format!("{i} {group}\n").as_bytes()).unwrap();
    }
    expected(i)
}

const ITEMS: u64 = 20_000;

/// Items per task: 2,500 tasks, so that each kill loses work in flight
/// and the map lasts long enough for the chaos (one item a task takes
/// ~30 s on 2 busy CPUs without any kill).
const CHUNK: usize = 8;

/// How often an agent is killed (and another started).
const KILL_EVERY: Duration = Duration::from_millis(200);

/// The whole map's bound, on 2 CPUs shared with other builds.
const BOUND: Duration = Duration::from_secs(90);

/// The runs logged so far: the new lines of the log, read as they come.
struct Runs {
    file: std::fs::File,
    partial: String,
    groups: HashSet<u32>,
    items: Vec<u32>,
}

impl Runs {
    fn open(path: &str) -> Runs {
        Runs {
            file: {
                std::fs::File::create(path).unwrap();
                std::fs::File::open(path).unwrap()
            },
            partial: String::new(),
            groups: HashSet::new(),
            items: vec![0; ITEMS as usize],
        }
    }

    /// Reads what was logged since the last call.
    fn read(&mut self) {
        self.file.read_to_string(&mut self.partial).unwrap();
        let complete = self.partial.rfind('\n').map_or(0, |at| at + 1);
        for line in self.partial[..complete].lines() {
            let (i, group) = line.split_once(' ').unwrap();
            self.items[i.parse::<usize>().unwrap()] += 1;
            self.groups.insert(group.parse().unwrap());
        }
        self.partial.drain(..complete);
    }

    /// Whether the agent with this pid has run an item.
    fn worked(&self, agent: u32) -> bool {
        self.groups.contains(&agent)
    }
}

#[test]
fn twenty_thousand_items_through_killed_agents_and_a_server_restart() {
    let Some(mut scene) = Scene::new() else {
        return;
    };
    let log = scene.file("runs");
    let mut runs = Runs::open(&log);
    let env = [(RUNS, log.as_str())];
    let start = |url: &str| AgentProc::start_group(url, "chaos", 2, &env);
    let pool = ClusterPool::builder(scene.url(), "chaos")
        .heartbeat_timeout(Duration::from_secs(1))
        // Agents die so often that an unlucky task may be lost several
        // times: it must still be answered, not failed.
        .max_deliveries(1000)
        .connect()
        .unwrap();
    let mut agents: Vec<AgentProc> = (0..2).map(|_| start(scene.url())).collect();
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&done);
    let call = CallOptions::new()
        .chunk_size(CHUNK)
        .progress(move |p| seen.store(p.done, Ordering::Relaxed));
    // Not scoped: a failed check below must not wait for the map.
    let map = std::thread::spawn(move || pool.with(call).map(item, 0..ITEMS));
    let (mut kills, mut exits, mut restarted) = (0usize, 0, None);
    // The process groups killed: each agent's pid.
    let mut killed = HashSet::new();
    while !map.is_finished() {
        assert!(
            started.elapsed() < BOUND,
            "not done after {BOUND:?}: {} items answered, {kills} agents killed, \
             the server restarted at {restarted:?}",
            done.load(Ordering::Relaxed)
        );
        // The cadence of the chaos, not a wait for anything.
        std::thread::sleep(KILL_EVERY);
        runs.read();
        // An agent that ended by itself (it started while the server was
        // away, say) is replaced.
        for a in agents.iter_mut() {
            if !a.running() {
                *a = start(scene.url());
                exits += 1;
            }
        }
        // The next agent in turn that has run items (so that every kill
        // lands on a working agent, however slowly agents start on a busy
        // machine) dies with its workers, and another starts.
        let victim = (0..agents.len())
            .map(|k| (kills + k) % agents.len())
            .find(|&k| runs.worked(agents[k].pid()));
        if let Some(k) = victim {
            agents[k].kill_group();
            killed.insert(agents[k].pid());
            kills += 1;
            let live: Vec<u32> = agents
                .iter_mut()
                .filter_map(|a| a.running().then(|| a.pid()))
                .collect();
            scene.family.reap_dead(&live);
            agents[k] = start(scene.url());
        }
        // Half-way (half the items answered), the server stops and starts
        // again.
        if restarted.is_none() && done.load(Ordering::Relaxed) >= ITEMS as usize / 2 {
            scene.server.restart();
            restarted = Some(started.elapsed());
        }
    }
    let took = started.elapsed();
    let out = map.join().unwrap().unwrap();
    runs.read();
    let again = runs.items.iter().filter(|&&n| n > 1).count();
    eprintln!(
        "{ITEMS} items in {took:?}: {kills} agents killed ({exits} ended by themselves), \
         {again} items run more than once, the server restarted at {restarted:?}"
    );
    assert_eq!(out.len(), ITEMS as usize);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r, &Ok(expected(i as u64)), "item {i}");
    }
    assert!(restarted.is_some(), "the map ended before half of it");
    assert!(kills >= 5, "only {kills} agents killed");
    // Kills landed on work in flight: its items ran again elsewhere, and
    // each still has one result.
    assert!(again > 0, "no kill caught an agent running items");
    assert!(runs.items.iter().all(|&n| n > 0));
    // Every killed agent's workers died with it: nothing of its group runs
    // (a live agent's group is its own, whatever its pid).
    let live: Vec<u32> = agents.iter().map(AgentProc::pid).collect();
    let left: Vec<u32> = processes()
        .iter()
        .filter(|p| killed.contains(&p.pgid) && !live.contains(&p.pgid) && p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    assert!(left.is_empty(), "alive in killed agents' groups: {left:?}");
    assert_eq!(scene.server.queue_state("chaos"), (0, 0, 0));
}
