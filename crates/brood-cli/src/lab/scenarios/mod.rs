//! The scenarios: for each claim, what the parent program does (its mode), how
//! the lab drives and watches it, and how the verdict follows from what was seen.
//!
//! One file per family (`process`, `fork`, `popen`, `exit`, `extras`); the
//! drivers and the judges that several families share live in `common`.
//! A verdict is computed only from the run's [`Obs`]: nothing here presumes
//! what Python or brood does.

mod common;
mod deeper;
#[macro_use]
mod detached;
mod exit;
mod exit_signals;
mod extras;
mod fork;
mod helpers;
mod popen;
mod process;
mod reaping;

use serde::Serialize;

use super::observe::{Abort, Obs, Run};

/// Which of Python's ways of making a child the scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `multiprocessing.Process`: run once per start method.
    Process,
    /// `os.fork`.
    Fork,
    /// `subprocess.Popen`.
    Popen,
}

impl Kind {
    /// The name the parent programs take on their command line.
    pub fn arg(self) -> &'static str {
        match self {
            Kind::Process => "process",
            Kind::Fork => "fork",
            Kind::Popen => "popen",
        }
    }
}

/// A verdict on a claim, from one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// What the claim says happened.
    Holds,
    /// The opposite happened.
    DoesNotHold,
    /// Part of the claim happened.
    Partly,
    /// The run could not decide (the program failed, or the situation the claim
    /// is about could not be produced).
    Inconclusive,
}

impl Verdict {
    /// Text for tables.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Partly => "partly",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A verdict and its evidence, one line of numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// What was observed, in one line.
    pub evidence: String,
}

impl Judgement {
    fn new(verdict: Verdict, evidence: impl Into<String>) -> Self {
        Judgement {
            verdict,
            evidence: evidence.into(),
        }
    }
}

/// How brood plays a scenario: arguments of `brood lab-child`.
#[derive(Debug, Clone, Copy)]
pub struct BroodPlay {
    /// With brood's defaults for that kind of child.
    pub default: &'static [&'static str],
    /// With the policy that fixes what hurts: (policy's name, arguments).
    pub policy: Option<(&'static str, &'static [&'static str])>,
}

/// How the interpreter runs a scenario's parent program, beyond the script.
#[derive(Debug, Clone, Copy)]
pub struct Interp {
    /// Interpreter options before the script (`-W always`).
    pub flags: &'static [&'static str],
    /// Environment entries that replace the lab's defaults
    /// (`PYTHONUNBUFFERED=""` for a block-buffered stdout).
    pub env: &'static [(&'static str, &'static str)],
}

impl Interp {
    /// The script alone, with the lab's environment.
    pub const PLAIN: Interp = Interp {
        flags: &[],
        env: &[],
    };
}

/// One scenario: a claim, tested one way.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The claim it tests (`P3`).
    pub claim: &'static str,
    /// Unique key (`P3.kill-parent`), matched by `--only`.
    pub key: &'static str,
    /// What this variant does, for the report.
    pub variant: &'static str,
    /// Which way of making a child.
    pub kind: Kind,
    /// The parent program's mode and arguments.
    pub mode: &'static [&'static str],
    /// Interpreter options and environment for the Python side.
    pub interp: Interp,
    /// Whether it is part of the version sweep (run for every interpreter found).
    pub sweep: bool,
    /// Drives a run: go-aheads, signals, what to wait for.
    pub drive: fn(&mut Run) -> Result<(), Abort>,
    /// Computes the verdict from the observations.
    pub judge: fn(&Obs) -> Judgement,
    /// How brood plays it, if it does.
    pub brood: Option<BroodPlay>,
}

/// Every scenario, in claim order.
pub fn all() -> Vec<Scenario> {
    let mut v = process::list();
    v.extend(fork::list());
    v.extend(popen::list());
    v.extend(exit::list());
    v.extend(extras::list());
    v.extend(deeper::list());
    v.extend(exit_signals::list());
    v.extend(reaping::list());
    v.extend(deeper::warning_list());
    v.extend(helpers::list());
    v
}

/// Whether `pattern` (comma-separated, case-insensitive) selects `s`. An item
/// shaped like a claim id (a letter, then digits or nothing: `P3`, `F`) selects
/// claims by id prefix; any other item selects scenario keys containing it
/// (`kill-parent`, `P3.term`).
pub fn selected(s: &Scenario, pattern: Option<&str>) -> bool {
    let Some(pattern) = pattern else { return true };
    pattern
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| {
            let p = p.to_ascii_lowercase();
            let mut chars = p.chars();
            let claim_like = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_digit());
            if claim_like && p.len() == 1 {
                s.claim.to_ascii_lowercase().starts_with(&p)
            } else if claim_like {
                // `N1` is N1 alone, not N10 and N11.
                s.claim.eq_ignore_ascii_case(&p)
            } else {
                s.key.to_ascii_lowercase().contains(&p)
            }
        })
}

/// The verdict of a run that stopped early.
pub fn aborted(obs: &Obs, why: &Abort) -> Judgement {
    let tail = obs.stderr_tail();
    let mut evidence = format!("run stopped: {why}");
    if !tail.is_empty() {
        evidence.push_str(&format!("; stderr: {}", common::clip(tail, 120)));
    }
    Judgement::new(Verdict::Inconclusive, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_claims_known() {
        let all = all();
        for (i, s) in all.iter().enumerate() {
            assert!(super::super::claims::find(s.claim).is_some(), "{}", s.key);
            assert!(all[i + 1..].iter().all(|t| t.key != s.key), "{}", s.key);
        }
    }

    #[test]
    fn only_patterns() {
        let all = all();
        let p3 = all.iter().find(|s| s.key == "P3.kill-parent").unwrap();
        assert!(selected(p3, Some("p3")));
        assert!(selected(p3, Some("F1, P")));
        assert!(selected(p3, Some("kill-parent")));
        assert!(!selected(p3, Some("F")));
        let popen = all.iter().find(|s| s.key == "N2.starting-popen").unwrap();
        assert!(
            !selected(popen, Some("P")),
            "P selects claims P1-P5, not keys with a p"
        );
        assert!(selected(popen, Some("starting")));
        assert!(selected(p3, None));
        let n1 = all.iter().find(|s| s.claim == "N1").unwrap();
        let n10 = all.iter().find(|s| s.claim == "N10").unwrap();
        assert!(selected(n1, Some("N1")) && !selected(n10, Some("N1")));
        assert!(selected(n10, Some("N")) && selected(n10, Some("n10")));
    }
}
