//! Drivers and judges shared by several families.
//!
//! Budgets are generous where a process must start (a spawned Python child may
//! take a second on a loaded two-core machine) and short where the lab only
//! checks that something *stays* true (a child still alive 0.4 s after its
//! parent ended).

use std::time::Duration;

use super::{Judgement, Verdict};
use crate::lab::observe::{Abort, Obs, Run};
use crate::lab::reap::{Ended, signal_name};

/// How long a child may take to start running its body.
pub const START: Duration = Duration::from_secs(8);
/// How long a parent may take to exit once told to.
pub const EXIT: Duration = Duration::from_secs(5);
/// How long the lab keeps looking after a parent ended, to see children live on.
pub const AFTER: Duration = Duration::from_millis(400);
/// How much later a protocol line may be stamped than what `/proc` showed
/// at the same moment, in seconds. A line is stamped when the lab's reader
/// thread gets it through a pipe, which a busy (or a waking) CPU delays; the
/// `/proc` samples are taken by the observing thread itself.
const LINE_LATE: f64 = 0.1;

/// Seconds with two decimals (`1.02 s`), never negative.
pub fn secs(t: f64) -> String {
    // A difference can come out a hair below zero: a line is time-stamped when
    // it arrives, which may be after the exit it announced was seen.
    format!("{:.2} s", t.max(0.0))
}

/// `yes` or `no`.
pub fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

fn ended_text(e: Option<Ended>) -> String {
    e.map(|e| e.to_string()).unwrap_or_else(|| "?".into())
}

/// Waits for every announced child to run its body.
pub fn children_running(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    let want = run.obs().children().len();
    run.expect("child_running", want, START)
}

/// Waits until the parent is gone, then keeps looking for [`AFTER`] (less when
/// every child is gone already).
pub fn parent_exit_then_look(run: &mut Run, budget: Duration) -> Result<(), Abort> {
    let parent = run.obs().parent;
    run.wait_gone(parent, budget)?;
    let kids = run.obs().children();
    run.wait_until(AFTER, |o| {
        kids.iter().all(|k| o.track(*k).gone_at.is_some())
    })?;
    Ok(())
}

/// P1/P2/F1/F2/S1/S2: a child runs; the parent's main logic ends.
pub fn drive_exit(run: &mut Run) -> Result<(), Abort> {
    children_running(run)?;
    run.go();
    parent_exit_then_look(run, EXIT)
}

fn signal_of(run: &Run) -> i32 {
    match run.obs().notes.get("signal").map(String::as_str) {
        Some("KILL") => libc::SIGKILL,
        _ => libc::SIGTERM,
    }
}

/// P3/F4/S3 parent side: children run; the lab signals the parent.
pub fn drive_signal_parent(run: &mut Run) -> Result<(), Abort> {
    run.expect("ready", 1, START)?;
    children_running(run)?;
    let (parent, sig) = (run.obs().parent, signal_of(run));
    run.signal(parent, sig);
    parent_exit_then_look(run, EXIT)
}

/// [`drive_signal_parent`] with SIGTERM.
pub fn drive_term_parent(run: &mut Run) -> Result<(), Abort> {
    run.note("signal", "TERM");
    drive_signal_parent(run)
}

/// [`drive_signal_parent`] with SIGKILL.
pub fn drive_kill_parent(run: &mut Run) -> Result<(), Abort> {
    run.note("signal", "KILL");
    drive_signal_parent(run)
}

/// P3/F4/S3 child side: the lab signals the child; the parent waits for it.
pub fn drive_signal_child(run: &mut Run) -> Result<(), Abort> {
    children_running(run)?;
    let (child, sig) = (run.obs().children()[0], signal_of(run));
    run.signal(child, sig);
    run.expect("parent_alive", 1, EXIT)?;
    run.go();
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

/// [`drive_signal_child`] with SIGTERM.
pub fn drive_term_child(run: &mut Run) -> Result<(), Abort> {
    run.note("signal", "TERM");
    drive_signal_child(run)
}

/// [`drive_signal_child`] with SIGKILL.
pub fn drive_kill_child(run: &mut Run) -> Result<(), Abort> {
    run.note("signal", "KILL");
    drive_signal_child(run)
}

/// P4/F5/S4: the child ends by itself (`secs=0`) or the lab kills it; the
/// parent does not wait. The lab looks for state Z, then lets the parent end.
pub fn drive_zombie(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 1, START)?;
    let child = run.obs().children()[0];
    if run.obs().notes.contains_key("kill") {
        run.expect("child_running", 1, START)?;
        run.signal(child, libc::SIGKILL);
    }
    run.wait_until(START, |o| {
        let t = o.track(child);
        t.zombie_at.is_some() || t.gone_at.is_some()
    })?;
    // Let a zombie show that it stays (or someone reaps it) before the parent ends.
    run.observe_for(Duration::from_millis(300))?;
    run.note("parent_told_at", format!("{:.3}", run.now()));
    run.go();
    parent_exit_then_look(run, EXIT)
}

/// [`drive_zombie`] where the lab SIGKILLs the child.
pub fn drive_zombie_killed(run: &mut Run) -> Result<(), Abort> {
    run.note("kill", "1");
    drive_zombie(run)
}

/// Waits until the parent ends by itself.
pub fn drive_until_exit(run: &mut Run) -> Result<(), Abort> {
    let parent = run.obs().parent;
    run.wait_gone(parent, EXIT)?;
    Ok(())
}

// ---- judges ----------------------------------------------------------------

/// An inconclusive judgement that says what was missing and the program's
/// last line of stderr (usually why).
pub fn missing(what: &str, o: &Obs) -> Judgement {
    Judgement::new(
        Verdict::Inconclusive,
        format!("{what}; stderr: {}", clip(o.stderr_tail(), 100)),
    )
}

/// Ok when the parent said its main logic was done, else the inconclusive
/// judgement.
pub fn finished(o: &Obs) -> Result<(), Judgement> {
    match o.first("main_done") {
        Some(_) => Ok(()),
        None => Err(missing("the parent did not finish", o)),
    }
}

/// The parent's exit time and how, or an inconclusive judgement.
pub fn parent_end(o: &Obs) -> Result<(f64, Option<Ended>), Judgement> {
    o.parent_exit().ok_or_else(|| {
        Judgement::new(
            Verdict::Inconclusive,
            format!("parent did not exit within the run ({})", secs(o.end_t)),
        )
    })
}

/// When the parent said its main logic was done, or an inconclusive judgement.
pub fn main_done(o: &Obs) -> Result<f64, Judgement> {
    o.first("main_done").map(|l| l.t).ok_or_else(|| {
        Judgement::new(
            Verdict::Inconclusive,
            format!("no main_done line; stderr: {}", clip(o.stderr_tail(), 100)),
        )
    })
}

/// When a child ended: first seen as a zombie, or gone (`None`: still running
/// when the observation ended). A zombie has ended; only its parent's wait is late.
pub fn child_end(o: &Obs, pid: u32) -> Option<f64> {
    let t = o.track(pid);
    match (t.zombie_at, t.gone_at) {
        (Some(z), Some(g)) => Some(z.min(g)),
        (z, g) => z.or(g),
    }
}

fn end_text(t: Option<f64>) -> String {
    t.map(secs)
        .unwrap_or_else(|| "not (still running at the end)".into())
}

/// Whether a child was there `AFTER` past the parent's exit, and re-parented to the lab.
pub fn survives(o: &Obs, pid: u32, te: f64) -> (bool, bool) {
    let t = o.track(pid);
    let alive =
        t.present_at(te + AFTER.as_secs_f64() * 0.75) && t.zombie_at.is_none_or(|z| z > te + 0.3);
    let adopted = t.adopted_by(o.lab_pid).is_some();
    (alive, adopted)
}

/// What P1 and P2 are judged from: when main was done, when the parent exited,
/// when its first child ended (if it did), and those times as one line of
/// evidence. `Err` is the verdict when the run does not tell.
fn exit_timeline(o: &Obs) -> Result<(f64, f64, Option<f64>, String), Judgement> {
    let (md, (te, _)) = match (main_done(o), parent_end(o)) {
        (Ok(m), Ok(e)) => (m, e),
        (Err(j), _) | (_, Err(j)) => return Err(j),
    };
    let Some(&child) = o.children().first() else {
        return Err(Judgement::new(Verdict::Inconclusive, "no child announced"));
    };
    let tc = child_end(o, child);
    let evidence = format!(
        "main done {}; child ended {}; parent exited {} ({} after main)",
        secs(md),
        end_text(tc),
        secs(te),
        secs(te - md)
    );
    Ok((md, te, tc, evidence))
}

/// P1: the parent's exit waits for the running child.
pub fn judge_waits(o: &Obs) -> Judgement {
    let (md, te, tc, evidence) = match exit_timeline(o) {
        Ok(t) => t,
        Err(j) => return j,
    };
    match tc {
        None => Judgement::new(
            Verdict::DoesNotHold,
            evidence + " (the parent left the child running)",
        ),
        Some(tc) if tc < md - LINE_LATE => Judgement::new(
            Verdict::Inconclusive,
            evidence + " (the child ended before main did)",
        ),
        // The child ran its course (it sleeps 1 s) and the parent left after it.
        Some(tc) if te + 0.05 >= tc && tc > md + 0.5 => Judgement::new(Verdict::Holds, evidence),
        Some(_) => Judgement::new(
            Verdict::DoesNotHold,
            evidence + " (the child was ended at exit, not waited for)",
        ),
    }
}

/// P2: the parent ends the running child at once, then exits.
pub fn judge_terminates(o: &Obs) -> Judgement {
    let (md, te, tc, evidence) = match exit_timeline(o) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let quick_child = tc.is_some_and(|tc| tc - md < 0.5);
    let quick_parent = te - md < 0.8;
    match (quick_child, quick_parent) {
        (true, true) => Judgement::new(Verdict::Holds, evidence),
        (false, false) | (false, true) if tc.is_none() || tc.is_some_and(|tc| tc > te) => {
            Judgement::new(
                Verdict::DoesNotHold,
                evidence + " (child outlived the parent)",
            )
        }
        _ => Judgement::new(Verdict::Partly, evidence),
    }
}

/// F1/S1: the parent exits while the child still runs.
pub fn judge_exits_without_waiting(o: &Obs) -> Judgement {
    let (md, (te, _)) = match (main_done(o), parent_end(o)) {
        (Ok(m), Ok(e)) => (m, e),
        (Err(j), _) | (_, Err(j)) => return j,
    };
    let Some(&child) = o.children().first() else {
        return Judgement::new(Verdict::Inconclusive, "no child announced");
    };
    let tc = child_end(o, child);
    let evidence = format!(
        "parent exited {} after main done; child ended {}",
        secs(te - md),
        end_text(tc)
    );
    if tc.is_none_or(|tc| tc > te + 0.05) {
        Judgement::new(Verdict::Holds, evidence)
    } else {
        Judgement::new(Verdict::DoesNotHold, evidence + " (the parent waited)")
    }
}

/// F2/S2: the child keeps running after the parent exits.
pub fn judge_child_lives_on(o: &Obs) -> Judgement {
    let (te, _) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let Some(&child) = o.children().first() else {
        return Judgement::new(Verdict::Inconclusive, "no child announced");
    };
    let (alive, adopted) = survives(o, child, te);
    let evidence = format!(
        "parent exited {}; child alive {} later: {}; re-parented to the lab: {}",
        secs(te),
        secs(AFTER.as_secs_f64() * 0.75),
        yes(alive),
        yes(adopted)
    );
    let v = if alive {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    Judgement::new(v, evidence)
}

/// P3/F4/S3 parent side: the parent dies of the signal; every child lives on.
pub fn judge_parent_signaled(o: &Obs) -> Judgement {
    let (te, how) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let sig = o.sent.first().map(|s| s.2).unwrap_or(0);
    let kids = o.children();
    let alive: Vec<u32> = kids
        .iter()
        .copied()
        .filter(|k| survives(o, *k, te).0)
        .collect();
    let adopted = kids.iter().filter(|k| survives(o, **k, te).1).count();
    let evidence = format!(
        "{} sent; parent {} at {}; children alive {} later: {}/{}; re-parented to the lab: {}/{}",
        signal_name(sig),
        ended_text(how),
        secs(te),
        secs(AFTER.as_secs_f64() * 0.75),
        alive.len(),
        kids.len(),
        adopted,
        kids.len()
    );
    let parent_stopped = how == Some(Ended::Signaled(sig));
    let v = match (parent_stopped, alive.len()) {
        (true, n) if n == kids.len() && n > 0 => Verdict::Holds,
        (_, 0) => Verdict::DoesNotHold,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}

/// P3/F4/S3 child side: the child dies of the signal, the parent sees -N and runs on.
pub fn judge_child_signaled(o: &Obs) -> Judgement {
    let sig = o.sent.first().map(|s| s.2).unwrap_or(0);
    let Some(exit) = o.first("child_exit") else {
        return Judgement::new(
            Verdict::Inconclusive,
            format!(
                "parent reported no child exit; stderr: {}",
                clip(o.stderr_tail(), 100)
            ),
        );
    };
    let code: Option<i32> = exit.get("exitcode").and_then(|c| c.parse().ok());
    let ran_on = o.first("parent_alive").is_some();
    let evidence = format!(
        "{} sent to the child; parent saw exitcode {}; parent ran on: {}",
        signal_name(sig),
        code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
        yes(ran_on)
    );
    let v = match (code == Some(-sig), ran_on) {
        (true, true) => Verdict::Holds,
        (false, false) => Verdict::DoesNotHold,
        _ => Verdict::Partly,
    };
    Judgement::new(v, evidence)
}

/// P4/F5/S4: the ended child stays Z until the parent ends.
pub fn judge_zombie(o: &Obs) -> Judgement {
    let (te, _) = match parent_end(o) {
        Ok(e) => e,
        Err(j) => return j,
    };
    let Some(&child) = o.children().first() else {
        return Judgement::new(Verdict::Inconclusive, "no child announced");
    };
    let t = o.track(child);
    let ppid = t.ppids.first().map(|p| p.1);
    let not_ours = ppid.is_some_and(|p| p != o.parent);
    let told: f64 = o
        .notes
        .get("parent_told_at")
        .and_then(|s| s.parse().ok())
        .unwrap_or(te);
    let mut evidence = match (t.zombie_at, t.zombie_last) {
        (Some(z0), Some(z1)) => format!(
            "state Z from {} to {}; parent exited {}; child gone {}",
            secs(z0),
            secs(z1),
            secs(te),
            end_text(t.gone_at)
        ),
        _ => format!(
            "state Z seen: no; child gone {}; parent exited {}",
            end_text(t.gone_at),
            secs(te)
        ),
    };
    if not_ours {
        evidence.push_str(&format!(
            "; the child's parent was pid {} (not the program)",
            ppid.unwrap_or(0)
        ));
    }
    match (t.zombie_at, t.zombie_last) {
        (Some(_), Some(z1)) if z1 + 0.1 >= told.min(te) => Judgement::new(Verdict::Holds, evidence),
        // Every ended child is a zombie until it is waited for; a reaper that
        // waits at once leaves one for a few milliseconds only.
        (Some(z0), Some(z1)) if z1 - z0 < 0.1 => Judgement::new(
            Verdict::DoesNotHold,
            evidence + " (reaped at once, long before the parent ended)",
        ),
        (Some(_), _) => Judgement::new(
            Verdict::Partly,
            evidence + " (reaped before the parent ended)",
        ),
        _ => Judgement::new(Verdict::DoesNotHold, evidence),
    }
}

#[cfg(test)]
mod tests {
    //! The judges on hand-made observations: the verdict logic without processes.

    use super::*;
    use crate::lab::observe::{Line, Track};

    const PARENT: u32 = 100;
    const CHILD: u32 = 200;

    fn obs(lines: &[(f64, &str)]) -> Obs {
        let mut o = Obs {
            lab_pid: 1,
            parent: PARENT,
            end_t: 1.5,
            ..Obs::default()
        };
        o.lines = lines
            .iter()
            .filter_map(|(t, l)| Line::parse(*t, l))
            .collect();
        o
    }

    fn track(
        seen: f64,
        zombie: Option<(f64, f64)>,
        gone: Option<f64>,
        ended: Option<Ended>,
    ) -> Track {
        Track {
            starttime: Some(1),
            seen_at: Some(seen),
            zombie_at: zombie.map(|z| z.0),
            zombie_last: zombie.map(|z| z.1),
            gone_at: gone,
            ppids: vec![(seen, PARENT)],
            ended,
        }
    }

    fn zombie_case(zombie: Option<(f64, f64)>, child_gone: f64) -> Judgement {
        let mut o = obs(&[(0.01, "child pid=200"), (0.6, "main_done how=return")]);
        o.notes.insert("parent_told_at".into(), "0.6".into());
        o.procs
            .insert(PARENT, track(0.0, None, Some(0.62), Some(Ended::Exited(0))));
        o.procs
            .insert(CHILD, track(0.02, zombie, Some(child_gone), None));
        judge_zombie(&o)
    }

    #[test]
    fn a_zombie_until_the_parent_ends_holds() {
        let j = zombie_case(Some((0.1, 0.6)), 0.62);
        assert_eq!(j.verdict, Verdict::Holds, "{}", j.evidence);
    }

    #[test]
    fn a_zombie_for_a_moment_does_not_hold() {
        let j = zombie_case(Some((0.1, 0.11)), 0.12);
        assert_eq!(j.verdict, Verdict::DoesNotHold, "{}", j.evidence);
        assert!(j.evidence.contains("reaped at once"));
        let j = zombie_case(None, 0.1);
        assert_eq!(j.verdict, Verdict::DoesNotHold);
        assert!(j.evidence.contains("state Z seen: no"));
    }

    #[test]
    fn a_zombie_reaped_midway_is_partly() {
        let j = zombie_case(Some((0.1, 0.3)), 0.31);
        assert_eq!(j.verdict, Verdict::Partly, "{}", j.evidence);
    }

    fn exit_case(child_gone: Option<f64>, parent_gone: f64) -> Judgement {
        exit_case_at(0.1, child_gone, parent_gone)
    }

    fn exit_case_at(main_done: f64, child_gone: Option<f64>, parent_gone: f64) -> Judgement {
        let mut o = obs(&[(0.01, "child pid=200"), (main_done, "main_done how=return")]);
        o.procs.insert(
            PARENT,
            track(0.0, None, Some(parent_gone), Some(Ended::Exited(0))),
        );
        o.procs.insert(CHILD, track(0.02, None, child_gone, None));
        judge_waits(&o)
    }

    #[test]
    fn waiting_for_the_child() {
        assert_eq!(exit_case(Some(1.1), 1.12).verdict, Verdict::Holds);
        assert_eq!(exit_case(None, 0.11).verdict, Verdict::DoesNotHold);
        // The parent ended the child at exit instead of waiting for it.
        assert_eq!(exit_case(Some(0.11), 0.12).verdict, Verdict::DoesNotHold);
        // The same, with the child's end seen a few ms before main_done's line
        // arrived: the line crossed a pipe and a thread, /proc did not.
        let j = exit_case(Some(0.095), 0.11);
        assert_eq!(j.verdict, Verdict::DoesNotHold, "{}", j.evidence);
        // A child that ended well before main was done tells nothing.
        let j = exit_case_at(0.5, Some(0.2), 0.52);
        assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.evidence);
    }

    fn signal_case(child_gone: Option<f64>) -> Judgement {
        let mut o = obs(&[(0.01, "child pid=200"), (0.05, "ready")]);
        o.sent.push((0.2, PARENT, libc::SIGKILL));
        o.procs.insert(
            PARENT,
            track(0.0, None, Some(0.21), Some(Ended::Signaled(libc::SIGKILL))),
        );
        o.procs.insert(CHILD, track(0.02, None, child_gone, None));
        judge_parent_signaled(&o)
    }

    #[test]
    fn the_child_surviving_its_killed_parent() {
        let j = signal_case(None);
        assert_eq!(j.verdict, Verdict::Holds, "{}", j.evidence);
        assert!(j.evidence.contains("killed by SIGKILL"));
        assert_eq!(signal_case(Some(0.22)).verdict, Verdict::DoesNotHold);
    }

    #[test]
    fn a_missing_exit_is_inconclusive() {
        let o = obs(&[(0.01, "child pid=200")]);
        assert_eq!(judge_waits(&o).verdict, Verdict::Inconclusive);
        assert_eq!(judge_zombie(&o).verdict, Verdict::Inconclusive);
    }
}
