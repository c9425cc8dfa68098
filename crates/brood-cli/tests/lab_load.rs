//! Verdicts do not depend on how busy the machine is: a subset of the lab
//! with timing-sensitive judges (exit timelines, zombies, signals, SIGINT)
//! gives the same verdicts with two CPU hogs running as without them.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use common::*;

/// Timing-sensitive scenarios: how long the parent's exit takes (P1, P2, X2,
/// N6), what becomes of a child at a signal (P3), a zombie's lifetime (P4).
const SUBSET: &str = "P1,P2,P3.kill-parent,P4.zombie-self,X2,N6";

fn verdicts() -> BTreeMap<String, String> {
    let (_, v) = lab_json(&["--only", SUBSET, "--python", "python3"]);
    runs(&v)
        .into_iter()
        .map(|r| {
            let actor = match r["actor"]["kind"].as_str() {
                Some("python") => format!("py {}", r["actor"]["method"]),
                _ => format!("brood {}", r["actor"]["policy"]),
            };
            (
                format!("{} {actor}", r["scenario"].as_str().unwrap_or("?")),
                format!("{} ({})", r["verdict"], r["evidence"]),
            )
        })
        .collect()
}

/// A process that spins on a CPU until it is killed.
fn hog() -> Child {
    Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start a CPU hog")
}

#[test]
fn verdicts_are_the_same_with_two_cpu_hogs() {
    let idle = verdicts();
    let mut hogs = [hog(), hog()];
    let loaded = std::panic::catch_unwind(verdicts);
    for h in &mut hogs {
        let _ = h.kill();
        let _ = h.wait();
    }
    let loaded = loaded.expect("the loaded run failed");
    assert_eq!(
        idle.keys().collect::<Vec<_>>(),
        loaded.keys().collect::<Vec<_>>(),
        "the same runs"
    );
    let differ: Vec<String> = idle
        .iter()
        .filter(|(k, v)| loaded[*k].split(' ').next() != v.split(' ').next())
        .map(|(k, v)| format!("{k}: idle {v} / loaded {}", loaded[k]))
        .collect();
    assert!(
        differ.is_empty(),
        "verdicts changed under load:\n{}",
        differ.join("\n")
    );
}
