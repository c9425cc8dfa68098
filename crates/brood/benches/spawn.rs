//! Spawn costs, in one run: `cargo bench -p brood --bench spawn`.
//!
//! 1. `fork_with(|| 0)` + wait against a raw `fork` + `_exit` + `waitpid`
//!    (target ≤ 1.5×).
//! 2. `Command` spawn + wait of `/bin/true` against `std::process::Command`
//!    (target ≤ 1.1×), with a small parent.
//! 3. The same with 1 GiB of touched heap in the parent: brood's `Command`
//!    (default, and with `OnParentDeath::Signal` + `Tree::Group`) must stay
//!    ≤ 1.5× its small-parent cost; `std::process::Command` with a `pre_exec`
//!    closure (which makes std fall back to a plain fork) shows the problem, and
//!    so does brood's own `pre_exec`, which forks for the same reason.
//!
//! `BENCH_SCALE=0.3` for a quick look; see `common/mod.rs`.

mod common;

use brood::{Command, OnParentDeath, Signal, Tree};
use common::{Group, Results, ratio, raw_fork};
use std::os::unix::process::CommandExt;

const TRUE: &str = "/bin/true";

fn brood_default() {
    let status = Command::new(TRUE).spawn().unwrap().wait().unwrap();
    assert!(status.success());
}

fn brood_policies() {
    let status = Command::new(TRUE)
        .on_parent_death(OnParentDeath::Signal(Signal::KILL))
        .tree(Tree::Group)
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
}

fn std_plain() {
    let status = std::process::Command::new(TRUE)
        .spawn()
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
}

fn std_pre_exec() {
    let mut cmd = std::process::Command::new(TRUE);
    // SAFETY: the closure does nothing; its presence alone makes std fork.
    unsafe { cmd.pre_exec(|| Ok(())) };
    let status = cmd.spawn().unwrap().wait().unwrap();
    assert!(status.success());
}

fn brood_pre_exec() {
    let mut cmd = Command::new(TRUE);
    // SAFETY: the closure does nothing; its presence makes brood fork.
    unsafe { cmd.pre_exec(|| Ok(())) };
    assert!(cmd.spawn().unwrap().wait().unwrap().success());
}

fn fork_with() {
    let child = brood::fork_with(|| 0).unwrap();
    assert!(child.wait().unwrap().success());
}

fn main() {
    brood::init();
    // The bench has brood's own threads only; the warning is about others.
    // SAFETY: first thing in main after init: no other thread exists yet.
    unsafe { std::env::set_var("BROOD_NO_FORK_WARNING", "1") };
    println!("# brood spawn benchmark ({})", common::context());
    // `BENCH_ONLY=fork|small|big` runs one part (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("fork") {
        bench_fork();
    }
    let small = (run("small") || only.is_empty()).then(bench_small);
    if run("big") {
        bench_big(small.as_ref());
    }
    println!("\n(after: {})", common::context());
}

fn bench_fork() {
    let mut g = Group::new("fork").rounds(60).iters(25);
    g.case("raw fork + _exit + waitpid", raw_fork);
    g.case("fork_with(|| 0) + wait", fork_with);
    let fork = g.run();
    ratio(
        "fork_with / raw fork",
        fork.median("fork_with(|| 0) + wait"),
        fork.median("raw fork + _exit + waitpid"),
        Some(1.5),
    );
}

const CASES: [(&str, fn()); 5] = [
    ("std::process::Command", std_plain),
    ("brood Command", brood_default),
    ("brood Command + Signal(KILL) + Group", brood_policies),
    ("std::process::Command + pre_exec (fork)", std_pre_exec),
    ("brood Command + pre_exec (fork)", brood_pre_exec),
];

fn bench_small() -> Results {
    let mut g = Group::new("spawn + wait /bin/true, small parent")
        .rounds(40)
        .iters(15);
    for (name, f) in CASES {
        g.case(name, f);
    }
    let small = g.run();
    ratio(
        "brood Command / std Command",
        small.median("brood Command"),
        small.median("std::process::Command"),
        Some(1.1),
    );
    small
}

fn bench_big(small: Option<&Results>) {
    let heap = touched_heap(1 << 30);
    let mut g = Group::new("spawn + wait /bin/true, 1 GiB parent")
        .rounds(25)
        .iters(4);
    for (name, f) in CASES {
        g.case(name, f);
    }
    let big = g.run();
    std::hint::black_box(&heap);
    ratio(
        "1 GiB parent: brood Command / std Command",
        big.median("brood Command"),
        big.median("std::process::Command"),
        Some(1.1),
    );
    let Some(small) = small else { return };
    for (case, _) in CASES {
        // The targets are brood's; std's plain spawn is flat too (posix_spawn),
        // std with pre_exec is the plain fork brood avoids.
        let target = (case.starts_with("brood") && !case.ends_with("(fork)")).then_some(1.5);
        ratio(
            &format!("{case}: 1 GiB / small parent"),
            big.median(case),
            small.median(case),
            target,
        );
    }
}

/// `bytes` of heap, every page written, so that a fork has to copy its page
/// tables.
fn touched_heap(bytes: usize) -> Vec<u8> {
    let mut heap = vec![0u8; bytes];
    for page in heap.chunks_mut(4096) {
        page[0] = 1;
    }
    heap
}
