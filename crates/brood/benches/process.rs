//! `cargo bench -p brood --bench process`: start+join of a small function per
//! start method, against raw fork+_exit+waitpid, the procspawn crate and
//! CPython's multiprocessing with the same method; result bandwidth against a
//! raw pipe; memory of the fork server and of a child.
//!
//! Timings are interleaved: each round runs every contender once for a batch,
//! and the figure is the median per-iteration time over the rounds.
//! `BROOD_BENCH_ROUNDS` (default 7) sets the number of rounds.

mod common;

use brood::{Process, StartMethod};
use common::{median, raw_fork};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Instant;

// The re-executed children (Spawn, and the fork server) are caught by this
// constructor before Rust's runtime setup for `main` (which, among other things,
// reads /proc/self/maps to place the main thread's stack guard): about 0.1 ms
// less per Spawn than `brood::init()` as main's first line, which also works
// (and is kept below). Run with BROOD_BENCH_NO_CTOR=1 to measure that path.
// (This is what `brood::init_before_main!()` expands to, made switchable.)
#[used]
#[unsafe(link_section = ".init_array")]
static BEFORE_MAIN: extern "C" fn() = before_main;

extern "C" fn before_main() {
    if std::env::var_os("BROOD_BENCH_NO_CTOR").is_none() {
        brood::init();
    }
}

fn small(x: u64) -> u64 {
    x + 1
}

fn bytes(n: usize) -> Vec<u8> {
    vec![0x5a; n]
}

/// Blocks until the FIFO at `path` is written and closed; for memory figures.
fn hold(path: String) -> u8 {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    1
}

fn time_batch(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64
}

fn brood_once(m: StartMethod) {
    let h = Process::new(small, 41)
        .start_method(m)
        .start()
        .expect("start");
    assert_eq!(h.join().expect("join"), 42);
}

fn procspawn_once() {
    let h = procspawn::spawn(41u64, |x| x + 1);
    assert_eq!(h.join().expect("procspawn join"), 42);
}

const PY: &str = r#"
import multiprocessing as mp, sys, time
def small(x):
    return x + 1
def run(q, x):
    q.put(small(x))
if __name__ == "__main__":
    method, n = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context(method)
    # warm up (starts the fork server once, imports)
    p = ctx.Process(target=small, args=(1,)); p.start(); p.join()
    t = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=small, args=(41,)); p.start(); p.join()
    print((time.perf_counter() - t) / n)
"#;

fn python(method: &str, n: usize, script: &std::path::Path) -> Option<f64> {
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(method)
        .arg(n.to_string())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Raw pipe: a forked child writes `n` bytes, we read them into a Vec; with
/// `big`, the pipe's buffer is raised to 1 MiB first (as brood does for large
/// frames).
fn raw_pipe(n: usize, big: bool) -> f64 {
    let mut fds = [0; 2];
    // SAFETY: valid array for pipe2.
    unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    // SAFETY: fresh descriptors.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if big {
        // SAFETY: fcntl on our own open pipe.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
    }
    let t = Instant::now();
    // SAFETY: the child writes and _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let data = bytes(n);
        let mut f = std::fs::File::from(w);
        let _ = f.write_all(&data);
        // SAFETY: leaving the child.
        unsafe { libc::_exit(0) };
    }
    drop(w);
    let mut got = Vec::with_capacity(n);
    std::fs::File::from(r).read_to_end(&mut got).unwrap();
    let mut st = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(got.len(), n);
    t.elapsed().as_secs_f64()
}

fn brood_bytes(m: StartMethod, n: usize) -> f64 {
    let t = Instant::now();
    let got = Process::new(bytes, n)
        .start_method(m)
        .start()
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(got.len(), n);
    t.elapsed().as_secs_f64()
}

fn rollup(pid: u32) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb = v.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some((k.to_string(), kb))
        })
        .collect()
}

fn field(r: &[(String, u64)], k: &str) -> f64 {
    r.iter()
        .find(|(n, _)| n == k)
        .map_or(0.0, |(_, v)| *v as f64 / 1024.0)
}

fn child_memory(m: StartMethod, dir: &std::path::Path) -> (f64, f64) {
    let fifo = dir.join(format!("hold-{m:?}"));
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    let h = Process::new(hold, fifo.to_str().unwrap().to_string())
        .start_method(m)
        .start()
        .unwrap();
    // Opening the FIFO for writing blocks until the child has opened it for
    // reading: by then it is running the function.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let r = rollup(h.pid());
    w.write_all(b"x").unwrap();
    drop(w);
    h.join().unwrap();
    (
        field(&r, "Pss"),
        field(&r, "Private_Clean") + field(&r, "Private_Dirty"),
    )
}

fn main() {
    brood::init();
    procspawn::init();
    // A profiling aid: `BROOD_BENCH_PROFILE=Fork|Spawn|ForkServer|raw` runs only
    // that start+join in a loop (for `perf record`).
    if let Ok(which) = std::env::var("BROOD_BENCH_PROFILE") {
        let m = match which.as_str() {
            "raw" => None,
            "Spawn" => Some(StartMethod::Spawn),
            "ForkServer" => Some(StartMethod::ForkServer),
            _ => Some(StartMethod::Fork),
        };
        for _ in 0..std::env::var("BROOD_BENCH_N")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3000)
        {
            m.map_or_else(raw_fork, brood_once);
        }
        return;
    }
    let rounds: usize = std::env::var("BROOD_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("mp_bench.py");
    std::fs::write(&script, PY).unwrap();

    // Warm up: the fork server, page cache, the reaper.
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        brood_once(m);
    }
    procspawn_once();

    // Each round times every contender once, Python included, so that a change
    // in the machine's load hits all of them alike; ratios are taken within a
    // round, then the median over rounds is reported.
    let batch = 40;
    let mut t: [Vec<f64>; 8] = Default::default();
    for _ in 0..rounds {
        t[0].push(time_batch(batch, raw_fork));
        t[1].push(time_batch(batch, || brood_once(StartMethod::Fork)));
        t[2].push(time_batch(batch, || brood_once(StartMethod::ForkServer)));
        t[3].push(time_batch(batch / 4, || brood_once(StartMethod::Spawn)));
        t[4].push(time_batch(batch / 4, procspawn_once));
        for (i, (m, n)) in [("fork", 20), ("forkserver", 20), ("spawn", 3)]
            .into_iter()
            .enumerate()
        {
            t[5 + i].push(python(m, n, &script).unwrap_or(f64::NAN));
        }
    }
    let per_round =
        |a: usize, b: usize| median(t[a].iter().zip(&t[b]).map(|(x, y)| x / y).collect());
    let (raw, fork, fsrv, spawn, procspawn) = (
        median(t[0].clone()),
        median(t[1].clone()),
        median(t[2].clone()),
        median(t[3].clone()),
        median(t[4].clone()),
    );
    let py: Vec<f64> = (5..8).map(|i| median(t[i].clone())).collect();
    let us = |s: f64| s * 1e6;
    println!(
        "start+join of fn(u64) -> u64; medians of {rounds} interleaved rounds (ratios within a round)"
    );
    println!("  raw fork+_exit+waitpid   {:>8.1} us", us(raw));
    println!(
        "  brood Fork               {:>8.1} us   {:.2}x raw fork (target <= 1.5)  | python fork       {:>8.1} us: brood {:.1}x faster (target >= 12)",
        us(fork),
        per_round(1, 0),
        us(py[0]),
        per_round(5, 1)
    );
    println!(
        "  brood ForkServer         {:>8.1} us   {:.2}x raw fork (target <= 3)    | python forkserver {:>8.1} us: brood {:.1}x faster (target >= 30)",
        us(fsrv),
        per_round(2, 0),
        us(py[1]),
        per_round(6, 2)
    );
    println!(
        "  brood Spawn              {:>8.1} us   {:.2}x procspawn (target <= 1)  | python spawn      {:>8.1} us: brood {:.1}x faster (target >= 40)",
        us(spawn),
        per_round(3, 4),
        us(py[2]),
        per_round(7, 3)
    );
    println!("  procspawn                {:>8.1} us", us(procspawn));
    if py.iter().any(|p| p.is_nan()) {
        println!("  (python3 with multiprocessing was not available: its figures are NaN)");
    }

    let n = 64 << 20;
    let mut b: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        b[0].push(raw_pipe(n, false));
        b[1].push(brood_bytes(StartMethod::Fork, n));
        b[2].push(brood_bytes(StartMethod::ForkServer, n));
        b[3].push(raw_pipe(n, true));
    }
    let [praw, pfork, pfs, pbig] = b.map(median);
    let gbs = |s: f64| n as f64 / s / 1e9;
    println!(
        "result bandwidth, a {} MiB Vec<u8> (child allocates, sends; parent receives)",
        n >> 20
    );
    println!("  raw pipe                   {:>6.2} GB/s", gbs(praw));
    println!(
        "  raw pipe, 1 MiB buffer     {:>6.2} GB/s   (brood Fork {:.2}x of this)",
        gbs(pbig),
        pbig / pfork
    );
    println!(
        "  brood Fork                 {:>6.2} GB/s   {:.2}x raw (target >= 0.8)",
        gbs(pfork),
        praw / pfork
    );
    println!(
        "  brood ForkServer           {:>6.2} GB/s   {:.2}x raw (target >= 0.8)",
        gbs(pfs),
        praw / pfs
    );

    let server = brood::fork_server_pid().expect("the fork server runs");
    let r = rollup(server);
    println!("memory (smaps_rollup)");
    println!(
        "  fork server pid {server}: Rss {:.2} MiB (target <= 8), Pss {:.2} MiB",
        field(&r, "Rss"),
        field(&r, "Pss")
    );
    for m in [
        StartMethod::ForkServer,
        StartMethod::Fork,
        StartMethod::Spawn,
    ] {
        let (pss, private) = child_memory(m, dir.path());
        println!(
            "  {m:?} child running a small function: private {private:.2} MiB (target <= 2), Pss {pss:.2} MiB"
        );
    }
}
