//! N11: the processes a start method makes besides the children asked for
//! (CPython's resource tracker and fork server, brood's fork server), found
//! by scanning the parent's descendants, and how long each lives after the
//! parent ends, by itself or by SIGKILL.

use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Interp, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// How long the lab watches helpers after the parent ended.
const HELPERS_AFTER: Duration = Duration::from_millis(1000);

/// The scenarios of this family.
pub fn list() -> Vec<Scenario> {
    let row = |key, variant, mode, drive, brood| Scenario {
        claim: "N11",
        key,
        variant,
        kind: Kind::Process,
        mode,
        interp: Interp::PLAIN,
        sweep: false,
        drive,
        judge: judge_helpers,
        brood: Some(brood),
    };
    vec![
        row(
            "N11.helpers-exit",
            "a daemon child runs; main returns",
            &["exit", "daemon=1", "secs=30"] as &'static [&'static str],
            drive_helpers_exit as fn(&mut Run) -> Result<(), Abort>,
            BroodPlay {
                default: &["process", "exit", "daemon=1", "secs=30"],
                policy: Some((
                    "StartMethod::Fork",
                    &["process", "exit", "daemon=1", "secs=30", "method=fork"],
                )),
            },
        ),
        row(
            "N11.helpers-killed",
            "children run; the lab SIGKILLs the parent",
            &["signal_parent"],
            drive_helpers_killed,
            BroodPlay {
                default: &["process", "signal_parent"],
                policy: Some((
                    "StartMethod::Fork",
                    &["process", "signal_parent", "method=fork"],
                )),
            },
        ),
    ]
}

/// Watches the helpers until each is gone or [`HELPERS_AFTER`] passed.
fn watch_helpers(run: &mut Run) -> Result<(), Abort> {
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    run.wait_until(HELPERS_AFTER, |o| {
        o.found.iter().all(|f| o.track(f.pid).gone_at.is_some())
    })?;
    Ok(())
}

fn drive_helpers_exit(run: &mut Run) -> Result<(), Abort> {
    children_running(run)?;
    run.scan_descendants();
    run.go();
    watch_helpers(run)
}

fn drive_helpers_killed(run: &mut Run) -> Result<(), Abort> {
    run.expect("ready", 1, START)?;
    children_running(run)?;
    run.scan_descendants();
    let parent = run.obs().parent;
    run.signal(parent, libc::SIGKILL);
    watch_helpers(run)
}

/// N11: no process below the parent but the announced children.
fn judge_helpers(o: &Obs) -> Judgement {
    let (te, how) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let kids = o.children().len();
    let found = helpers(o, false);
    let how = how.map(|h| h.to_string()).unwrap_or_else(|| "gone".into());
    if found.is_empty() {
        return Judgement::new(
            Verdict::Holds,
            format!("no process besides the {kids} announced child(ren); parent {how}"),
        );
    }
    let each: Vec<String> = found
        .iter()
        .map(|(pid, name)| {
            let t = o.track(*pid);
            let life = match t.gone_at {
                Some(g) => format!("ended {} after the parent", secs(g - te)),
                None => format!("still running {} after the parent", secs(o.end_t - te)),
            };
            format!("{name} {pid} {life}")
        })
        .collect();
    Judgement::new(
        Verdict::DoesNotHold,
        format!(
            "parent {how}; besides {kids} child(ren): {}",
            each.join("; ")
        ),
    )
}
