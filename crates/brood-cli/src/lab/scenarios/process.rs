//! `multiprocessing.Process`: claims P1–P5, run once per start method.

use std::time::Duration;

use super::common::*;
use super::helpers::helpers;
use super::{BroodPlay, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// How long the lab waits for the parent's wait to return before it looks
/// at why it has not.
const WAIT_RETURNS: Duration = Duration::from_secs(2);

const KILL_POLICY: &str = "OnParentDeath::Signal(KILL)";

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let p = |claim, key, variant, mode, drive, judge, brood| Scenario {
        claim,
        key,
        variant,
        kind: Kind::Process,
        mode,
        interp: super::Interp::PLAIN,
        sweep: false,
        drive,
        judge,
        brood,
    };
    vec![
        Scenario {
            sweep: true,
            ..p(
                "P1",
                "P1.nondaemon-exit",
                "daemon=False child runs 1 s; main returns",
                &["exit", "daemon=0", "secs=1.0"],
                drive_exit,
                judge_waits,
                Some(BroodPlay {
                    default: &["process", "exit", "daemon=0", "secs=1.0"],
                    policy: Some((
                        "OnExit::Terminate{grace: 1s}",
                        &[
                            "process",
                            "exit",
                            "daemon=0",
                            "secs=1.0",
                            "on_exit=terminate",
                        ],
                    )),
                }),
            )
        },
        Scenario {
            sweep: true,
            ..p(
                "P2",
                "P2.daemon-exit",
                "daemon=True child runs 30 s; main returns",
                &["exit", "daemon=1", "secs=30"],
                drive_exit,
                judge_terminates,
                Some(BroodPlay {
                    default: &["process", "exit", "daemon=1", "secs=30"],
                    policy: None,
                }),
            )
        },
        p(
            "P3",
            "P3.term-parent",
            "SIGTERM to the parent (daemon and non-daemon child)",
            &["signal_parent"],
            drive_term_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["process", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["process", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        p(
            "P3",
            "P3.kill-parent",
            "SIGKILL to the parent (daemon and non-daemon child)",
            &["signal_parent"],
            drive_kill_parent,
            judge_parent_signaled,
            Some(BroodPlay {
                default: &["process", "signal_parent"],
                policy: Some((
                    KILL_POLICY,
                    &["process", "signal_parent", "on_parent_death=kill"],
                )),
            }),
        ),
        p(
            "P3",
            "P3.term-child",
            "SIGTERM to the child; the parent joins it",
            &["signal_child"],
            drive_term_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["process", "signal_child"],
                policy: None,
            }),
        ),
        p(
            "P3",
            "P3.kill-child",
            "SIGKILL to the child; the parent joins it",
            &["signal_child"],
            drive_kill_child,
            judge_child_signaled,
            Some(BroodPlay {
                default: &["process", "signal_child"],
                policy: None,
            }),
        ),
        p(
            "P4",
            "P4.zombie-self",
            "child returns at once; never joined",
            &["zombie", "secs=0"],
            drive_zombie,
            judge_zombie,
            Some(BroodPlay {
                default: &["process", "zombie", "secs=0"],
                policy: None,
            }),
        ),
        p(
            "P4",
            "P4.zombie-killed",
            "child SIGKILLed by the lab; never joined",
            &["zombie", "secs=30"],
            drive_zombie_killed,
            judge_zombie,
            Some(BroodPlay {
                default: &["process", "zombie", "secs=30"],
                policy: None,
            }),
        ),
        Scenario {
            sweep: true,
            ..p(
                "P5",
                "P5.os-wait",
                "daemon child ends; parent calls os.wait()",
                &["os_wait", "wait=wait"],
                drive_p5,
                judge_p5,
                Some(BroodPlay {
                    default: &["process", "os_wait", "wait=wait"],
                    policy: None,
                }),
            )
        },
        p(
            "P5",
            "P5.os-waitpid",
            "daemon child ends; parent calls os.waitpid(pid)",
            &["os_wait", "wait=waitpid"],
            drive_p5,
            judge_p5,
            Some(BroodPlay {
                default: &["process", "os_wait", "wait=waitpid"],
                policy: None,
            }),
        ),
        Scenario {
            sweep: true,
            ..p(
                "P5",
                "P5.join",
                "daemon child ends; parent calls join()",
                &["os_wait", "wait=join"],
                drive_p5,
                judge_p5,
                Some(BroodPlay {
                    default: &["process", "os_wait", "wait=join"],
                    policy: None,
                }),
            )
        },
    ]
}

/// P5: the parent waits; if its wait does not return, the lab lists the
/// processes it could be waiting for (its own children) before ending the run.
fn drive_p5(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    let returned = run.wait_until(WAIT_RETURNS, |o| {
        o.first("waited").is_some() || o.first("wait_error").is_some() || o.stdout_closed
    })?;
    if !returned {
        run.scan_descendants();
        return Ok(());
    }
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

/// Why a wait that never returned blocks: whose child the daemon child is, and
/// which children of the program's own (that outlive the wait) it waits for.
fn judge_blocked_wait(o: &Obs) -> Judgement {
    let kid = o.children().first().copied();
    let kid_ppid = kid.and_then(|k| o.track(k).ppids.first().map(|p| p.1));
    let kid_gone = kid.is_some_and(|k| child_end(o, k).is_some());
    let own: Vec<String> = helpers(o, true)
        .into_iter()
        .filter(|(pid, _)| o.track(*pid).gone_at.is_none())
        .map(|(pid, name)| format!("{name} {pid}"))
        .collect();
    let whose = match (kid, kid_ppid) {
        (Some(k), Some(p)) if p != o.parent => format!(
            "the daemon child {k} ({}) was the child of pid {p}, not of the program",
            if kid_gone { "ended" } else { "running" }
        ),
        (Some(k), _) => format!("the daemon child {k} was the program's own"),
        _ => "no child announced".into(),
    };
    if own.is_empty() || kid_ppid == Some(o.parent) {
        return Judgement::new(
            Verdict::Inconclusive,
            format!(
                "the wait had not returned after {}; {whose}; the program's running children: {}",
                secs(o.end_t),
                if own.is_empty() {
                    "none".into()
                } else {
                    own.join(", ")
                }
            ),
        );
    }
    // A finding, not a failure to decide: the call waits for processes that
    // end only with the program, so the parent never reaches its exit.
    Judgement::new(
        Verdict::DoesNotHold,
        format!(
            "blocks: the wait had not returned after {}; {whose}; it waits for the program's own children ({}), which run as long as the program does, so the parent never exits",
            secs(o.end_t),
            own.join(", ")
        ),
    )
}

/// P5: an error at exit after `os.wait`/`os.waitpid`, none after `join`.
fn judge_p5(o: &Obs) -> Judgement {
    let waited = o.first("waited").or_else(|| o.first("wait_error"));
    let (_, how) = match (parent_end(o), waited) {
        (Ok(e), _) => e,
        (Err(_), None) => return judge_blocked_wait(o),
        (Err(j), Some(_)) => return j,
    };
    let Some(w) = waited else {
        return Judgement::new(
            Verdict::Inconclusive,
            format!(
                "the parent never reported its wait; it ended: {}; stderr: {}",
                how.map(|h| h.to_string()).unwrap_or_else(|| "?".into()),
                clip(o.stderr_tail(), 100)
            ),
        );
    };
    let call = w.get("how").unwrap_or("?").to_string();
    let err = &o.stderr;
    let error_at_exit = err.contains("No such process")
        || err.contains("Errno 3")
        || err.contains("ProcessLookupError")
        || err.contains("ReapedElsewhere")
        || err.contains("Traceback");
    let wait_text = if w.event == "wait_error" {
        format!(
            "{call} failed: {} (errno {})",
            w.get("type").unwrap_or("?"),
            w.get("errno").unwrap_or("?")
        )
    } else {
        format!("{call} returned pid {}", w.get("pid").unwrap_or("?"))
    };
    let mut evidence = format!(
        "{wait_text}; error at exit: {}; parent {}",
        yes(error_at_exit),
        how.map(|h| h.to_string()).unwrap_or_else(|| "?".into())
    );
    if error_at_exit {
        evidence.push_str(&format!(" ({})", clip(o.stderr_tail(), 60)));
    }
    let holds = if call == "join" {
        !error_at_exit
    } else {
        error_at_exit
    };
    Judgement::new(
        if holds {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence,
    )
}
