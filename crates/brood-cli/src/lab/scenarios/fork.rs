//! `os.fork`: claims F1–F5.

use super::common::*;
use super::{BroodPlay, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// The scenarios of this family, in report order.
pub fn list() -> Vec<Scenario> {
    let f3 = |key, variant, mode, brood| Scenario {
        claim: "F3",
        key,
        variant,
        kind: Kind::Fork,
        mode,
        interp: super::Interp::PLAIN,
        sweep: false,
        drive: drive_until_output_ends,
        judge: judge_twice,
        brood,
    };
    let mut rows = parent_leaves_rows!(Kind::Fork, "fork", "F1", "F2");
    rows.push(Scenario {
        sweep: true,
        ..f3(
            "F3.if",
            "code after `if pid == 0:` without else",
            &["twice", "style=if"],
            Some(BroodPlay {
                default: &["fork", "twice", "style=fork_with"],
                policy: Some((
                    "unsafe brood::fork() (Python's shape)",
                    &["fork", "twice", "style=raw"],
                )),
            }),
        )
    });
    rows.push(f3(
        "F3.else",
        "the parent's part in an else: branch",
        &["twice", "style=else"],
        None,
    ));
    rows.extend(signals_and_zombies_rows!(Kind::Fork, "fork", "F4", "F5"));
    rows
}

/// F3: both processes end at once; the lab reads their output to its end
/// (the pipe closes when both are gone), so that no line still on its way
/// is missed on a loaded machine.
fn drive_until_output_ends(run: &mut Run) -> Result<(), Abort> {
    drive_until_exit(run)?;
    run.wait_until(EXIT, |o| o.stdout_closed)?;
    Ok(())
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
    if let Err(j) = finished(o) {
        return j;
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
