//! Parent death reaches the whole tree: a parent SIGKILLed while its
//! `Tree::Group` child with `OnParentDeath::Signal(KILL)` has children of its
//! own leaves none of them behind — for a `Command`, and for a `Process`
//! started with Fork and with the fork server. 100 trials each.
//!
//! The test is a subreaper: the parent's orphans (and its keeper, and its
//! fork server) come to it, so it sees them end and reaps them.

mod support;

use brood::{Command, OnParentDeath, Process, Signal, StartMethod, Tree};
use std::time::Duration;
use support::*;

brood::init_before_main!();

const TRIALS: usize = 100;

/// A Process child: starts a grandchild, says both pids on stdout (the
/// report pipe), then waits to be killed.
fn leader(_: ()) {
    let sleeper = Command::new("sleep").arg("101").spawn().unwrap();
    println!("{}", sleeper.pid());
    println!("{}", std::process::id());
    std::thread::sleep(Duration::from_secs(100));
}

#[derive(Copy, Clone, Debug)]
enum Kind {
    Command,
    Process(StartMethod),
    /// A `Tree::Cgroup` command whose first sleeper left its session.
    CgroupCommand,
}

/// In the parent to be killed: stdout is the report pipe; start the child.
fn start(kind: Kind) -> i32 {
    let r = match kind {
        Kind::Command => Command::new("sh")
            .args([
                "-c",
                "sleep 101 & echo $!; sleep 102 & echo $!; echo $$; wait",
            ])
            .tree(Tree::Group)
            .on_parent_death(OnParentDeath::Signal(Signal::KILL))
            .spawn()
            .map(drop),
        Kind::CgroupCommand => Command::new("sh")
            .args([
                "-c",
                "setsid sh -c 'sleep 101 & echo $!'; sleep 102 & echo $!; echo $$; wait",
            ])
            .tree(Tree::Cgroup)
            .on_parent_death(OnParentDeath::Signal(Signal::KILL))
            .spawn()
            .map(drop),
        Kind::Process(m) => Process::new(leader, ())
            .start_method(m)
            .tree(Tree::Group)
            .on_parent_death(OnParentDeath::Signal(Signal::KILL))
            .start()
            .map(std::mem::forget),
    };
    if let Err(e) = r {
        eprintln!("{kind:?}: {e}");
        return 1;
    }
    std::thread::sleep(Duration::from_secs(100));
    0
}

fn trials(kind: Kind) {
    require_own_process();
    become_subreaper();
    let pids_per_trial = match kind {
        Kind::Command | Kind::CgroupCommand => 3,
        Kind::Process(_) => 2,
    };
    let mut left = Vec::new();
    for _ in 0..TRIALS {
        let mut report = Report::new();
        let fd = report.fd();
        let parent = brood::fork_with(move || {
            // SAFETY: pointing our stdout at the report pipe, in the child.
            unsafe { libc::dup2(fd, 1) };
            start(kind)
        })
        .unwrap();
        report.close_writer();
        let mut cleanup = Cleanup::default();
        cleanup.add(parent.pid());
        let tree: Vec<u32> = (0..pids_per_trial).map(|_| report.pid()).collect();
        for &p in &tree {
            cleanup.add(p);
        }
        parent.kill().unwrap();
        parent.wait().unwrap();
        for &p in &tree {
            if !wait_exit(p, Duration::from_secs(5)) {
                left.push(p);
            }
        }
        // The keeper, a fork server, the orphans: everything that came to us
        // ends on its own now, and is reaped.
        for p in children_of(me()) {
            if !wait_exit(p, Duration::from_secs(5)) {
                left.push(p);
                cleanup.add(p);
            }
        }
    }
    assert!(
        left.is_empty(),
        "{kind:?}: {} processes outlived their parent in {TRIALS} trials: {left:?}",
        left.len()
    );
    assert!(zombies_of(me()).is_empty());
}

#[test]
fn a_command_tree_dies_with_its_sigkilled_parent() {
    trials(Kind::Command);
}

#[test]
fn a_forked_process_tree_dies_with_its_sigkilled_parent() {
    trials(Kind::Process(StartMethod::Fork));
}

#[test]
fn a_fork_server_process_tree_dies_with_its_sigkilled_parent() {
    trials(Kind::Process(StartMethod::ForkServer));
}

#[test]
fn a_cgroup_tree_dies_with_its_sigkilled_parent_even_what_left_its_session() {
    let c = brood::containment();
    if !c.cgroups {
        eprintln!("skipped: {}", c.why);
        return;
    }
    trials(Kind::CgroupCommand);
}
