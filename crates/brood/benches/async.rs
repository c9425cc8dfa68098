//! brood's async API against `tokio::process`, in the same run (feature
//! `tokio`): `cargo bench -p brood --features tokio --bench async`.
//!
//! - spawn + await `/bin/true`, one at a time, on a current-thread runtime;
//! - 1,000 children (`/bin/true`) spawned and awaited concurrently: the time,
//!   and the most OS threads the process had meanwhile — with brood's
//!   `wait_async`, with `tokio::process`, and with brood's blocking `wait`
//!   in `spawn_blocking` (what a user had to do before).
//!
//! Targets (issue 9): brood ≤ 1.1× tokio's time; fewer threads than
//! `spawn_blocking`.

mod common;

use common::{Group, ratio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const MANY: usize = 1000;
const TRUE: &[&str] = &["/bin/true"];
const SLEEP: &[&str] = &["sleep", "0.3"];

type Many = fn(&'static [&'static str]) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Samples the thread count every millisecond while it lives; the peak.
struct ThreadPeak {
    peak: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl ThreadPeak {
    fn start() -> ThreadPeak {
        let (peak, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let sampler = std::thread::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(threads(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        ThreadPeak {
            peak,
            stop,
            sampler: Some(sampler),
        }
    }

    /// The peak, less the sampler itself.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler.take().unwrap().join().unwrap();
        self.peak.load(Ordering::Relaxed) - 1
    }
}

fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

fn brood_child(program: &[&str]) -> brood::Child {
    brood::Command::new(program[0])
        .args(&program[1..])
        .spawn()
        .unwrap()
        .into_child()
}

async fn brood_many(program: &'static [&'static str]) {
    let mut waits = Vec::with_capacity(MANY);
    for _ in 0..MANY {
        let child = brood_child(program);
        waits.push(tokio::spawn(child.wait_async()));
    }
    for w in waits {
        assert!(w.await.unwrap().unwrap().success());
    }
}

async fn tokio_many(program: &'static [&'static str]) {
    let mut waits = Vec::with_capacity(MANY);
    for _ in 0..MANY {
        let mut child = tokio::process::Command::new(program[0])
            .args(&program[1..])
            .spawn()
            .unwrap();
        waits.push(tokio::spawn(async move { child.wait().await }));
    }
    for w in waits {
        assert!(w.await.unwrap().unwrap().success());
    }
}

async fn blocking_many(program: &'static [&'static str]) {
    let mut waits = Vec::with_capacity(MANY);
    for _ in 0..MANY {
        let child = brood_child(program);
        waits.push(tokio::task::spawn_blocking(move || child.wait()));
    }
    for w in waits {
        assert!(w.await.unwrap().unwrap().success());
    }
}

fn main() {
    brood::init();
    raise_nofile();
    println!("# brood async vs tokio::process ({})", common::context());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut g = Group::new("spawn + await /bin/true (current_thread)")
        .rounds(30)
        .iters(20);
    g.case("brood Command + wait_async", || {
        rt.block_on(async {
            let child = brood::Command::new("/bin/true").spawn().unwrap();
            assert!(child.child().wait_async().await.unwrap().success());
        })
    });
    g.case("tokio::process", || {
        rt.block_on(async {
            let mut child = tokio::process::Command::new("/bin/true").spawn().unwrap();
            assert!(child.wait().await.unwrap().success());
        })
    });
    let one = g.run();
    ratio(
        "brood / tokio, spawn + await",
        one.median("brood Command + wait_async"),
        one.median("tokio::process"),
        Some(1.1),
    );

    let mut g = Group::new(format!("{MANY} children spawned and awaited concurrently"))
        .rounds(7)
        .iters(1)
        .warmup(1);
    let cases: [(&str, Many); 3] = [
        ("brood wait_async", |p| Box::pin(brood_many(p))),
        ("tokio::process", |p| Box::pin(tokio_many(p))),
        ("brood wait in spawn_blocking", |p| {
            Box::pin(blocking_many(p))
        }),
    ];
    for (name, f) in cases {
        let rt = &rt;
        g.case(name, move || rt.block_on(f(TRUE)));
    }
    let many = g.run();
    ratio(
        "brood / tokio, 1000 concurrent",
        many.median("brood wait_async"),
        many.median("tokio::process"),
        Some(1.1),
    );
    // Threads: each way on a fresh runtime (tokio's blocking pool keeps its
    // threads for a while), with children that live long enough for all
    // the waits to overlap.
    println!("\n## most OS threads while {MANY} children (`sleep 0.3`) are awaited at once");
    let mut peaks = Vec::new();
    for (name, f) in cases {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let base = threads();
        let peak = ThreadPeak::start();
        rt.block_on(f(SLEEP));
        let p = peak.finish();
        println!("  {name:<48} {p} (before: {base}, added {})", p - base);
        peaks.push(p - base);
    }
    let verdict = if peaks[0] < peaks[2] { "met" } else { "MISSED" };
    println!("  brood wait_async adds fewer threads than spawn_blocking: {verdict}");
}
