//! A machine that vanishes from the network: an agent in a network namespace
//! of its own, joined to this one by a veth pair the test makes (a private
//! /30), whose link is cut while it holds tasks. The server listens only on
//! the host side of that pair. As root, with `ip` (iproute2); skipped with a
//! message otherwise.

mod support;

use brood::CallOptions;
use brood_cluster::ClusterPool;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

/// The agent, when this binary is started with `BROOD_AGENT` set; a no-op
/// in the normal run.
#[test]
fn agent_role() {
    brood_cluster::agent_from_env();
}

const HOLD: &str = "BROOD_CLUSTER_TEST_HOLD";

/// The network namespace a process runs in, by its inode.
fn netns_of(pid: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino()
}

/// Says on the FIFO that item `i` runs, and where (its network namespace);
/// in an agent started with `HOLD` set, then never returns.
fn held((i, fifo): (u64, String)) -> (u64, u64) {
    let ns = netns_of("self");
    let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    // One write, so that two tasks' lines cannot interleave.
    f.write_all(format!("{i} {ns}\n").as_bytes()).unwrap();
    drop(f);
    if std::env::var_os(HOLD).is_some() {
        loop {
            std::thread::park();
        }
    }
    (i * 10, ns)
}

/// A network namespace and a veth pair between it and this one, with the
/// addresses of a /30; removed on drop, whatever was made of it.
struct Netns {
    name: String,
    host_dev: String,
    ns_dev: String,
    host_addr: String,
}

/// Runs `ip` with `args`; its complaint if it fails.
fn try_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) {
    try_ip(args).unwrap();
}

impl Netns {
    /// `None`, with a message, where not root or `ip` is missing.
    fn make() -> Option<Netns> {
        // SAFETY: geteuid(2) only returns a number.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: a network namespace needs root");
            return None;
        }
        if Command::new("ip").arg("-V").output().is_err() {
            eprintln!("SKIPPED: `ip` is missing; test.sh installs iproute2 with apt");
            return None;
        }
        let pid = std::process::id();
        // A /30 of 10.254.0.0/16 of this process's own (pids < 2^22).
        let base = (pid % 16384) * 4;
        let (hi, lo) = (base / 256, base % 256);
        let net = Netns {
            name: format!("brood-netcut-{pid}"),
            host_dev: format!("bnc{pid}h"),
            ns_dev: format!("bnc{pid}n"),
            host_addr: format!("10.254.{hi}.{}", lo + 1),
        };
        let ns_addr = format!("10.254.{hi}.{}/30", lo + 2);
        // Root without the rights to make them (a container, say): skip.
        let veth = [
            "link",
            "add",
            &net.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &net.ns_dev,
            "netns",
            &net.name,
        ];
        if let Err(e) = try_ip(&["netns", "add", &net.name]).and_then(|()| try_ip(&veth)) {
            eprintln!("SKIPPED: cannot make a network namespace and a veth pair here: {e}");
            return None;
        }
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_addr),
            "dev",
            &net.host_dev,
        ]);
        ip(&["link", "set", &net.host_dev, "up"]);
        ip(&["-n", &net.name, "addr", "add", &ns_addr, "dev", &net.ns_dev]);
        ip(&["-n", &net.name, "link", "set", &net.ns_dev, "up"]);
        Some(net)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The namespace's end of the link goes down: nothing crosses either
    /// way, and the host's address stays (the driver reaches it locally).
    fn cut(&self) {
        ip(&["-n", &self.name, "link", "set", &self.ns_dev, "down"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing the namespace removes its end of the pair, and so the
        // pair; the host's end is deleted too in case the move never
        // happened.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .stderr(std::process::Stdio::null())
            .output();
    }
}

#[test]
fn an_agent_cut_from_the_server_loses_nothing() {
    // Made first, so dropped last: after every process is gone.
    let Some(net) = Netns::make() else { return };
    let Some(server) = Server::start_on(&net.host_addr, &[]) else {
        return;
    };
    let scene = Scene::of(server);
    let (fifo, started) = scene.fifo("started");
    let mut r = std::io::BufReader::new(&started);
    let heartbeat = Duration::from_secs(2);
    // Agent A, in the namespace, holds the two tasks it takes, forever.
    let a = AgentProc::start_in_netns(&net.path(), scene.url(), "netcut", 2, &[(HOLD, "1")]);
    let pool = ClusterPool::builder(scene.url(), "netcut")
        .heartbeat_timeout(heartbeat)
        .connect()
        .unwrap();
    let items: Vec<_> = (0..20u64).map(|i| (i, fifo.clone())).collect();
    // Not scoped: a failed check below must not wait for the map.
    // One item a task: A's two workers hold two items.
    let map =
        std::thread::spawn(move || pool.with(CallOptions::new().chunk_size(1)).map(held, items));
    let here = netns_of("self");
    let theirs = netns_of(&a.pid().to_string());
    assert_ne!(here, theirs);
    // The next `n` items to start, sorted; each must run in namespace `ns`.
    let mut next_runs = |n: usize, ns: u64| -> Vec<u64> {
        let mut items: Vec<u64> = (0..n)
            .map(|_| {
                let line = read_line(&mut r);
                let (i, at) = line.trim().split_once(' ').unwrap();
                assert_eq!(at.parse::<u64>().unwrap(), ns, "item {i} ran elsewhere");
                i.parse().unwrap()
            })
            .collect();
        items.sort();
        items
    };
    let cut_items = next_runs(2, theirs);
    // Agent B, here, runs the 18 others while A holds its two.
    let _b = AgentProc::start(scene.url(), "netcut", 2, &[]);
    let rest: Vec<u64> = (0..20).filter(|i| !cut_items.contains(i)).collect();
    assert_eq!(next_runs(18, here), rest);
    // A's machine vanishes: its heartbeats stop, and the server gives its
    // two tasks to B after the heartbeat timeout (plus B's next pull).
    net.cut();
    let cut = Instant::now();
    let again = next_runs(2, here);
    let took = cut.elapsed();
    assert_eq!(again, cut_items);
    eprintln!("the cut agent's tasks ran again on another {took:?} after the cut");
    assert!(took < heartbeat + Duration::from_secs(8), "{took:?}");
    // Every item one result, from B (A's two never answered).
    let out = map.join().unwrap().unwrap();
    assert_eq!(out, (0..20).map(|i| Ok((i * 10, here))).collect::<Vec<_>>());
    assert_eq!(scene.server.queue_state("netcut"), (0, 0, 0));
}
