//! A Pool among hostile neighbours: processes of another uid on the same
//! machine try every way to reach the pool's channels while a 20,000-item map
//! runs. Nothing they do may stall, slow or feed it.
//!
//! The attackers (Python, as uid 65534) read `/proc/net/unix` over and over:
//! every abstract socket listed there whose name says brood (the only ones
//! the test may touch) they connect to, write garbage and a forged hello, and
//! close; they also try to open the pool's and its workers'
//! descriptors through `/proc/<pid>/fd`. Brood's channels are socketpairs
//! handed down to each worker, so they find nothing of the pool's to reach.

mod support;

use brood::{Command, Pool, StartMethod, Stdio};
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const ITEMS: u64 = 20_000;
const NOBODY: u32 = 65534;

fn square(x: u64) -> u64 {
    x * x
}

/// One attacker: floods until its stdin closes, then prints what it reached.
const ATTACKER: &str = r#"
import os, select, socket, sys
targets = [int(p) for p in sys.argv[1:]]
rounds = connected = fds_opened = 0
ready = False
while not select.select([sys.stdin], [], [], 0.001)[0]:
    rounds += 1
    try:
        lines = open('/proc/net/unix').read().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        parts = line.split()
        if len(parts) < 8 or not parts[7].startswith('@') or 'brood' not in parts[7]:
            continue
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect('\0' + parts[7][1:])
            connected += 1
            s.send(b'\xff' * 64 + (12345).to_bytes(8, 'little'))
        except OSError:
            pass
        s.close()
    for pid in targets:
        try:
            for fd in os.listdir('/proc/%d/fd' % pid):
                try:
                    os.close(os.open('/proc/%d/fd/%s' % (pid, fd), os.O_RDWR))
                    fds_opened += 1
                except OSError:
                    pass
        except OSError:
            pass
    if not ready:
        print('ready', flush=True)
        ready = True
print(rounds, connected, fds_opened, flush=True)
"#;

struct Attacker {
    child: brood::Popen,
    out: BufReader<brood::ChildStdout>,
}

impl Attacker {
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line
    }
}

fn attacker(targets: &[u32], cleanup: &mut Cleanup) -> Attacker {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(ATTACKER);
    for t in targets {
        cmd.arg(t.to_string());
    }
    let mut child = cmd
        .uid(NOBODY)
        .gid(NOBODY)
        .groups(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 as uid 65534");
    cleanup.add(child.pid());
    let out = BufReader::new(child.stdout.take().unwrap());
    Attacker { child, out }
}

/// Starts three attackers and waits until each has made a whole round.
fn attack(targets: &[u32], cleanup: &mut Cleanup) -> Vec<Attacker> {
    let mut attackers: Vec<Attacker> = (0..3).map(|_| attacker(targets, cleanup)).collect();
    for a in &mut attackers {
        assert_eq!(a.line(), "ready\n");
    }
    attackers
}

/// Stops the attackers; their (rounds, connections made, descriptors opened).
fn stop(attackers: Vec<Attacker>) -> Vec<(u64, u64, u64)> {
    attackers
        .into_iter()
        .map(|mut a| {
            drop(a.child.stdin.take());
            let line = a.line();
            assert!(a.child.wait().unwrap().success(), "attacker failed");
            let n: Vec<u64> = line
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            (n[0], n[1], n[2])
        })
        .collect()
}

/// Maps of 20,000 items timed together (one is over in milliseconds).
const MAPS: usize = 10;

/// The time of [`MAPS`] 20,000-item maps, every result checked.
fn timed_map(pool: &Pool) -> Duration {
    let mut took = Duration::ZERO;
    for _ in 0..MAPS {
        let t = Instant::now();
        let out = pool.map(square, 0..ITEMS).unwrap();
        took += t.elapsed();
        assert_eq!(out.len() as u64, ITEMS);
        for (i, r) in out.into_iter().enumerate() {
            assert_eq!(r, Ok((i as u64) * (i as u64)), "item {i}");
        }
    }
    took
}

/// Socket inodes behind `pid`'s descriptors.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The `/proc/net/unix` rows (flags, path) of these socket inodes.
fn unix_sockets(inodes: &[u64]) -> Vec<(u32, String)> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let inode: u64 = f.get(6)?.parse().ok()?;
            inodes.contains(&inode).then(|| {
                let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
                (flags, f.get(7).unwrap_or(&"").to_string())
            })
        })
        .collect()
}

/// `__SO_ACCEPTCON` in `/proc/net/unix`'s flags: a listening socket.
const LISTENING: u32 = 1 << 16;

#[test]
fn no_pool_socket_has_a_name_or_listens_under_any_start_method() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let mut cleanup = Cleanup::default();
        let pool = Pool::builder(2).start_method(m).build().unwrap();
        let mut pids = pool.worker_pids();
        for &p in &pids {
            cleanup.add(p);
        }
        assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
        pids.push(me());
        pids.extend(brood::fork_server_pid());
        let inodes: Vec<u64> = pids.iter().flat_map(|&p| socket_inodes(p)).collect();
        assert!(
            !inodes.is_empty(),
            "{m:?}: the workers' channels are sockets"
        );
        for (flags, path) in unix_sockets(&inodes) {
            assert_eq!(flags & LISTENING, 0, "{m:?}: a listening socket {path:?}");
            assert!(path.is_empty(), "{m:?}: a socket with a name: {path:?}");
        }
        pool.close().unwrap();
    }
}

#[test]
fn another_uid_cannot_stall_slow_or_feed_a_map() {
    require_own_process();
    let mut cleanup = Cleanup::default();
    let pool = Pool::new(2).unwrap();
    let mut targets = pool.worker_pids();
    for &p in &targets {
        cleanup.add(p);
    }
    targets.push(me());
    targets.extend(brood::fork_server_pid());
    timed_map(&pool); // warm: both workers up, the function resolved

    // Interleaved, so that the machine's drift hits both alike.
    let (mut quiet, mut attacked) = (Vec::new(), Vec::new());
    let mut reports = Vec::new();
    for _ in 0..3 {
        quiet.push(timed_map(&pool));
        let attackers = attack(&targets, &mut cleanup);
        attacked.push(timed_map(&pool));
        reports.extend(stop(attackers));
    }
    quiet.sort();
    attacked.sort();
    let ratio = attacked[1].as_secs_f64() / quiet[1].as_secs_f64();
    eprintln!(
        "{MAPS} maps of 20,000 items: quiet median {:?}, attacked median {:?}, ratio {ratio:.2}; \
         attackers (rounds, connections, descriptors): {reports:?}",
        quiet[1], attacked[1]
    );
    assert!(
        reports.iter().all(|&(rounds, _, _)| rounds > 0),
        "the attackers ran"
    );
    assert!(
        reports.iter().all(|&(_, _, opened)| opened == 0),
        "another uid opened our descriptors: {reports:?}"
    );
    assert!(ratio < 1.5, "attacked {attacked:?} against quiet {quiet:?}");
    // Still the same two workers, and still serving.
    assert_eq!(pool.map(square, 0..10u64).unwrap().len(), 10);
    pool.close().unwrap();
    let _ = std::io::stderr().flush();
}
