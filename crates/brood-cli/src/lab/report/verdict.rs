//! One verdict per claim, from CPython's runs on this machine: holds, partly,
//! does not hold, or depends (on the start method or the version, saying
//! which), with a one-line reason and the claims that explain it. Controls
//! (a variant that shows the claim's boundary) are not counted; brood's runs
//! are not the claim's subject.

use std::collections::BTreeMap;

use super::Lab;
use super::hazard;
use super::text::tr;
use crate::lab::claims::Lang;
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

/// The verdict on a claim as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// In every CPython run.
    Holds,
    /// In some scenarios, or only in part.
    Partly,
    /// In no CPython run.
    DoesNotHold,
    /// Under some start methods or on some versions only.
    Depends,
    /// No CPython run decided.
    Unknown,
}

impl Kind {
    /// The glyph the matrix uses.
    pub fn glyph(self) -> char {
        match self {
            Kind::Holds => '✓',
            Kind::Partly => '◐',
            Kind::DoesNotHold => '✗',
            Kind::Depends => '±',
            Kind::Unknown => '?',
        }
    }

    /// The verdict in words.
    pub fn text(self, lang: Lang) -> &'static str {
        match self {
            Kind::Holds => tr(lang, "holds", "成立"),
            Kind::Partly => tr(lang, "partly", "部分成立"),
            Kind::DoesNotHold => tr(lang, "does not hold", "不成立"),
            Kind::Depends => tr(lang, "depends", "视情况而定"),
            Kind::Unknown => tr(lang, "inconclusive", "无法判断"),
        }
    }
}

/// A claim's verdict, its reason and the claims related to it.
#[derive(Debug, Clone)]
pub struct ClaimVerdict {
    /// The verdict.
    pub kind: Kind,
    /// Why, in one line.
    pub reason: String,
    /// Claims that explain or qualify this one.
    pub related: &'static [&'static str],
}

/// Claims that explain each other.
pub fn related(claim: &str) -> &'static [&'static str] {
    match claim {
        "P2" => &["N1"],
        "N1" => &["P2"],
        "P4" => &["N9"],
        "S4" => &["N9"],
        "N9" => &["P4", "S4"],
        "P5" => &["N8"],
        "N8" => &["P5"],
        "F3" => &["N7"],
        "N7" => &["F3"],
        _ => &[],
    }
}

/// The name of a CPython version in the report: `3.12`, or the full version
/// where two interpreters share major and minor (`3.11.7`, `3.11.2`).
pub fn version_name(lab: &Lab, full: &str) -> String {
    let mm = |v: &str| v.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    let shared = lab
        .interpreters
        .iter()
        .filter(|i| mm(&i.version) == mm(full))
        .count()
        > 1;
    if shared { full.to_string() } else { mm(full) }
}

/// `a, b, c`, or the first and last of more (sorted as versions: `3.6–3.13`).
fn list(items: &[String], lang: Lang) -> String {
    let mut items = items.to_vec();
    let num = |v: &String| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let versions = items
        .iter()
        .all(|v| v.starts_with(|c: char| c.is_ascii_digit()));
    if versions {
        items.sort_by_key(num);
    }
    if items.len() > 3 && versions {
        return format!("{}–{}", items[0], items[items.len() - 1]);
    }
    if items.len() > 3 {
        return match lang {
            Lang::En => format!("{} others", items.len()),
            Lang::Zh => format!("其余 {} 个场景", items.len()),
        };
    }
    items.join(tr(lang, ", ", "、"))
}

/// Splits the runs by `key`: `Some((holding, not))` when every value of the
/// key has runs of one verdict only and both verdicts occur.
fn split_by(
    runs: &[&RunResult],
    key: &dyn Fn(&RunResult) -> String,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut by: Vec<(String, Vec<Verdict>)> = Vec::new();
    for r in runs {
        let k = key(r);
        match by.iter_mut().find(|(x, _)| *x == k) {
            Some((_, vs)) => vs.push(r.judgement.verdict),
            None => by.push((k, vec![r.judgement.verdict])),
        }
    }
    let (mut yes, mut no) = (Vec::new(), Vec::new());
    for (k, vs) in by {
        if vs.iter().all(|v| *v == Verdict::Holds) {
            yes.push(k);
        } else if vs.iter().all(|v| *v == Verdict::DoesNotHold) {
            no.push(k);
        } else {
            return None;
        }
    }
    (!yes.is_empty() && !no.is_empty()).then_some((yes, no))
}

/// The verdict of one claim from its CPython runs, before related claims.
fn own(lab: &Lab, runs: &[&RunResult]) -> (Kind, String) {
    let lang = lab.lang;
    let decided: Vec<&RunResult> = runs
        .iter()
        .copied()
        .filter(|r| !matches!(r.judgement.verdict, Verdict::Inconclusive))
        .collect();
    let n = decided.len();
    let undecided = runs.len() - n;
    let unsure = if undecided > 0 {
        let methods: Vec<String> = runs
            .iter()
            .filter(|r| r.judgement.verdict == Verdict::Inconclusive)
            .filter_map(|r| match &r.actor {
                Actor::Python { method, .. } => method.clone(),
                _ => None,
            })
            .collect();
        let all_fs = methods.len() == undecided && methods.iter().all(|m| m == "forkserver");
        if all_fs {
            tr(lang, "; ? under forkserver", "；forkserver 下无法判断").to_string()
        } else {
            match lang {
                Lang::En => format!("; ? in {undecided} run(s)"),
                Lang::Zh => format!("；{undecided} 次运行无法判断"),
            }
        }
    } else {
        String::new()
    };
    if n == 0 {
        return (
            Kind::Unknown,
            tr(
                lang,
                "no CPython run could decide",
                "没有 CPython 运行能作出判断",
            )
            .to_string()
                + &unsure,
        );
    }
    let holds = decided
        .iter()
        .filter(|r| r.judgement.verdict == Verdict::Holds)
        .count();
    let partly = decided
        .iter()
        .any(|r| r.judgement.verdict == Verdict::Partly);
    if holds == n {
        let why = match lang {
            Lang::En => format!("in every CPython run ({n})"),
            Lang::Zh => format!("在全部 {n} 次 CPython 运行中成立"),
        };
        return (Kind::Holds, why + &unsure);
    }
    if holds == 0 && !partly {
        let why = match lang {
            Lang::En => format!("in no CPython run ({n})"),
            Lang::Zh => format!("在 {n} 次 CPython 运行中均不成立"),
        };
        return (Kind::DoesNotHold, why + &unsure);
    }
    let say = |kind, (yes, no): (Vec<String>, Vec<String>), en: &str, zh: &str| {
        let why = match lang {
            Lang::En => format!(
                "holds {en} {}, not {en} {}",
                list(&yes, lang),
                list(&no, lang)
            ),
            Lang::Zh => format!(
                "{zh} {} 成立，{zh} {} 不成立",
                list(&yes, lang),
                list(&no, lang)
            ),
        };
        (kind, why + &unsure)
    };
    let method = |r: &RunResult| match &r.actor {
        Actor::Python {
            method: Some(m), ..
        } => m.clone(),
        _ => "fork".into(),
    };
    // Start methods split only `multiprocessing.Process` scenarios (Python
    // 2.7, which has no start methods, always forks).
    let process_keys: Vec<&str> = crate::lab::scenarios::all()
        .into_iter()
        .filter(|s| s.kind == crate::lab::scenarios::Kind::Process)
        .map(|s| s.key)
        .collect();
    let is_process = decided.iter().all(|r| process_keys.contains(&r.scenario));
    if is_process && let Some(s) = split_by(&decided, &method) {
        return say(Kind::Depends, s, "under", "在");
    }
    let version = |r: &RunResult| match &r.actor {
        Actor::Python { version, .. } => version_name(lab, version),
        _ => String::new(),
    };
    if let Some(s) = split_by(&decided, &version) {
        return say(Kind::Depends, s, "on", "在 Python");
    }
    let scenario = |r: &RunResult| {
        r.scenario
            .split_once('.')
            .map(|k| k.1)
            .unwrap_or("")
            .to_string()
    };
    if let Some(s) = split_by(&decided, &scenario) {
        return say(Kind::Partly, s, "in", "在");
    }
    let why = match lang {
        Lang::En => format!("holds in {holds} of {n} CPython runs"),
        Lang::Zh => format!("在 {n} 次 CPython 运行中有 {holds} 次成立"),
    };
    (Kind::Partly, why + &unsure)
}

/// Every claim's verdict, by claim id.
pub fn all(lab: &Lab) -> BTreeMap<&'static str, ClaimVerdict> {
    let mut by: BTreeMap<&'static str, Vec<&RunResult>> = BTreeMap::new();
    for r in &lab.results {
        by.entry(r.claim).or_default();
        if matches!(r.actor, Actor::Python { .. }) && !hazard::of(r.scenario).control {
            by.entry(r.claim).or_default().push(r);
        }
    }
    let mut out: BTreeMap<&'static str, ClaimVerdict> = by
        .iter()
        .map(|(claim, runs)| {
            let (kind, reason) = own(lab, runs);
            (
                *claim,
                ClaimVerdict {
                    kind,
                    reason,
                    related: related(claim),
                },
            )
        })
        .collect();
    qualify(lab, &by, &mut out);
    out
}

/// Claims another claim qualifies: P2 holds only in part where a daemon
/// child that ignores SIGTERM hangs the exit (N1); P4 and S4 where a call
/// reaps the zombie without a wait (N9).
fn qualify(
    lab: &Lab,
    by: &BTreeMap<&'static str, Vec<&RunResult>>,
    out: &mut BTreeMap<&'static str, ClaimVerdict>,
) {
    let lang = lab.lang;
    let n1_hangs = out
        .get("N1")
        .is_some_and(|v| matches!(v.kind, Kind::Holds | Kind::Partly | Kind::Depends));
    if let (true, Some(p2)) = (n1_hangs, out.get_mut("P2"))
        && p2.kind == Kind::Holds
    {
        p2.kind = Kind::Partly;
        p2.reason = tr(
            lang,
            "children get SIGTERM only, no SIGKILL after it: a daemon child that ignores SIGTERM hangs the exit",
            "子进程只收到 SIGTERM，之后没有 SIGKILL：忽略 SIGTERM 的守护子进程会让退出挂起",
        )
        .to_string();
    }
    let reaping = |prefix: &str| -> Vec<String> {
        let mut calls: Vec<String> = by
            .get("N9")
            .map(|runs| {
                runs.iter()
                    .filter(|r| r.judgement.verdict == Verdict::DoesNotHold)
                    .filter_map(|r| r.scenario.strip_prefix(prefix))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        calls.dedup();
        calls
    };
    for (claim, prefix) in [("P4", "N9.process-"), ("S4", "N9.popen-")] {
        let calls = reaping(prefix);
        if let (false, Some(v)) = (calls.is_empty(), out.get_mut(claim))
            && v.kind == Kind::Holds
        {
            v.kind = Kind::Partly;
            v.reason = match lang {
                Lang::En => format!(
                    "until the parent ends or calls one of: {} (these reap it without a wait)",
                    calls.join(", ")
                ),
                Lang::Zh => format!(
                    "直到主进程结束，或调用 {}（这些调用不经 wait 即回收它）",
                    calls.join("、")
                ),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn one_verdict_per_claim_without_the_controls() {
        let mut lab = fixture::lab();
        lab.lang = Lang::En;
        let v = all(&lab);
        assert_eq!(v["F3"].kind, Kind::Holds, "{:?}", v["F3"]);
        assert_eq!(v["F3"].related, ["N7"]);
        // P5.join is a control: only os.wait counts, and it splits by method.
        let p5 = &v["P5"];
        assert_eq!(p5.kind, Kind::Depends, "{p5:?}");
        assert_eq!(p5.reason, "holds under fork, spawn, not under forkserver");
    }
}
