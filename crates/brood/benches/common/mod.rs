//! A small timing harness shared by brood's benches: named closures measured in
//! interleaved rounds (so that drift in the machine's state — frequency, caches,
//! other load — hits every case alike), reported as the median time per
//! iteration, with ratios between cases.
//!
//! ```ignore
//! let mut g = Group::new("spawn+wait /bin/true").rounds(15).iters(40);
//! g.case("brood", || { /* one iteration */ });
//! g.case("std", || { /* one iteration */ });
//! let r = g.run();
//! r.ratio("brood", "std", Some(1.1));
//! ```
//!
//! `BENCH_SCALE` (a float, default 1) scales the number of rounds, for a quick
//! look (`BENCH_SCALE=0.2`) or a steadier figure (`BENCH_SCALE=3`).
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Cases measured together.
pub struct Group<'a> {
    title: String,
    rounds: usize,
    iters: usize,
    warmup: usize,
    cases: Vec<(String, Box<dyn FnMut() + 'a>)>,
}

/// Median time per iteration of each case of a group.
pub struct Results {
    pub title: String,
    pub medians: Vec<(String, Duration)>,
}

fn scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

impl<'a> Group<'a> {
    /// A group with 15 rounds of 20 iterations per case, one warm-up round.
    pub fn new(title: impl Into<String>) -> Group<'a> {
        Group {
            title: title.into(),
            rounds: 15,
            iters: 20,
            warmup: 1,
            cases: Vec::new(),
        }
    }

    /// Rounds (each runs every case once, in turn); scaled by `BENCH_SCALE`.
    pub fn rounds(mut self, rounds: usize) -> Self {
        self.rounds = rounds;
        self
    }

    /// Iterations of a case per round (timed together, then divided).
    pub fn iters(mut self, iters: usize) -> Self {
        self.iters = iters;
        self
    }

    /// Untimed rounds first.
    pub fn warmup(mut self, rounds: usize) -> Self {
        self.warmup = rounds;
        self
    }

    /// Adds a case: `f` is one iteration.
    pub fn case(&mut self, name: impl Into<String>, f: impl FnMut() + 'a) -> &mut Self {
        self.cases.push((name.into(), Box::new(f)));
        self
    }

    /// Runs the rounds, prints a table and returns the medians.
    pub fn run(mut self) -> Results {
        let rounds = ((self.rounds as f64 * scale()).round() as usize).max(3);
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); self.cases.len()];
        for round in 0..self.warmup + rounds {
            // Rotate the starting case so that no case always runs first.
            let n = self.cases.len();
            for k in 0..n {
                let i = (k + round) % n;
                let (_, f) = &mut self.cases[i];
                let start = Instant::now();
                for _ in 0..self.iters {
                    f();
                }
                if round >= self.warmup {
                    samples[i].push(start.elapsed() / self.iters as u32);
                }
            }
        }
        println!(
            "\n## {} ({rounds} rounds × {} iterations)",
            self.title, self.iters
        );
        let mut medians = Vec::new();
        for ((name, _), mut s) in self.cases.iter().zip(samples) {
            s.sort();
            let median = s[s.len() / 2];
            let (lo, hi) = (s[s.len() / 10], s[s.len() - 1 - s.len() / 10]);
            println!(
                "  {name:<48} median {:>12}   p10 {:>12}   p90 {:>12}",
                fmt(median),
                fmt(lo),
                fmt(hi)
            );
            medians.push((name.clone(), median));
        }
        Results {
            title: self.title,
            medians,
        }
    }
}

impl Results {
    /// The median of case `name`.
    pub fn median(&self, name: &str) -> Duration {
        self.medians
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no case {name:?} in {:?}", self.title))
            .1
    }
}

/// Prints `a / b` and, with a target, whether the ratio is within it.
pub fn ratio(label: &str, a: Duration, b: Duration, target: Option<f64>) -> f64 {
    show_ratio(label, a.as_secs_f64() / b.as_secs_f64(), target)
}

/// Prints the ratio `r` and, with a target, whether it is within it.
pub fn show_ratio(label: &str, r: f64, target: Option<f64>) -> f64 {
    let verdict = match target {
        Some(t) if r <= t => format!("(target ≤ {t}×: met)"),
        Some(t) => format!("(target ≤ {t}×: MISSED)"),
        None => String::new(),
    };
    println!("  ratio {label:<60} {r:>6.2}×  {verdict}");
    r
}

/// One line about the machine: CPUs and load average. Figures taken while other
/// work loads the CPUs are noisy; ratios between interleaved cases much less so.
pub fn context() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load average {}", load.join(" "))
}

/// A duration as µs or ms with three significant digits.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// The median of samples (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The peer every start is measured against: `fork`, `_exit(0)` in the
/// child, `waitpid` in the parent.
pub fn raw_fork() {
    // SAFETY: the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: leaving the child at once.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0);
    let mut st = 0;
    // SAFETY: waiting for our own child with a status word we own.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
}
