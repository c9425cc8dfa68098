//! Leaving: `os._exit` (X1) and `sys.exit` (X2), with one daemon=False child
//! (running 0.8 s) and one daemon=True child (running 30 s).

use super::common::*;
use super::{BroodPlay, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::Obs;

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    vec![
        Scenario {
            claim: "X1",
            key: "X1.os-exit",
            variant: "os._exit(0) with a daemon and a non-daemon child running",
            kind: Kind::Process,
            mode: &["mixed", "how=os_exit"],
            interp: super::Interp::PLAIN,
            sweep: false,
            drive: drive_exit,
            judge: judge_x1,
            brood: Some(BroodPlay {
                default: &["process", "mixed", "how=os_exit"],
                policy: Some((
                    "OnParentDeath::Signal(KILL)",
                    &["process", "mixed", "how=os_exit", "on_parent_death=kill"],
                )),
            }),
        },
        Scenario {
            claim: "X2",
            key: "X2.sys-exit",
            variant: "sys.exit(0) with a daemon and a non-daemon child running",
            kind: Kind::Process,
            mode: &["mixed", "how=sys_exit"],
            interp: super::Interp::PLAIN,
            sweep: true,
            drive: drive_exit,
            judge: judge_x2,
            brood: Some(BroodPlay {
                default: &["process", "mixed", "how=sys_exit"],
                policy: None,
            }),
        },
    ]
}

fn child_with(o: &Obs, daemon: &str) -> Option<u32> {
    o.events("child")
        .find(|l| l.get("daemon") == Some(daemon))
        .and_then(|l| l.pid())
}

fn times(o: &Obs) -> Result<(f64, f64, u32, u32), Judgement> {
    let md = main_done(o)?;
    let (te, _) = parent_end(o)?;
    match (child_with(o, "0"), child_with(o, "1")) {
        (Some(n), Some(d)) => Ok((md, te, n, d)),
        _ => Err(Judgement::new(
            Verdict::Inconclusive,
            "the two children were not announced",
        )),
    }
}

/// X1: the parent leaves at once; neither child is touched.
fn judge_x1(o: &Obs) -> Judgement {
    let (md, te, n, d) = match times(o) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let (n_alive, _) = survives(o, n, te);
    let (d_alive, _) = survives(o, d, te);
    let evidence = format!(
        "parent exited {} after main done; alive {} later: non-daemon {}, daemon {}",
        secs(te - md),
        secs(AFTER.as_secs_f64() * 0.75),
        yes(n_alive),
        yes(d_alive)
    );
    let v = match (te - md < 0.3, n_alive, d_alive) {
        (true, true, true) => Verdict::Holds,
        (_, false, false) => Verdict::DoesNotHold,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}

/// X2: the parent ends the daemon child at once and waits for the other.
fn judge_x2(o: &Obs) -> Judgement {
    let (md, te, n, d) = match times(o) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let tn = child_end(o, n);
    let td = child_end(o, d);
    let fmt = |t: Option<f64>| t.map(|t| secs(t - md)).unwrap_or_else(|| "never".into());
    let evidence = format!(
        "after main done: daemon child ended {}, non-daemon child ended {}, parent exited {}",
        fmt(td),
        fmt(tn),
        secs(te - md)
    );
    let daemon_ended = td.is_some_and(|t| t - md < 0.5);
    let waited = tn.is_some_and(|t| te + 0.05 >= t);
    let v = match (daemon_ended, waited) {
        (true, true) => Verdict::Holds,
        (false, false) => Verdict::DoesNotHold,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}
