//! N9, implicit reaping: which calls end a zombie without an explicit wait.
//! One scenario per call: the child ends (or, for `del_running`, the handle is
//! dropped while it still runs and then it ends), the parent makes the call,
//! and the lab looks whether the child is still in state Z afterwards.
//! brood plays three of them (a query, a poll, a dropped handle): it reaps
//! every child the moment it ends, whatever the parent calls, so the other
//! calls would only repeat that row.

use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Interp, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// How long a zombie must stay after the call to count as left alone.
const STAYS: Duration = Duration::from_millis(250);

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    type Play = Option<BroodPlay>;
    let row = |key, variant, kind, mode, drive, brood: Play| Scenario {
        claim: "N9",
        key,
        variant,
        kind,
        mode,
        interp: Interp::PLAIN,
        sweep: false,
        drive,
        judge: judge_implicit,
        brood,
    };
    let play = |default| {
        Some(BroodPlay {
            default,
            policy: None,
        })
    };
    let ended = drive_implicit as fn(&mut Run) -> Result<(), Abort>;
    vec![
        row(
            "N9.process-start-another",
            "a Process ended; the parent starts another Process",
            Kind::Process,
            &["implicit", "via=start_another"] as &'static [&'static str],
            ended,
            None,
        ),
        row(
            "N9.process-active-children",
            "a Process ended; the parent calls multiprocessing.active_children()",
            Kind::Process,
            &["implicit", "via=active_children"],
            ended,
            None,
        ),
        row(
            "N9.process-is-alive",
            "a Process ended; the parent calls p.is_alive()",
            Kind::Process,
            &["implicit", "via=is_alive"],
            ended,
            play(&["process", "implicit", "via=is_alive"]),
        ),
        row(
            "N9.process-exitcode",
            "a Process ended; the parent reads p.exitcode",
            Kind::Process,
            &["implicit", "via=exitcode"],
            ended,
            None,
        ),
        row(
            "N9.process-del-gc",
            "a Process ended; the parent does del p; gc.collect()",
            Kind::Process,
            &["implicit", "via=del_gc"],
            ended,
            None,
        ),
        row(
            "N9.popen-poll",
            "a Popen child ended; the parent calls p.poll()",
            Kind::Popen,
            &["implicit", "via=poll"],
            ended,
            play(&["popen", "implicit", "via=poll"]),
        ),
        row(
            "N9.popen-new-popen",
            "a Popen child ended; the parent starts another Popen",
            Kind::Popen,
            &["implicit", "via=new_popen"],
            ended,
            None,
        ),
        row(
            "N9.popen-del-running",
            "del p; gc.collect() while the Popen child runs; then it ends",
            Kind::Popen,
            &["implicit", "via=del_running"],
            drive_implicit_running,
            play(&["popen", "implicit", "via=del_running"]),
        ),
        row(
            "N9.popen-del-exited",
            "a Popen child ended; the parent does del p; gc.collect()",
            Kind::Popen,
            &["implicit", "via=del_exited"],
            ended,
            None,
        ),
    ]
}

/// The child ends; once the lab has seen it (zombie or gone), the parent
/// makes the call; the lab looks on for [`STAYS`].
fn drive_implicit(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    let child = run.obs().children()[0];
    run.wait_until(START, |o| {
        let t = o.track(child);
        t.zombie_at.is_some() || t.gone_at.is_some()
    })?;
    run.observe_for(Duration::from_millis(50))?;
    finish_implicit(run)
}

/// The handle is dropped while the child runs; the lab looks on after it ends.
fn drive_implicit_running(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    run.expect("child_running", 1, START)?;
    finish_implicit(run)
}

fn finish_implicit(run: &mut Run) -> Result<(), Abort> {
    let child = run.obs().children()[0];
    run.go();
    run.expect("acted", 1, EXIT)?;
    run.wait_until(START, |o| {
        let t = o.track(child);
        t.zombie_at.is_some() || t.gone_at.is_some()
    })?;
    run.observe_for(STAYS)?;
    run.go();
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

/// N9: still a zombie [`STAYS`] after the call (and after it ended) holds;
/// reaped after the call, or never a zombie at all, does not. A child that is
/// not the program's own (CPython's forkserver makes it the server's, which
/// reaps it) cannot show what the program's call does: inconclusive. The
/// evidence names no timings that vary from run to run: the lab sends the
/// go-ahead for the call only once it has seen the zombie, so a zombie that
/// goes after that was reaped by what the parent did next.
fn judge_implicit(o: &Obs) -> Judgement {
    let Some(acted) = o.first("acted") else {
        return missing("the parent never made the call", o);
    };
    let Some(&child) = o.children().first() else {
        return Judgement::new(Verdict::Inconclusive, "no child announced");
    };
    let via = acted.get("via").unwrap_or("the call");
    let answer = o
        .first("answer")
        .map(|a| {
            let kv: Vec<String> = a.kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(" (answered {})", kv.join(", "))
        })
        .unwrap_or_default();
    let t = o.track(child);
    let foreign = t.ppids.first().map(|p| p.1).filter(|p| *p != o.parent);
    // CPython's forkserver makes every child the server's; the lab may not
    // even see the child before it ends, so the method decides, not a sample.
    let forkserver = o
        .first("parent")
        .is_some_and(|l| l.get("python").is_some() && l.get("method") == Some("forkserver"));
    if forkserver {
        let whose = foreign
            .map(|p| format!("pid {p}, the fork server"))
            .unwrap_or_else(|| "the fork server".into());
        return Judgement::new(
            Verdict::Inconclusive,
            format!(
                "{via}{answer}: the child was the child of {whose}, not of the program; the server reaps it, so no call of the program's can leave or end a zombie"
            ),
        );
    }
    let whose = foreign
        .map(|p| format!("; the child's parent was pid {p}, not the program"))
        .unwrap_or_default();
    match (t.zombie_at, t.zombie_last) {
        (Some(z0), Some(z1)) if z1 >= z0.max(acted.t) + STAYS.as_secs_f64() * 0.8 => {
            Judgement::new(
                Verdict::Holds,
                format!(
                    "{via}{answer}: still in state Z {} after the call{whose} (the call left the zombie)",
                    secs(STAYS.as_secs_f64())
                ),
            )
        }
        (Some(z0), Some(_)) => {
            let when = if z0 < acted.t {
                "in state Z when the call was made, then gone"
            } else {
                "in state Z once it ended after the call, then gone"
            };
            Judgement::new(
                Verdict::DoesNotHold,
                format!("{via}{answer}: {when}{whose} (reaped without an explicit wait)"),
            )
        }
        _ => Judgement::new(
            Verdict::DoesNotHold,
            format!("{via}{answer}: never seen in state Z{whose} (reaped as soon as it ended)"),
        ),
    }
}
