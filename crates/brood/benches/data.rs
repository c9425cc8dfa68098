//! `cargo bench -p brood --bench data`: a Pool for data work. 2 M `f64` in 16
//! chunks on 2 workers, two jobs — mean/variance/histogram (memory-bound)
//! and the same plus a 200-step logistic map per value (CPU-bound) — by a
//! sequential loop, rayon (2 threads) and brood `Pool(2)` under each start
//! method, the data in a [`SharedSlice`] (no copy, no encoding); then
//! per-item overhead (`imap`, chunk 1) against CPython's
//! `Pool.imap(chunksize=1)`, and the parent's memory over a 10 M-item `imap`;
//! then a 200 MiB `Vec<u8>` result through a Pool (`map` of one item, and
//! `submit`) against the same from a `Process`, under Fork and ForkServer.
//! All in one run, interleaved; medians and ratios. `-- big` runs only the
//! last part.

mod common;

use brood::{Pool, Process, SharedSlice, StartMethod};
use common::{Group, context, fmt, ratio};
use std::ops::Range;
use std::time::Duration;

brood::init_before_main!();

const N: usize = 2_000_000;
const CHUNKS: usize = 16;
const BINS: usize = 16;

/// Count, sum, sum of squares and a histogram over [0, 1).
#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct Stats {
    n: u64,
    sum: f64,
    sq: f64,
    hist: [u64; BINS],
}

impl Stats {
    fn add(mut self, o: Stats) -> Stats {
        self.n += o.n;
        self.sum += o.sum;
        self.sq += o.sq;
        for (a, b) in self.hist.iter_mut().zip(o.hist) {
            *a += b;
        }
        self
    }
}

fn stats(xs: &[f64], steps: u32) -> Stats {
    let mut s = Stats::default();
    for &x in xs {
        let mut v = x;
        for _ in 0..steps {
            v = 3.9 * v * (1.0 - v);
        }
        s.n += 1;
        s.sum += v;
        s.sq += v * v;
        s.hist[((v * BINS as f64) as usize).min(BINS - 1)] += 1;
    }
    s
}

fn memory_bound((data, part): (SharedSlice<f64>, Range<usize>)) -> Stats {
    stats(&data[part], 0)
}

fn cpu_bound((data, part): (SharedSlice<f64>, Range<usize>)) -> Stats {
    stats(&data[part], 200)
}

fn parts() -> impl Iterator<Item = Range<usize>> {
    (0..CHUNKS).map(|k| k * N / CHUNKS..(k + 1) * N / CHUNKS)
}

fn on_pool(
    pool: &Pool,
    f: fn((SharedSlice<f64>, Range<usize>)) -> Stats,
    data: &SharedSlice<f64>,
) -> Stats {
    pool.map(f, parts().map(|p| (data.clone(), p)))
        .expect("map")
        .into_iter()
        .map(|r| r.expect("item"))
        .fold(Stats::default(), Stats::add)
}

fn on_rayon(pool: &rayon::ThreadPool, data: &[f64], steps: u32) -> Stats {
    use rayon::prelude::*;
    pool.install(|| {
        parts()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|p| stats(&data[p], steps))
            .reduce(Stats::default, Stats::add)
    })
}

fn inc(x: u64) -> u64 {
    x + 1
}

const PYTHON_IMAP: &str = r#"
import multiprocessing as mp, sys, time
def inc(x):
    return x + 1
if __name__ == "__main__":
    n, rounds = int(sys.argv[1]), int(sys.argv[2])
    with mp.get_context("fork").Pool(2) as p:
        list(p.imap(inc, range(n), chunksize=1))
        ts = []
        for _ in range(rounds):
            t = time.perf_counter()
            list(p.imap(inc, range(n), chunksize=1))
            ts.append(time.perf_counter() - t)
    ts.sort()
    print(ts[len(ts) // 2])
"#;

/// CPython's median time for `Pool(2).imap(inc, range(n), chunksize=1)`.
fn python_imap(n: usize, rounds: usize) -> Result<Duration, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = dir.path().join("imap.py");
    std::fs::write(&script, PYTHON_IMAP).map_err(|e| e.to_string())?;
    let out = brood::Command::new("python3")
        .arg(&script)
        .arg(n.to_string())
        .arg(rounds.to_string())
        .run()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("python3 said {text:?}"))
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

fn main() {
    brood::init();
    // The procspawn pool's workers re-execute this binary and run from here.
    procspawn::init();
    println!("# brood data bench — {}", context());
    if std::env::args().any(|a| a == "big") {
        big_results();
        return;
    }
    // Filled in place: the data never exists outside shared memory.
    let data = SharedSlice::from_fn(N, |i| ((i as f64) * 0.618_033_988_75).fract()).expect("data");
    let plain: Vec<f64> = data.to_vec();
    let methods = [
        ("Fork", StartMethod::Fork),
        ("ForkServer", StartMethod::ForkServer),
        ("Spawn", StartMethod::Spawn),
    ];
    let pools: Vec<(&str, Pool)> = methods
        .iter()
        .map(|&(name, m)| {
            (
                name,
                Pool::builder(2).start_method(m).build().expect("pool"),
            )
        })
        .collect();
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("rayon");
    let expected = stats(&plain, 0);

    for (job, steps, f, rounds, iters) in [
        (
            "mean/variance/histogram (memory-bound)",
            0,
            memory_bound as fn(_) -> _,
            21,
            5,
        ),
        ("+ 200-step logistic map (CPU-bound)", 200, cpu_bound, 7, 1),
    ] {
        let mut g = Group::new(format!("{job}: {N} f64 in {CHUNKS} chunks, 2 workers"))
            .rounds(rounds)
            .iters(iters);
        g.case("sequential loop", || {
            std::hint::black_box(stats(&plain, steps));
        });
        g.case("rayon (2 threads)", || {
            std::hint::black_box(on_rayon(&threads, &plain, steps));
        });
        for (name, pool) in &pools {
            let data = &data;
            g.case(format!("brood Pool(2) [{name}], SharedSlice"), move || {
                let s = on_pool(pool, f, data);
                if steps == 0 {
                    assert_eq!((s.n, s.hist), (expected.n, expected.hist));
                }
            });
        }
        let r = g.run();
        let rayon = r.median("rayon (2 threads)");
        let seq = r.median("sequential loop");
        for (name, _) in &pools {
            let b = r.median(&format!("brood Pool(2) [{name}], SharedSlice"));
            ratio(&format!("brood [{name}] / rayon"), b, rayon, Some(1.3));
            ratio(&format!("brood [{name}] / sequential"), b, seq, None);
        }
    }

    // Per-item overhead: one item per message each way.
    const ITEMS: usize = 5_000;
    let chunk1 = Pool::builder(2).chunk_size(1).build().expect("pool");
    let spawner = procspawn::Pool::new(2).expect("procspawn pool");
    let mut g = Group::new(format!(
        "imap(x + 1, chunk 1) over {ITEMS} items, 2 workers"
    ))
    .rounds(9)
    .iters(1);
    g.case("brood Pool(2).imap [ForkServer], chunk 1", || {
        assert_eq!(
            chunk1.imap(inc, 0..ITEMS as u64).expect("imap").count(),
            ITEMS
        );
    });
    g.case("procspawn Pool(2), one spawn per item", || {
        let handles: Vec<_> = (0..ITEMS as u64)
            .map(|x| spawner.spawn(x, |x: u64| x + 1))
            .collect();
        for h in handles {
            h.join().expect("procspawn join");
        }
    });
    let r = g.run();
    let brood = r.median("brood Pool(2).imap [ForkServer], chunk 1");
    ratio(
        "brood / procspawn pool (time)",
        brood,
        r.median("procspawn Pool(2), one spawn per item"),
        None,
    );
    match python_imap(ITEMS, 9) {
        Ok(py) => {
            println!(
                "  {:<48} median {:>12}   (timed by CPython)",
                "CPython Pool(2).imap(chunksize=1) [fork]",
                fmt(py)
            );
            let r = ratio("brood / CPython (time)", brood, py, Some(0.1));
            println!(
                "  items/s: brood {:.0}, CPython {:.0} ({:.1}× CPython's)",
                ITEMS as f64 / brood.as_secs_f64(),
                ITEMS as f64 / py.as_secs_f64(),
                1.0 / r
            );
        }
        Err(e) => println!("  CPython: not measured ({e})"),
    }

    // The parent's memory over a lazy 10 M-item imap.
    let pool = Pool::builder(2).chunk_size(4096).build().expect("pool");
    let before = rss();
    let mut peak = before;
    let t = std::time::Instant::now();
    let mut sum = 0u64;
    for (k, r) in pool
        .imap(inc, (0..10_000_000u64).filter(|x| *x < u64::MAX))
        .expect("imap")
        .enumerate()
    {
        sum += r.expect("item");
        if k % 100_000 == 0 {
            peak = peak.max(rss());
        }
    }
    std::hint::black_box(sum);
    println!(
        "\n## imap(x + 1) over 10,000,000 lazy items: {} , parent RSS growth {} KiB (target < 51,200 KiB)",
        fmt(t.elapsed()),
        peak.saturating_sub(before) >> 10
    );
    big_results();
}

/// The size of the big result.
const BIG: usize = 200 << 20;

/// A big result: `n` bytes written (not the kernel's shared zero page),
/// as cheaply as can be, so that the time is the crossing's.
fn big(n: usize) -> Vec<u8> {
    let mut v = vec![7u8; n];
    v[n - 1] = 9;
    v
}

fn check_big(v: &[u8]) {
    assert_eq!(v.len(), BIG);
    assert_eq!((v[0], v[BIG - 1]), (7, 9));
}

/// A 200 MiB result through a Pool (`map` of one item, `submit`) and from a
/// `Process`, per start method.
fn big_results() {
    let methods = [
        ("Fork", StartMethod::Fork),
        ("ForkServer", StartMethod::ForkServer),
    ];
    let pools: Vec<(&str, StartMethod, Pool)> = methods
        .iter()
        .map(|&(name, m)| {
            (
                name,
                m,
                Pool::builder(1).start_method(m).build().expect("pool"),
            )
        })
        .collect();
    let mut g = Group::new("a 200 MiB Vec<u8> result, 1 worker")
        .rounds(7)
        .iters(1);
    for (name, method, pool) in &pools {
        let method = *method;
        g.case(format!("Process [{name}]"), move || {
            let mut p = Process::new(big, BIG);
            p.start_method(method);
            check_big(&p.start().expect("start").join().expect("join"));
        });
        g.case(format!("Pool::map, one item [{name}]"), move || {
            let mut out = pool.map(big, [BIG]).expect("map");
            check_big(&out.pop().expect("one").expect("item"));
        });
        g.case(format!("Pool::submit [{name}]"), move || {
            let task = pool.submit(big, BIG).expect("submit");
            check_big(&task.wait().expect("item"));
        });
    }
    let r = g.run();
    for (name, _, _) in &pools {
        let process = r.median(&format!("Process [{name}]"));
        for call in ["Pool::map, one item", "Pool::submit"] {
            let pool = r.median(&format!("{call} [{name}]"));
            ratio(
                &format!("{call} / Process [{name}]"),
                pool,
                process,
                Some(1.2),
            );
        }
    }
}
