//! `brood tree` shows each subtree's CPU time and resident memory: a busy
//! grandchild's CPU (as its own `times` reports it) shows on every line
//! above it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn seconds(field: &str) -> f64 {
    let (m, s) = field.trim_end_matches('s').split_once('m').unwrap();
    m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
}

#[test]
fn tree_shows_each_subtrees_cpu_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let times = dir.path().join("times");
    let mut parent = Command::new("sh")
        .args([
            "-c",
            "(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times > \"$T.tmp\"; \
             mv \"$T.tmp\" \"$T\"; exec sleep 30) & exec sleep 30",
        ])
        .env("T", &times)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = parent.id();
    let text = poll(Duration::from_secs(60), || {
        std::fs::read_to_string(&times).ok()
    });
    let out = brood().args(["tree", &pid.to_string()]).output().unwrap();
    // The busy child's sleep, then the parent, ended by pid.
    for (child, _) in descendants(pid) {
        if let Ok(fd) = brood::os::PidFd::open(child) {
            let _ = fd.send_signal(brood::Signal::KILL);
            let _ = fd.wait_exited(Some(Duration::from_secs(10)));
        }
    }
    let _ = parent.kill();
    let _ = parent.wait();
    let text = text.expect("the busy child never finished");
    let own: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    let burnt = seconds(own[0]) + seconds(own[1]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("TREE CPU"), "{shown}");
    let line = shown
        .lines()
        .find(|l| l.trim_start().starts_with(&pid.to_string()))
        .unwrap_or_else(|| panic!("{shown}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // PID, STATE, TREE CPU, TREE RSS: the root's subtree holds the busy child.
    let cpu: f64 = cols[2].trim_end_matches('s').parse().unwrap();
    assert!(cpu + 0.02 >= burnt, "{cpu} < {burnt}: {shown}");
    assert!(cols[3].ends_with('K') || cols[3].ends_with('M'), "{shown}");
}
