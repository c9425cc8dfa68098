//! Behaviours the report's readers trip over: SIGINT to the parent alone
//! (N6), output buffered across the making of a child (N7), and what Python
//! says about a `Popen` child still running at exit (N10).

use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Interp, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// How long the non-daemon child of N6 runs.
const N6_CHILD_SECS: f64 = 1.0;

/// N6 and N7, in report order (N10 comes after N8 and N9: [`warning_list`]).
pub fn list() -> Vec<Scenario> {
    let buffered = Interp {
        flags: &[],
        // An empty PYTHONUNBUFFERED is unset for Python: stdout, a pipe here,
        // is block-buffered as in any script whose output is piped.
        env: &[("PYTHONUNBUFFERED", "")],
    };
    vec![
        Scenario {
            claim: "N6",
            key: "N6.sigint-parent",
            variant: "SIGINT to the parent's pid; a daemon and a non-daemon (1 s) child run",
            kind: Kind::Process,
            mode: &["mixed", "how=sigint", "secs=1.0"],
            interp: Interp::PLAIN,
            sweep: false,
            drive: drive_sigint,
            judge: judge_sigint,
            brood: Some(BroodPlay {
                default: &["process", "mixed", "how=sigint", "secs=1.0"],
                policy: Some((
                    "signals::graceful([INT])",
                    &["process", "mixed", "how=sigint", "secs=1.0", "graceful=int"],
                )),
            }),
        },
        Scenario {
            claim: "N7",
            key: "N7.buffered-fork",
            variant: "a line printed to a piped stdout, then os.fork(); the child exits normally",
            kind: Kind::Fork,
            mode: &["buffered"],
            interp: buffered,
            sweep: false,
            drive: drive_buffered,
            judge: judge_buffered,
            brood: Some(BroodPlay {
                default: &["fork", "buffered"],
                policy: None,
            }),
        },
        Scenario {
            claim: "N7",
            key: "N7.buffered-process",
            variant: "a line printed to a piped stdout, then Process.start()",
            kind: Kind::Process,
            mode: &["buffered"],
            interp: buffered,
            sweep: false,
            drive: drive_buffered,
            judge: judge_buffered,
            brood: Some(BroodPlay {
                default: &["process", "buffered"],
                policy: Some(("StartMethod::Fork", &["process", "buffered", "method=fork"])),
            }),
        },
    ]
}

/// N10.
pub fn warning_list() -> Vec<Scenario> {
    vec![Scenario {
        claim: "N10",
        key: "N10.popen-running-at-exit",
        variant: "python -W always; a Popen child (2 s) still runs when main returns",
        kind: Kind::Popen,
        mode: &["exit", "secs=2"],
        interp: Interp {
            flags: &["-W", "always"],
            env: &[],
        },
        sweep: true,
        drive: drive_exit,
        judge: judge_warning,
        brood: Some(BroodPlay {
            default: &["popen", "exit", "secs=2"],
            policy: None,
        }),
    }]
}

fn drive_sigint(run: &mut Run) -> Result<(), Abort> {
    run.expect("ready", 1, START)?;
    children_running(run)?;
    let parent = run.obs().parent;
    run.signal(parent, libc::SIGINT);
    parent_exit_then_look(run, EXIT)
}

/// N6: after SIGINT, the daemon child is ended at once and the non-daemon one
/// runs its course before the parent exits.
fn judge_sigint(o: &Obs) -> Judgement {
    let Some(&(ti, _, _)) = o.sent.first() else {
        return Judgement::new(Verdict::Inconclusive, "no SIGINT was sent");
    };
    let (te, how) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let with = |d: &str| {
        o.events("child")
            .find(|l| l.get("daemon") == Some(d))
            .and_then(|l| l.pid())
    };
    let (Some(n), Some(d)) = (with("0"), with("1")) else {
        return Judgement::new(Verdict::Inconclusive, "the two children were not announced");
    };
    let (tn, td) = (child_end(o, n), child_end(o, d));
    // When the non-daemon child would end by itself: it sleeps after saying so.
    let natural = o
        .events("child_running")
        .find(|l| l.pid() == Some(n))
        .map(|l| l.t + N6_CHILD_SECS);
    let after = |t: Option<f64>| {
        t.map(|t| secs(t - ti) + " after")
            .unwrap_or_else(|| "not (still running)".into())
    };
    let evidence = format!(
        "parent {} {} after SIGINT; daemon child ended {}; non-daemon child ended {}",
        how.map(|h| h.to_string()).unwrap_or_else(|| "gone".into()),
        secs(te - ti),
        after(td),
        after(tn)
    );
    let daemon_ended = td.is_some_and(|t| t - ti < 0.5 && t <= te + 0.05);
    let waited = match (tn, natural) {
        (Some(tn), Some(nat)) => tn + 0.15 >= nat && te + 0.05 >= tn,
        _ => false,
    };
    let v = match (daemon_ended, waited) {
        (true, true) => Verdict::Holds,
        (false, false) => Verdict::DoesNotHold,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}

fn drive_buffered(run: &mut Run) -> Result<(), Abort> {
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    // A child's copy of the buffer may reach the pipe after the parent left.
    run.wait_until(Duration::from_millis(500), |o| o.stdout_closed)?;
    Ok(())
}

/// N7: how many times the line printed before the child was made reached the pipe.
fn judge_buffered(o: &Obs) -> Judgement {
    let n: usize = o
        .lines
        .iter()
        .map(|l| l.raw.matches("before_fork").count())
        .sum();
    if let Err(j) = finished(o) {
        return j;
    }
    let evidence = format!("the line printed before the child appeared {n} time(s) on the pipe");
    let v = match n {
        2 => Verdict::Holds,
        1 => Verdict::DoesNotHold,
        0 => Verdict::Inconclusive,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}

/// N10: whether anything about the running child was printed.
fn judge_warning(o: &Obs) -> Judgement {
    let (te, _) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let alive = o.children().first().is_some_and(|c| survives(o, *c, te).0);
    let warning = o
        .stderr
        .lines()
        .find(|l| l.contains("Warning") || l.contains("still running"))
        .map(str::trim);
    match warning {
        Some(w) => Judgement::new(
            Verdict::DoesNotHold,
            format!(
                "stderr at exit: {}; child alive after the parent: {}",
                clip(w, 90),
                yes(alive)
            ),
        ),
        None if o.stderr.trim().is_empty() => Judgement::new(
            Verdict::Holds,
            format!(
                "nothing on stderr; child alive after the parent: {}",
                yes(alive)
            ),
        ),
        None => Judgement::new(
            Verdict::Partly,
            format!(
                "no warning, but stderr says: {}; child alive after the parent: {}",
                clip(o.stderr_tail(), 80),
                yes(alive)
            ),
        ),
    }
}
