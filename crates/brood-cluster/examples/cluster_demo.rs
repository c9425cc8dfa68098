//! The cluster pool end to end: one executable, three modes.
//!
//! ```sh
//! nats-server -js -a 127.0.0.1 -p 4333 -sd /tmp/nats-demo &
//! cargo run -p brood-cluster --example cluster_demo -- agent --nats nats://127.0.0.1:4333 --job demo &
//! cargo run -p brood-cluster --example cluster_demo -- drive --nats nats://127.0.0.1:4333 --items 10000 --job demo
//! cargo run -p brood-cluster --example cluster_demo -- local --items 10000   # the same on a local Pool
//! ```
//!
//! Item `i` returns a value the driver checks, and every item with
//! `i % 997 == 13` aborts its worker. `drive` (and `local`) print one JSON
//! line last: `{"items":N,"ok":…,"worker_died":…,"lost":…,"wrong":…,"seconds":…}`.

use brood::{Signal, TaskError};
use std::time::Instant;

brood::init_before_main!();

fn dies(i: u64) -> bool {
    i % 997 == 13
}

fn expected(i: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % 1_000_003
}

fn item(i: u64) -> u64 {
    if dies(i) {
        std::process::abort();
    }
    expected(i)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|p| args.get(p + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let url = arg(&args, "--nats");
    let job = arg(&args, "--job").unwrap_or_else(|| "demo".into());
    let items: u64 = arg(&args, "--items").map_or(Ok(1000), |n| n.parse())?;
    let started = Instant::now();
    let out = match (mode, url) {
        ("agent", Some(url)) => {
            let mut agent = brood_cluster::Agent::new(&url, &job);
            if let Some(n) = arg(&args, "--workers") {
                agent.workers(n.parse()?);
            }
            agent.run()?;
            return Ok(());
        }
        ("drive", Some(url)) => {
            brood_cluster::ClusterPool::connect(&url, &job)?.map(item, 0..items)?
        }
        ("local", _) => brood::Pool::new(2)?.map(item, 0..items)?,
        _ => {
            eprintln!(
                "usage: cluster_demo agent --nats URL [--job NAME] [--workers N]\n       \
                 cluster_demo drive --nats URL --items N [--job NAME]\n       \
                 cluster_demo local --items N"
            );
            std::process::exit(2);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (mut ok, mut died, mut lost, mut wrong) = (0, 0, 0, 0);
    for (i, r) in (0..items).zip(&out) {
        match r {
            Ok(v) if *v == expected(i) && !dies(i) => ok += 1,
            Err(TaskError::WorkerDied {
                signal: Some(s), ..
            }) if *s == Signal::ABORT && dies(i) => died += 1,
            Err(TaskError::Failed { .. }) => lost += 1,
            _ => wrong += 1,
        }
    }
    println!(
        "{{\"items\":{items},\"ok\":{ok},\"worker_died\":{died},\"lost\":{lost},\"wrong\":{wrong},\"seconds\":{seconds:.3}}}"
    );
    Ok(())
}
