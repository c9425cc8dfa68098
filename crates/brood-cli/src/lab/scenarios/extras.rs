//! What the report does not cover (N1–N5): a daemon that ignores SIGTERM, a
//! parent killed while its child starts, someone else reaping the child, the
//! child's own children, a pool whose worker dies.

use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// How long a parent's exit may take before the lab calls it a hang.
const HANG: Duration = Duration::from_secs(2);

const KILL_POLICY: &str = "OnParentDeath::Signal(KILL)";

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let x = |claim, key, variant, kind, mode, drive, judge, brood| Scenario {
        claim,
        key,
        variant,
        kind,
        mode,
        interp: super::Interp::PLAIN,
        sweep: false,
        drive,
        judge,
        brood,
    };
    vec![
        x(
            "N1",
            "N1.ignore-term",
            "daemon child ignores SIGTERM; main returns",
            Kind::Process,
            &["exit", "daemon=1", "secs=30", "body=ignore_term"],
            drive_hang,
            judge_hang,
            Some(BroodPlay {
                default: &["process", "exit", "daemon=1", "secs=30", "body=ignore_term"],
                policy: Some((
                    "OnExit::Terminate{grace: 0.2s}",
                    &[
                        "process",
                        "exit",
                        "daemon=1",
                        "secs=30",
                        "body=ignore_term",
                        "on_exit=terminate_fast",
                    ],
                )),
            }),
        ),
        x(
            "N2",
            "N2.starting-process",
            "SIGKILL to the parent right after start() returns",
            Kind::Process,
            &["starting"],
            drive_starting,
            judge_starting,
            Some(BroodPlay {
                default: &["process", "starting"],
                policy: Some((
                    KILL_POLICY,
                    &["process", "starting", "on_parent_death=kill"],
                )),
            }),
        ),
        x(
            "N2",
            "N2.starting-popen",
            "SIGKILL to the parent right after Popen() returns",
            Kind::Popen,
            &["starting"],
            drive_starting,
            judge_starting,
            Some(BroodPlay {
                default: &["popen", "starting"],
                policy: Some((KILL_POLICY, &["popen", "starting", "on_parent_death=kill"])),
            }),
        ),
        Scenario {
            sweep: true,
            ..x(
                "N3",
                "N3.reaped-process",
                "the parent's own waitpid(-1) reaps the child; then is_alive()/exitcode",
                Kind::Process,
                &["reaped"],
                drive_reaped,
                judge_reaped,
                Some(BroodPlay {
                    default: &["process", "reaped"],
                    policy: None,
                }),
            )
        },
        Scenario {
            sweep: true,
            ..x(
                "N3",
                "N3.reaped-popen",
                "SIGCHLD set to SIG_IGN, the kernel reaps the child; then poll()",
                Kind::Popen,
                &["reaped"],
                drive_reaped,
                judge_reaped,
                Some(BroodPlay {
                    default: &["popen", "reaped"],
                    policy: None,
                }),
            )
        },
        x(
            "N4",
            "N4.grandchild-process",
            "terminate() a child that has a child of its own",
            Kind::Process,
            &["grandchild"],
            drive_grandchild,
            judge_grandchild,
            Some(BroodPlay {
                default: &["process", "grandchild"],
                policy: Some(("Tree::Group", &["process", "grandchild", "tree=group"])),
            }),
        ),
        x(
            "N4",
            "N4.grandchild-popen",
            "terminate() a child that has a child of its own",
            Kind::Popen,
            &["grandchild"],
            drive_grandchild,
            judge_grandchild,
            Some(BroodPlay {
                default: &["popen", "grandchild"],
                policy: Some(("Tree::Group", &["popen", "grandchild", "tree=group"])),
            }),
        ),
        x(
            "N5",
            "N5.pool-worker-dies",
            "Pool(2).map where one task SIGKILLs its worker",
            Kind::Process,
            &["pool"],
            drive_pool,
            judge_pool,
            Some(BroodPlay {
                default: &["process", "pool"],
                policy: None,
            }),
        ),
    ]
}

fn drive_hang(run: &mut Run) -> Result<(), Abort> {
    children_running(run)?;
    run.go();
    run.expect("main_done", 1, START)?;
    run.note("hang_budget", HANG.as_secs_f64());
    let parent = run.obs().parent;
    run.wait_gone(parent, HANG)?;
    Ok(())
}

/// N1: the parent is still there `HANG` after its main logic ended.
fn judge_hang(o: &Obs) -> Judgement {
    let md = match main_done(o) {
        Ok(m) => m,
        Err(j) => return j,
    };
    match o.parent_exit() {
        Some((te, _)) => {
            let child = o.children().first().copied().and_then(|c| child_end(o, c));
            Judgement::new(
                Verdict::DoesNotHold,
                format!(
                    "parent exited {} after main done; child ended {}",
                    secs(te - md),
                    child
                        .map(|t| secs(t - md) + " after main done")
                        .unwrap_or_else(|| "never".into())
                ),
            )
        }
        None => Judgement::new(
            Verdict::Holds,
            format!(
                "parent still running {} after main done (the lab's hang budget); child alive: {}",
                secs(o.end_t - md),
                yes(o
                    .children()
                    .first()
                    .is_some_and(|c| o.track(*c).gone_at.is_none()))
            ),
        ),
    }
}

fn drive_starting(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    let parent = run.obs().parent;
    run.signal(parent, libc::SIGKILL);
    let child = run.obs().children()[0];
    run.wait_until(START, |o| {
        o.first("child_running").is_some() || o.track(child).gone_at.is_some()
    })?;
    run.observe_for(Duration::from_millis(500))?;
    Ok(())
}

/// N2: the child started while its parent was being killed still runs.
fn judge_starting(o: &Obs) -> Judgement {
    let (Some(&child), Some(&(tk, _, _))) = (o.children().first(), o.sent.first()) else {
        return Judgement::new(
            Verdict::Inconclusive,
            "no child announced or no signal sent",
        );
    };
    let running_at = o.first("child_running").map(|l| l.t);
    let t = o.track(child);
    let alive = t.gone_at.is_none() && t.zombie_at.is_none();
    let evidence = format!(
        "parent SIGKILLed at {}; child already running its body then: {}; child ran its body: {}; child alive at {}: {}",
        secs(tk),
        yes(running_at.is_some_and(|r| r <= tk)),
        yes(running_at.is_some()),
        secs(o.end_t),
        yes(alive)
    );
    let v = match (alive, running_at.is_some()) {
        (true, true) => Verdict::Holds,
        (true, false) => Verdict::Partly,
        (false, _) => Verdict::DoesNotHold,
    };
    Judgement::new(v, evidence)
}

fn drive_reaped(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    run.wait_until(START, |o| {
        o.first("answer").is_some() || o.first("answer_error").is_some() || o.stdout_closed
    })?;
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

/// N3: after a foreign reap, a wrong answer (not the true exit code 3, no
/// error) holds the claim; a clear error does not.
fn judge_reaped(o: &Obs) -> Judgement {
    let Some(reap) = o.first("foreign_reap") else {
        return missing("no foreign reap reported", o);
    };
    if reap.get("pid") == Some("0") {
        return Judgement::new(
            Verdict::Inconclusive,
            "waitpid(-1) found nothing to reap: the child was not the program's own (fork server)",
        );
    }
    if let Some(err) = o.first("answer_error") {
        return Judgement::new(
            Verdict::DoesNotHold,
            format!(
                "the query raised a clear error: {}",
                err.get("type").unwrap_or("?")
            ),
        );
    }
    let Some(ans) = o.first("answer") else {
        return Judgement::new(
            Verdict::Inconclusive,
            format!("no answer reported; stderr: {}", clip(o.stderr_tail(), 100)),
        );
    };
    let parts: Vec<String> = ans.kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let evidence = format!(
        "child exited with 3, reaped elsewhere; then {}",
        parts.join(", ")
    );
    let says_alive = ans.get("is_alive") == Some("True");
    let code = ans
        .get("exitcode")
        .or(ans.get("returncode"))
        .or(ans.get("poll"));
    let right = ans.get("reaped_elsewhere") == Some("1") || code == Some("3");
    let v = if right {
        Verdict::DoesNotHold
    } else if says_alive || code.is_some() {
        Verdict::Holds
    } else {
        Verdict::Inconclusive
    };
    Judgement::new(v, evidence)
}

fn drive_grandchild(run: &mut Run) -> Result<(), Abort> {
    run.expect("grandchild", 1, START)?;
    run.go();
    run.expect("child_exit", 1, EXIT)?;
    run.observe_for(AFTER)?;
    run.go();
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

/// N4: the grandchild outlives its terminated parent.
fn judge_grandchild(o: &Obs) -> Judgement {
    let (Some(g), Some(exit)) = (
        o.first("grandchild").and_then(|l| l.pid()),
        o.first("child_exit"),
    ) else {
        return missing("no grandchild or child exit reported", o);
    };
    let t = o.track(g);
    let alive = t.present_at(exit.t + AFTER.as_secs_f64() * 0.75) && t.zombie_at.is_none();
    let evidence = format!(
        "child ended with exitcode {}; grandchild {} alive {} later: {}; re-parented to the lab: {}",
        exit.get("exitcode").unwrap_or("?"),
        g,
        secs(AFTER.as_secs_f64() * 0.75),
        yes(alive),
        yes(t.adopted_by(o.lab_pid).is_some())
    );
    Judgement::new(
        if alive {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        },
        evidence,
    )
}

fn drive_pool(run: &mut Run) -> Result<(), Abort> {
    run.expect("pool_started", 1, START)?;
    run.note("hang_budget", HANG.as_secs_f64() + 1.0);
    run.wait_until(HANG + Duration::from_secs(1), |o| {
        o.first("map_done").is_some() || o.first("map_error").is_some() || o.stdout_closed
    })?;
    Ok(())
}

/// N5: `map()` neither returns nor fails within the budget.
fn judge_pool(o: &Obs) -> Judgement {
    let Some(started) = o.first("pool_started") else {
        return Judgement::new(
            Verdict::Inconclusive,
            format!("no pool; stderr: {}", clip(o.stderr_tail(), 100)),
        );
    };
    if let Some(err) = o.first("map_error") {
        return Judgement::new(
            Verdict::DoesNotHold,
            format!(
                "map() failed with {} after {}",
                err.get("type").unwrap_or("?"),
                secs(err.t - started.t)
            ),
        );
    }
    if let Some(done) = o.first("map_done") {
        return Judgement::new(
            Verdict::DoesNotHold,
            format!(
                "map() returned {} after {}",
                done.get("result").unwrap_or("?"),
                secs(done.t - started.t)
            ),
        );
    }
    Judgement::new(
        Verdict::Holds,
        format!(
            "map() had neither returned nor failed {} after the pool started",
            secs(o.end_t - started.t)
        ),
    )
}
