//! `brood tree` on a real zombie.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn tree_flags_a_zombie_and_names_its_reaper() {
    // sh starts `true` in the background, then becomes `sleep`, which never
    // waits: `true` stays a zombie whose reaper is the sleep.
    let mut parent = Command::new("sh")
        .args(["-c", "true & exec sleep 30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = parent.id();
    let zombie = poll(Duration::from_secs(10), || {
        if brood::os::procfs::stat(pid).unwrap()?.comm != "sleep" {
            return None;
        }
        descendants(pid)
            .into_iter()
            .find(|(p, _)| matches!(stat(*p), Some(('Z', _, _))))
    });
    let out = brood().args(["tree", &pid.to_string()]).output().unwrap();
    let _ = parent.kill();
    let _ = parent.wait();
    let (zpid, _) = zombie.expect("no zombie appeared under sh/sleep");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&zpid.to_string()))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("Z !"), "{text}");
    assert!(line.contains(&format!("parent {pid} (sleep)")), "{text}");
    assert!(text.contains("1 zombie(s)"), "{text}");
}

#[test]
fn tree_of_a_missing_pid_fails() {
    let out = brood().args(["tree", "4294967000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn tree_of_the_user_lists_this_test() {
    let out = brood().arg("tree").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&std::process::id().to_string()), "{text}");
}
