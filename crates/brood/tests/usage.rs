//! `Child::usage`: a tree's CPU time against what its processes say they
//! used (the shell's `times`), its memory against what a member allocated,
//! its process count against `/proc`, for a group, a cgroup and a lone
//! child; and the cost of reading it for 101 processes.

mod support;

use brood::{Command, Counted, Popen, Ready, Tree};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);
const MIB: u64 = 1 << 20;

fn start(tree: Tree, script: &str) -> Popen {
    Command::new("sh")
        .args(["-c", script])
        .tree(tree)
        .spawn_ready(Ready::Stdout("up".into()), LONG)
        .unwrap()
}

fn end(p: Popen) {
    p.kill().unwrap();
    p.wait().unwrap();
    assert!(!exists(p.pid()));
}

/// `0m1.23s` as a duration.
fn parse_times(field: &str) -> Duration {
    let (m, s) = field.trim_end_matches('s').split_once('m').unwrap();
    Duration::from_secs_f64(m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap())
}

/// A member that burns CPU and reports it (`times`: its own user and system
/// time), one that holds 64 MiB it wrote to, one that sleeps.
const WORK: &str = "\
    (i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times > \"$T\"; exec sleep 30) & \
    python3 -c 'import sys, time; b = b\"x\" * (64 << 20); print(\"held\", flush=True); time.sleep(30)' > \"$H\" & \
    sleep 30 & \
    while [ ! -s \"$T\" ] || [ ! -s \"$H\" ]; do sleep 0.01; done; echo up; wait";

fn check_tree(tree: Tree, counted: Counted) {
    let dir = tempfile::tempdir().unwrap();
    let (times, held) = (dir.path().join("times"), dir.path().join("held"));
    let p = Command::new("sh")
        .args(["-c", WORK])
        .env("T", &times)
        .env("H", &held)
        .tree(tree)
        .spawn_ready(Ready::Stdout("up".into()), LONG)
        .unwrap();
    let usage = p.child().usage().unwrap();
    let text = std::fs::read_to_string(&times).unwrap();
    let own: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    let burnt = parse_times(own[0]) + parse_times(own[1]);
    // The tree used at least what its busy member says it used (less a
    // tick of rounding each way).
    let tick = Duration::from_millis(20);
    assert!(
        usage.user + usage.system + tick >= burnt,
        "{usage:?} < {burnt:?}"
    );
    assert!(usage.rss >= 64 * MIB, "{usage:?}");
    assert!(usage.peak_rss >= usage.rss);
    // sh, the busy member's sleep, python, sleep.
    assert_eq!(usage.processes, 4, "{usage:?}");
    assert_eq!(usage.counted, counted);
    assert_eq!(usage.pressure.is_some(), counted == Counted::Cgroup);
    end(p);
}

#[test]
fn a_groups_usage_covers_its_members() {
    check_tree(Tree::Group, Counted::Group);
}

#[test]
fn a_cgroups_usage_covers_its_members() {
    if !brood::containment().cgroups {
        eprintln!("skipped: {}", brood::containment().why);
        return;
    }
    check_tree(Tree::Cgroup, Counted::Cgroup);
}

#[test]
fn a_cgroup_counts_the_cpu_of_members_reaped_outside_it() {
    if !brood::containment().cgroups {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let times = dir.path().join("times");
    // The busy member double-forks away: re-parented, reaped by whoever is
    // the subreaper, never waited for inside the tree.
    let script = "\
        ( (i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times > \"$T\") & ) ; \
        while [ ! -s \"$T\" ]; do sleep 0.01; done; echo up; exec sleep 30";
    let p = Command::new("sh")
        .args(["-c", script])
        .env("T", &times)
        .tree(Tree::Cgroup)
        .spawn_ready(Ready::Stdout("up".into()), LONG)
        .unwrap();
    let text = std::fs::read_to_string(&times).unwrap();
    let own: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    let burnt = parse_times(own[0]) + parse_times(own[1]);
    let usage = p.child().usage().unwrap();
    assert!(
        usage.user + usage.system + Duration::from_millis(20) >= burnt,
        "{usage:?} < {burnt:?}"
    );
    end(p);
}

#[test]
fn a_cgroups_cpu_pressure_grows_when_its_members_outnumber_the_cores() {
    if !brood::containment().cgroups {
        return;
    }
    let cores = std::thread::available_parallelism().unwrap().get();
    let script = format!(
        "for i in $(seq {}); do (while :; do :; done) & done; echo up; wait",
        cores + 1
    );
    let p = start(Tree::Cgroup, &script);
    // Some member always waits for a core: the stall total cannot stay 0.
    let stalled = |p: &Popen| p.child().usage().unwrap().pressure.unwrap().cpu.some.total;
    let deadline = Instant::now() + LONG;
    while stalled(&p).is_zero() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(!stalled(&p).is_zero());
    end(p);
}

#[test]
fn a_lone_childs_usage_is_its_own() {
    let p = Command::new("sleep").arg("30").spawn().unwrap();
    let usage = p.child().usage().unwrap();
    assert_eq!((usage.processes, usage.counted), (1, Counted::Process));
    assert!(usage.rss > 0);
    end(p);
}

/// Reading the usage of 101 processes: from a cgroup (CPU from `cpu.stat`,
/// memory still from `/proc` here) against a group (all from `/proc`).
#[test]
fn measured_cost_of_reading_a_hundred_processes() {
    let script = "for i in $(seq 100); do sleep 30 & done; echo up; wait";
    let mut figures = Vec::new();
    let trees: &[Tree] = if brood::containment().cgroups {
        &[Tree::Group, Tree::Cgroup]
    } else {
        &[Tree::Group]
    };
    for &t in trees {
        let p = start(t, script);
        assert_eq!(p.child().usage().unwrap().processes, 101);
        let rounds = 20;
        let started = Instant::now();
        for _ in 0..rounds {
            p.child().usage().unwrap();
        }
        figures.push((t, started.elapsed() / rounds));
        end(p);
    }
    let text: Vec<String> = figures
        .iter()
        .map(|(t, d)| format!("{t:?} {d:?}"))
        .collect();
    println!("usage() of 101 processes, mean of 20: {}", text.join(", "));
    if let [(_, group), (_, cgroup)] = figures[..] {
        println!(
            "cgroup / group: {:.2}",
            cgroup.as_secs_f64() / group.as_secs_f64()
        );
    }
}
