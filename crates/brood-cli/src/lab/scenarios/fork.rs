//! `os.fork`: claims F1–F5.

use super::common::*;
use super::{BroodPlay, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::Obs;

const KILL_POLICY: &str = "OnParentDeath::Signal(KILL)";

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let f = |claim, key, variant, mode, drive, judge, brood| Scenario {
        claim,
        key,
        variant,
        kind: Kind::Fork,
        mode,
        sweep: false,
        drive,
        judge,
        brood,
    };
    vec![
        f(
            "F1",
            "F1.exit",
            "child runs 1 s; parent's main returns",
            &["exit", "secs=1.0"],
            drive_exit,
            judge_exits_without_waiting,
            Some(BroodPlay {
                default: &["fork", "exit", "secs=1.0"],
                policy: Some((
                    "OnExit::Wait",
                    &["fork", "exit", "secs=1.0", "on_exit=wait"],
                )),
            }),
        ),
        f(
            "F2",
            "F2.exit",
            "child runs 1 s; parent's main returns",
            &["exit", "secs=1.0"],
            drive_exit,
            judge_child_lives_on,
            Some(BroodPlay {
                default: &["fork", "exit", "secs=1.0"],
                policy: Some((
                    KILL_POLICY,
                    &["fork", "exit", "secs=1.0", "on_parent_death=kill"],
                )),
            }),
        ),
        Scenario {
            sweep: true,
            ..f(
                "F3",
                "F3.if",
                "code after `if pid == 0:` without else",
                &["twice", "style=if"],
                drive_until_exit,
                judge_twice,
                Some(BroodPlay {
                    default: &["fork", "twice", "style=fork_with"],
                    policy: Some((
                        "unsafe brood::fork() (Python's shape)",
                        &["fork", "twice", "style=raw"],
                    )),
                }),
            )
        },
        f(
            "F3",
            "F3.else",
            "the parent's part in an else: branch",
            &["twice", "style=else"],
            drive_until_exit,
            judge_twice,
            None,
        ),
        f(
            "F4",
            "F4.term-parent",
            "SIGTERM to the parent",
            &["signal_parent"],
            drive_term_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["fork", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["fork", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        f(
            "F4",
            "F4.kill-parent",
            "SIGKILL to the parent",
            &["signal_parent"],
            drive_kill_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["fork", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["fork", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        f(
            "F4",
            "F4.term-child",
            "SIGTERM to the child; the parent waits for it",
            &["signal_child"],
            drive_term_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["fork", "signal_child"],
                policy: None,
            }),
        ),
        f(
            "F4",
            "F4.kill-child",
            "SIGKILL to the child; the parent waits for it",
            &["signal_child"],
            drive_kill_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["fork", "signal_child"],
                policy: None,
            }),
        ),
        f(
            "F5",
            "F5.zombie-self",
            "child exits at once; never waited for",
            &["zombie", "secs=0"],
            drive_zombie,
            judge_zombie,
            Some(BroodPlay {
                default: &["fork", "zombie", "secs=0"],
                policy: None,
            }),
        ),
        f(
            "F5",
            "F5.zombie-killed",
            "child SIGKILLed by the lab; never waited for",
            &["zombie", "secs=30"],
            drive_zombie_killed,
            judge_zombie,
            Some(BroodPlay {
                default: &["fork", "zombie", "secs=30"],
                policy: None,
            }),
        ),
    ]
}

/// F3: how many processes ran the code after the if-block.
fn judge_twice(o: &Obs) -> Judgement {
    let mut pids: Vec<u32> = o.events("after_if").filter_map(|l| l.pid()).collect();
    pids.sort_unstable();
    pids.dedup();
    let style = o
        .first("style")
        .and_then(|l| l.get("style"))
        .unwrap_or("if")
        .to_string();
    if o.first("main_done").is_none() {
        return Judgement::new(
            Verdict::Inconclusive,
            format!(
                "the parent did not finish; stderr: {}",
                clip(o.stderr_tail(), 100)
            ),
        );
    }
    let evidence = format!(
        "code after the block ran in {} process(es) (pids {})",
        pids.len(),
        pids.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The claim: twice without else; once with the parent's part in else.
    let expected = if style == "else" { 1 } else { 2 };
    let v = if pids.len() == expected {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    Judgement::new(v, evidence)
}
