//! `cargo bench -p brood --bench pool`: `Pool::map` of a tiny function (x + 1)
//! over 10,000 items with 2 workers, against a sequential loop and CPython's
//! `multiprocessing.Pool(2).map` (timed by CPython itself, same machine, same
//! run); then the chunk-size sweep behind the default chunk size.
//!
//! The brood cases are interleaved (see `common`); CPython runs in its own
//! process right after, with the same number of rounds, and reports its median.

mod common;

use brood::{Pool, StartMethod};
use common::{Group, context, fmt, ratio};
use std::time::Duration;

brood::init_before_main!();

const ITEMS: u64 = 10_000;

fn inc(x: u64) -> u64 {
    x + 1
}

fn run_map(pool: &Pool) {
    let out = pool.map(inc, 0..ITEMS).expect("map");
    assert_eq!(out.len(), ITEMS as usize);
    assert_eq!(out[9].as_ref().ok(), Some(&10));
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def inc(x):
    return x + 1
if __name__ == "__main__":
    method, rounds, chunk = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    chunk = None if chunk == "default" else int(chunk)
    ctx = mp.get_context(method)
    items = list(range(10000))
    with ctx.Pool(2) as p:
        p.map(inc, items, chunk)
        ts = []
        for _ in range(rounds):
            t = time.perf_counter()
            p.map(inc, items, chunk)
            ts.append(time.perf_counter() - t)
    ts.sort()
    print(ts[len(ts) // 2])
"#;

/// CPython's median `Pool(2).map` time, or why there is none.
fn python(method: &str, rounds: usize, chunk: &str) -> Result<Duration, String> {
    let dir = std::env::temp_dir().join(format!("brood-bench-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let script = dir.join("pool_bench.py");
    std::fs::write(&script, PYTHON).map_err(|e| e.to_string())?;
    let out = brood::Command::new("python3")
        .arg(&script)
        .arg(method)
        .arg(rounds.to_string())
        .arg(chunk)
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .map(Duration::from_secs_f64)
        .map_err(|_| format!("python3 said {text:?}"))
}

fn main() {
    brood::init();
    println!("# brood Pool bench — {}", context());
    println!("Python: {}", {
        let v = brood::Command::new("python3").arg("--version").run();
        v.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("unavailable ({e})"))
    });

    let fork = Pool::builder(2)
        .start_method(StartMethod::Fork)
        .build()
        .expect("pool");
    let server = Pool::builder(2)
        .start_method(StartMethod::ForkServer)
        .build()
        .expect("pool");
    let rounds = 15;
    let mut g = Group::new(format!("map(x + 1) over {ITEMS} items, 2 workers"))
        .rounds(rounds)
        .iters(5);
    g.case("brood Pool(2).map [Fork workers]", || run_map(&fork));
    g.case("brood Pool(2).map [ForkServer workers]", || {
        run_map(&server)
    });
    g.case("sequential loop (same process)", || {
        let v: Vec<u64> = (0..ITEMS).map(|x| std::hint::black_box(inc(x))).collect();
        assert_eq!(v.len(), ITEMS as usize);
    });
    let r = g.run();
    let brood_fork = r.median("brood Pool(2).map [Fork workers]");
    let seq = r.median("sequential loop (same process)");
    match python("fork", rounds, "default") {
        Ok(py) => {
            println!(
                "  {:<48} median {:>12}   (timed by CPython, {rounds} rounds)",
                "CPython Pool(2).map [fork, default chunks]",
                fmt(py)
            );
            ratio("brood Fork / CPython fork", brood_fork, py, Some(0.25));
            ratio(
                "brood ForkServer / CPython fork",
                r.median("brood Pool(2).map [ForkServer workers]"),
                py,
                Some(0.25),
            );
        }
        Err(e) => println!("  CPython: not measured ({e})"),
    }
    ratio("brood Fork / sequential loop", brood_fork, seq, None);

    // The sweep: the default must sit on the flat part of this curve.
    let pools: Vec<(String, Pool)> = [1usize, 16, 64, 256, 625, 1250, 2500, 5000]
        .iter()
        .map(|&c| {
            let p = Pool::builder(2)
                .start_method(StartMethod::Fork)
                .chunk_size(c)
                .build()
                .expect("pool");
            (format!("chunk {c}"), p)
        })
        .collect();
    let mut g = Group::new(format!(
        "chunk size sweep: map(x + 1) over {ITEMS} items, 2 Fork workers (default = {})",
        ITEMS.div_ceil(8).clamp(1, 4096)
    ))
    .rounds(rounds)
    .iters(5);
    g.case("default chunk", || run_map(&fork));
    for (name, p) in &pools {
        g.case(name.clone(), move || run_map(p));
    }
    let r = g.run();
    let best = pools.iter().map(|(n, _)| r.median(n)).min().expect("cases");
    ratio(
        "default / best swept",
        r.median("default chunk"),
        best,
        Some(1.2),
    );
}
