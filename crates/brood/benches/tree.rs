//! `cargo bench -p brood --bench tree`: what a cgroup costs against a process
//! group — spawn+wait of `/bin/true` with `Tree::Cgroup` against `Tree::Group`
//! (and `Tree::Own`), and ending a tree of 100 processes (a shell that starts
//! 99 sleepers) with `kill`: one write to `cgroup.kill` against `kill(-pgid)`.
//! Interleaved rounds, medians, ratios. Where cgroups cannot be used
//! (`brood::containment()`), it says so and measures the group alone.

mod common;

use brood::{Command, Tree};
use common::{Group, ratio};

fn spawn_wait(tree: Tree) {
    let c = Command::new("true").tree(tree).spawn().unwrap();
    assert!(c.wait().unwrap().success());
}

/// Starts a tree of 100 processes (a shell and 99 sleepers, whose pids it
/// prints) and holds a pidfd of each; then times the kill until every one of
/// them has exited (a pidfd is readable once its process has, reaped or not).
fn kill_tree(tree: Tree) -> std::time::Duration {
    let mut p = Command::new("sh")
        .args([
            "-c",
            "for i in $(seq 99); do sleep 100 & echo $!; done; wait",
        ])
        .tree(tree)
        .stdout(brood::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(p.stdout.take().unwrap());
    let members: Vec<brood::os::PidFd> = std::io::BufRead::lines(out)
        .take(99)
        .map(|l| brood::os::PidFd::open(l.unwrap().parse().unwrap()).unwrap())
        .collect();
    let t = std::time::Instant::now();
    p.kill().unwrap();
    p.wait().unwrap();
    for m in &members {
        m.wait_exited(None).unwrap();
    }
    t.elapsed()
}

/// Median of `n` interleaved kills of each kind.
fn kills(c: &brood::Containment) {
    println!("\n## kill a tree of 100 processes (15 interleaved rounds)");
    let (mut group, mut cgroup) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        group.push(kill_tree(Tree::Group));
        if c.cgroups {
            cgroup.push(kill_tree(Tree::Cgroup));
        }
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let g = median(&mut group);
    println!("  Tree::Group (kill -pgid)          median {g:?}");
    if c.cgroups {
        let cg = median(&mut cgroup);
        println!("  Tree::Cgroup (cgroup.kill)        median {cg:?}");
        ratio("kill 100 Cgroup / Group", cg, g, None);
    }
}

fn main() {
    brood::init();
    println!("# brood tree benchmark ({})", common::context());
    let c = brood::containment();
    println!("containment: {}", c.why);
    let mut g = Group::new("spawn + wait /bin/true").rounds(30).iters(20);
    g.case("Tree::Own", || spawn_wait(Tree::Own));
    g.case("Tree::Group", || spawn_wait(Tree::Group));
    if c.cgroups {
        g.case("Tree::Cgroup", || spawn_wait(Tree::Cgroup));
    }
    let r = g.run();
    if c.cgroups {
        ratio(
            "spawn+wait Cgroup / Group",
            r.median("Tree::Cgroup"),
            r.median("Tree::Group"),
            None,
        );
    }
    kills(&c);
    println!("\n(after: {})", common::context());
}
