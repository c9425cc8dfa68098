//! `subprocess.Popen`: claims S1–S4. The child is a Python process running one
//! of the script's bodies, so it reports itself like the other kinds' children.

use super::common::*;
use super::{BroodPlay, Kind, Scenario};

const KILL_POLICY: &str = "OnParentDeath::Signal(KILL)";

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let s = |claim, key, variant, mode, drive, judge, brood| Scenario {
        claim,
        key,
        variant,
        kind: Kind::Popen,
        mode,
        sweep: false,
        drive,
        judge,
        brood,
    };
    vec![
        s(
            "S1",
            "S1.exit",
            "child runs 1 s; parent's main returns",
            &["exit", "secs=1.0"],
            drive_exit,
            judge_exits_without_waiting,
            Some(BroodPlay {
                default: &["popen", "exit", "secs=1.0"],
                policy: Some((
                    "OnExit::Wait",
                    &["popen", "exit", "secs=1.0", "on_exit=wait"],
                )),
            }),
        ),
        s(
            "S2",
            "S2.exit",
            "child runs 1 s; parent's main returns",
            &["exit", "secs=1.0"],
            drive_exit,
            judge_child_lives_on,
            Some(BroodPlay {
                default: &["popen", "exit", "secs=1.0"],
                policy: Some((
                    KILL_POLICY,
                    &["popen", "exit", "secs=1.0", "on_parent_death=kill"],
                )),
            }),
        ),
        s(
            "S3",
            "S3.term-parent",
            "SIGTERM to the parent",
            &["signal_parent"],
            drive_term_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["popen", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["popen", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        s(
            "S3",
            "S3.kill-parent",
            "SIGKILL to the parent",
            &["signal_parent"],
            drive_kill_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["popen", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["popen", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        s(
            "S3",
            "S3.term-child",
            "SIGTERM to the child; the parent waits for it",
            &["signal_child"],
            drive_term_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["popen", "signal_child"],
                policy: None,
            }),
        ),
        s(
            "S3",
            "S3.kill-child",
            "SIGKILL to the child; the parent waits for it",
            &["signal_child"],
            drive_kill_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["popen", "signal_child"],
                policy: None,
            }),
        ),
        s(
            "S4",
            "S4.zombie-self",
            "child exits at once; never waited for",
            &["zombie", "secs=0"],
            drive_zombie,
            judge_zombie,
            Some(BroodPlay {
                default: &["popen", "zombie", "secs=0"],
                policy: None,
            }),
        ),
        s(
            "S4",
            "S4.zombie-killed",
            "child SIGKILLed by the lab; never waited for",
            &["zombie", "secs=30"],
            drive_zombie_killed,
            judge_zombie,
            Some(BroodPlay {
                default: &["popen", "zombie", "secs=30"],
                policy: None,
            }),
        ),
    ]
}
