//! `Child::suspend` / `resume` on real trees: every member of a group shows
//! `T` in `/proc`, a frozen cgroup's busy member stops running, and all run
//! again after `resume`; `wait` and `kill` work on a paused child.

mod support;

use brood::{Command, Popen, Ready, Tree};
use std::time::{Duration, Instant};
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);

/// A shell that starts `script`'s background jobs, says `up`, and waits.
fn tree(tree: Tree, script: &str) -> Popen {
    Command::new("sh")
        .args(["-c", &format!("{script} echo up; wait")])
        .tree(tree)
        .spawn_ready(Ready::Stdout("up".into()), LONG)
        .unwrap()
}

/// The pids whose process group is `pgid`.
fn members(pgid: u32) -> Vec<u32> {
    brood::os::procfs::pids()
        .unwrap()
        .into_iter()
        .filter(|&p| {
            brood::os::procfs::stat(p)
                .ok()
                .flatten()
                .is_some_and(|s| s.pgrp == Some(pgid))
        })
        .collect()
}

fn state(pid: u32) -> char {
    stat(pid).map_or('?', |(s, _)| s)
}

/// Waits (reading `/proc`) until `pred` holds for every pid.
fn until_all(pids: &[u32], pred: impl Fn(char) -> bool) -> bool {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if pids.iter().all(|&p| pred(state(p))) {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

fn end(p: Popen, pids: &[u32]) {
    p.kill().unwrap();
    p.wait().unwrap();
    for &pid in pids {
        assert!(wait_exit(pid, LONG), "{pid} left");
    }
}

#[test]
fn a_suspended_group_is_stopped_in_every_member_and_resumes() {
    let p = tree(Tree::Group, "sleep 30 & while :; do :; done &");
    let pids = members(p.pid());
    assert_eq!(pids.len(), 3, "{pids:?}");
    p.child().suspend().unwrap();
    // Returned only once every member is stopped.
    for &pid in &pids {
        assert_eq!(state(pid), 'T', "member {pid}");
    }
    p.child().resume().unwrap();
    assert!(until_all(&pids, |s| s != 'T'));
    end(p, &pids);
}

#[test]
fn a_suspended_own_child_is_stopped_and_still_killable() {
    let p = Command::new("sleep").arg("30").spawn().unwrap();
    p.child().suspend().unwrap();
    assert_eq!(state(p.pid()), 'T');
    // A paused child can still be killed and waited for.
    p.kill().unwrap();
    assert_eq!(p.wait().unwrap().signal(), Some(brood::Signal::KILL));
}

#[test]
fn a_frozen_cgroup_stops_its_busy_member_and_thaws() {
    if !brood::containment().cgroups {
        eprintln!("skipped: {}", brood::containment().why);
        return;
    }
    let p = tree(Tree::Cgroup, "while :; do :; done & sleep 30 &");
    let pids = members(p.pid());
    assert_eq!(pids.len(), 3, "{pids:?}");
    let busy = *pids
        .iter()
        .find(|&&pid| pid != p.pid() && brood::os::procfs::stat(pid).unwrap().unwrap().comm == "sh")
        .unwrap();
    p.child().suspend().unwrap();
    // Frozen: nobody runs, the busy loop included (the kernel shows
    // frozen tasks sleeping).
    for &pid in &pids {
        assert_ne!(state(pid), 'R', "member {pid}");
    }
    assert_eq!(state(busy), 'S');
    p.child().resume().unwrap();
    assert!(until_all(&[busy], |s| s == 'R'));
    end(p, &pids);
}

/// From `suspend()` to every member stopped, for a tree of 101 processes:
/// a frozen cgroup against a stopped group, interleaved rounds, medians.
#[test]
fn measured_suspend_of_a_hundred_processes() {
    let script = "for i in $(seq 100); do sleep 30 & done;";
    let trees: &[Tree] = if brood::containment().cgroups {
        &[Tree::Group, Tree::Cgroup]
    } else {
        &[Tree::Group]
    };
    let mut took = vec![Vec::new(); trees.len()];
    for _ in 0..5 {
        for (i, &t) in trees.iter().enumerate() {
            let p = tree(t, script);
            let pids = members(p.pid());
            assert_eq!(pids.len(), 101);
            let started = Instant::now();
            p.child().suspend().unwrap();
            took[i].push(started.elapsed());
            if t == Tree::Group {
                assert!(pids.iter().all(|&pid| state(pid) == 'T'));
            }
            p.child().resume().unwrap();
            end(p, &pids);
        }
    }
    let figures: Vec<String> = trees
        .iter()
        .zip(&mut took)
        .map(|(t, v)| {
            v.sort();
            format!("{t:?} median {:?} (min {:?}, max {:?})", v[2], v[0], v[4])
        })
        .collect();
    println!(
        "suspend() of 101 processes until all paused, 5 rounds: {}",
        figures.join("; ")
    );
}
