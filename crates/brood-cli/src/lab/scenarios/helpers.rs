//! N11: the processes a start method makes besides the children asked for
//! (CPython's resource tracker and fork server, brood's fork server), found
//! by scanning the parent's descendants, and how long each lives after the
//! parent ends, by itself or by SIGKILL.

use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Interp, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// A short name for a process the program did not announce, from its command
/// line: CPython's helpers by their module, anything else by its first words.
pub fn helper_name(cmdline: &str) -> String {
    let known = [
        ("resource_tracker", "resource tracker"),
        ("semaphore_tracker", "semaphore tracker"),
        ("forkserver", "fork server"),
        ("fork server", "fork server"),
    ];
    if let Some((_, name)) = known.iter().find(|(k, _)| cmdline.contains(k)) {
        return name.to_string();
    }
    let mut words = cmdline.split_whitespace();
    let program = words
        .next()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or("?");
    let text = format!("{program} {}", words.collect::<Vec<_>>().join(" "));
    clip(text.trim(), 40)
}

/// The processes the observer found below the parent without an announcement
/// ([`Run::scan_descendants`](crate::lab::observe::Run::scan_descendants)), as (pid, name), direct children of the parent
/// only when `direct`.
pub fn helpers(o: &Obs, direct: bool) -> Vec<(u32, String)> {
    o.found
        .iter()
        .filter(|f| !direct || o.track(f.pid).ppids.first().map(|p| p.1) == Some(o.parent))
        .map(|f| {
            let mut name = helper_name(&f.cmdline);
            if f.parent_of_children && name != "fork server" {
                name.push_str(" (the children's parent: a fork server)");
            }
            (f.pid, name)
        })
        .collect()
}

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
