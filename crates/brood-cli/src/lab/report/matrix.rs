//! The compact matrix: a row per scenario, a column per interpreter × start
//! method, then brood's default and brood's policy; one glyph per CPython run,
//! coloured by the scenario's hazard ([`hazard`]), brood's cells in words, and
//! per claim one verdict with its reason ([`verdict`]). The terminal
//! ([`super::terminal`]), Markdown and HTML reports all draw this same
//! [`Matrix`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::hazard::{self, Outcome};
use super::text::tr;
use super::verdict::{self, ClaimVerdict, version_name};
use super::{Lab, groups};
use crate::lab::claims::Lang;
use crate::lab::python::Scope;
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

/// Which runs a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColKey {
    /// One interpreter under one start method (`None`: Python 2.7, which has none).
    Python {
        /// The interpreter's path.
        interpreter: String,
        /// The start method.
        method: Option<String>,
    },
    /// brood with its defaults.
    Brood,
    /// brood with the row's policy.
    Policy,
}

/// One column of the matrix.
#[derive(Debug, Clone)]
pub struct Column {
    /// The heading over a group of columns (`python3 3.11.7`, `sweep`, `brood`).
    pub group: String,
    /// The column's own heading (`fk`, `3.12`, `def`).
    pub label: String,
    /// A longer name, for the HTML page's tooltips.
    pub title: String,
    /// Which runs it holds.
    pub key: ColKey,
}

/// One row: a scenario.
pub struct Row<'a> {
    /// The claim (`P5`).
    pub claim: &'static str,
    /// The scenario key (`P5.os-wait`).
    pub key: &'static str,
    /// What the scenario does.
    pub variant: &'static str,
    /// One cell per column: the run, if there was one.
    pub cells: Vec<Option<&'a RunResult>>,
}

/// The matrix of one lab.
pub struct Matrix<'a> {
    /// The columns, left to right.
    pub columns: Vec<Column>,
    /// The rows, in claim order.
    pub rows: Vec<Row<'a>>,
    /// Each claim's verdict.
    pub verdicts: BTreeMap<&'static str, ClaimVerdict>,
    /// The language of the texts.
    pub lang: Lang,
}

/// The glyph of a verdict.
pub fn glyph(v: Verdict) -> char {
    match v {
        Verdict::Holds => '✓',
        Verdict::DoesNotHold => '✗',
        Verdict::Partly => '◐',
        Verdict::Inconclusive => '?',
    }
}

/// The glyph of a cell that has no run.
pub const NOT_RUN: char = '·';

/// The legend: what colours, glyphs and columns mean.
pub fn legend(lang: Lang) -> &'static str {
    tr(
        lang,
        "Colour shows each scenario's hazard, the outcome that hurts users (named under each claim): red — it happened, green — it did not, yellow — in part, grey — could not tell. In CPython's columns ✓/✗ say whether the claim held in that run (◐ partly, ? inconclusive, · not run); fk/sp/fs are the fork/spawn/forkserver start methods (os.fork and Popen rows use the first column). brood's columns say what brood did, with its defaults and with the policy named. A claim's verdict (✓ holds, ◐ partly, ✗ does not hold, ± depends) counts CPython's runs, not the controls.",
        "颜色表示每个场景的危害，即伤害用户的结果（列在每条论断下）：红——发生了，绿——没有发生，黄——部分发生，灰——无法判断。CPython 列中 ✓/✗ 表示该次运行论断是否成立（◐ 部分，? 无法判断，· 未运行）；fk/sp/fs 为 fork/spawn/forkserver 启动方式（os.fork 与 Popen 行用第一列）。brood 列写出 brood 的实际行为：默认设置，以及所注明的策略。论断的结论（✓ 成立，◐ 部分成立，✗ 不成立，± 视情况而定）只统计 CPython 的运行，不含对照。",
    )
}

fn method_label(m: Option<&str>) -> &'static str {
    match m {
        Some("fork") => "fk",
        Some("spawn") => "sp",
        Some("forkserver") => "fs",
        Some(_) => "??",
        None => "-",
    }
}

/// The column a run belongs in.
fn column_of(columns: &[Column], r: &RunResult) -> Option<usize> {
    match &r.actor {
        Actor::Brood { policy: None } => columns.iter().position(|c| c.key == ColKey::Brood),
        Actor::Brood { policy: Some(_) } => columns.iter().position(|c| c.key == ColKey::Policy),
        Actor::Python {
            interpreter,
            method,
            ..
        } => {
            let of_interp = |c: &&Column| matches!(&c.key, ColKey::Python { interpreter: i, .. } if i == interpreter);
            let exact = columns.iter().position(|c| {
                matches!(&c.key, ColKey::Python { interpreter: i, method: m } if i == interpreter && m == method)
            });
            // Runs without a start method (os.fork, Popen) take the first column.
            exact.or_else(|| {
                method
                    .is_none()
                    .then(|| columns.iter().position(|c| of_interp(&c)))
                    .flatten()
            })
        }
    }
}

/// Every column the lab's interpreters and brood could fill, in order.
fn all_columns(lab: &Lab) -> Vec<Column> {
    let known = ["fork", "spawn", "forkserver"];
    let mut cols = Vec::new();
    for i in &lab.interpreters {
        let interpreter = i.path.display().to_string();
        let mut methods: Vec<Option<String>> = i
            .start_methods
            .iter()
            .filter(|m| known.contains(&m.as_str()))
            .map(|m| Some(m.clone()))
            .collect();
        if !i.has_contexts() || methods.is_empty() {
            methods = vec![None];
        }
        match i.scope {
            Scope::Full => {
                for m in methods {
                    cols.push(Column {
                        group: format!("CPython {}", i.version),
                        label: method_label(m.as_deref()).to_string(),
                        title: format!(
                            "CPython {} ({})",
                            i.version,
                            m.as_deref().unwrap_or("no start method")
                        ),
                        key: ColKey::Python {
                            interpreter: interpreter.clone(),
                            method: m,
                        },
                    });
                }
            }
            Scope::Sweep => {
                let m = methods.into_iter().next().flatten();
                let short = version_name(lab, &i.version);
                cols.push(Column {
                    group: "sweep".into(),
                    label: short,
                    title: format!(
                        "CPython {} ({}, version sweep)",
                        i.version,
                        m.as_deref().unwrap_or("no start method")
                    ),
                    key: ColKey::Python {
                        interpreter: interpreter.clone(),
                        method: m,
                    },
                });
            }
        }
    }
    cols.push(Column {
        group: "brood".into(),
        label: "def".into(),
        title: "brood with its defaults".into(),
        key: ColKey::Brood,
    });
    cols.push(Column {
        group: "brood".into(),
        label: "pol".into(),
        title: "brood with the policy that changes the row".into(),
        key: ColKey::Policy,
    });
    cols
}

impl<'a> Matrix<'a> {
    /// Lays out the lab's runs.
    pub fn new(lab: &'a Lab) -> Matrix<'a> {
        let candidates = all_columns(lab);
        // Only columns that hold a run.
        let used: Vec<bool> = (0..candidates.len())
            .map(|i| {
                lab.results
                    .iter()
                    .any(|r| column_of(&candidates, r) == Some(i))
            })
            .collect();
        let columns: Vec<Column> = candidates
            .into_iter()
            .zip(used)
            .filter_map(|(c, u)| u.then_some(c))
            .collect();
        let mut rows = Vec::new();
        for (claim, gs) in groups(&lab.results) {
            for g in &gs {
                let mut cells = vec![None; columns.len()];
                let all = g.python.iter().copied().chain(g.brood).chain(g.policy);
                for r in all {
                    if let Some(i) = column_of(&columns, r) {
                        cells[i] = Some(r);
                    }
                }
                rows.push(Row {
                    claim,
                    key: g.key,
                    variant: g.variant,
                    cells,
                });
            }
        }
        Matrix {
            columns,
            rows,
            verdicts: verdict::all(lab),
            lang: lab.lang,
        }
    }

    /// The claim's verdict in one line: `◐ partly: the reason · see N1`.
    pub fn verdict_line(&self, claim: &str) -> String {
        let Some(v) = self.verdicts.get(claim) else {
            return String::new();
        };
        let mut s = format!(
            "{} {}{}{}",
            v.kind.glyph(),
            v.kind.text(self.lang),
            tr(self.lang, ": ", "："),
            v.reason
        );
        if !v.related.is_empty() {
            let _ = write!(
                s,
                " · {} {}",
                tr(self.lang, "see", "参见"),
                v.related.join(", ")
            );
        }
        s
    }

    /// The hazards of the claim's scenarios (controls aside), in one line.
    pub fn hazard_line(&self, claim: &str) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for r in self.rows.iter().filter(|r| r.claim == claim) {
            let h = hazard::of(r.key);
            let what = tr(self.lang, h.what.0, h.what.1);
            if !h.control && !seen.contains(&what) {
                seen.push(what);
            }
        }
        format!("{}{}", tr(self.lang, "hazard: ", "危害："), seen.join("; "))
    }
}

/// `text` in the ANSI colour of an outcome.
pub fn paint(text: &str, o: Option<Outcome>, color: bool) -> String {
    let code = match (color, o) {
        (true, Some(Outcome::Safe)) => "32",
        (true, Some(Outcome::Hurt)) => "31",
        (true, Some(Outcome::Partly)) => "33",
        (true, Some(Outcome::Unknown)) => "90",
        _ => return text.to_string(),
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// How a run came out for the user of the program.
pub fn outcome_of(r: &RunResult) -> Outcome {
    hazard::outcome(r.scenario, &r.judgement)
}

/// The matrix as a Markdown table, with each claim's verdict as its last column.
pub fn markdown(lab: &Lab) -> String {
    let m = Matrix::new(lab);
    let mut out = String::new();
    let head: Vec<String> = m
        .columns
        .iter()
        .map(|c| match c.key {
            ColKey::Brood => "brood".to_string(),
            ColKey::Policy => "brood + policy".to_string(),
            _ if c.group == "sweep" => c.label.clone(),
            _ => format!("{} {}", c.group, c.label),
        })
        .collect();
    let _ = writeln!(
        out,
        "| claim | scenario | {} | {} |",
        head.join(" | "),
        tr(lab.lang, "verdict", "结论")
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(head.len() + 3));
    let mut last = "";
    for row in &m.rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .zip(&m.columns)
            .map(|(c, col)| match (c, &col.key) {
                (Some(r), ColKey::Brood) => {
                    hazard::did(r.scenario, &r.judgement, lab.lang == Lang::Zh).to_string()
                }
                (Some(r), ColKey::Policy) => format!(
                    "{} ({})",
                    hazard::did(r.scenario, &r.judgement, lab.lang == Lang::Zh),
                    match &r.actor {
                        Actor::Brood { policy: Some(p) } => p.as_str(),
                        _ => "",
                    }
                ),
                (Some(r), _) => glyph(r.judgement.verdict).to_string(),
                (None, _) => NOT_RUN.to_string(),
            })
            .collect();
        let (claim, summary) = if row.claim != last {
            (row.claim, m.verdict_line(row.claim))
        } else {
            ("", String::new())
        };
        last = row.claim;
        let _ = writeln!(
            out,
            "| {claim} | {} | {} | {} |",
            super::md_escape(row.key),
            cells.join(" | "),
            super::md_escape(&summary)
        );
    }
    let _ = writeln!(out, "\n{}", legend(lab.lang));
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn columns_follow_interpreters_and_methods() {
        let lab = fixture::lab();
        let m = Matrix::new(&lab);
        let labels: Vec<&str> = m.columns.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["fk", "sp", "fs", "2.7", "def", "pol"]);
        // F3.if: os.fork runs sit in each interpreter's first column.
        let f3 = m.rows.iter().find(|r| r.key == "F3.if").unwrap();
        let got: Vec<Option<Verdict>> = f3
            .cells
            .iter()
            .map(|c| c.map(|r| r.judgement.verdict))
            .collect();
        use Verdict::*;
        assert_eq!(
            got,
            [
                Some(Holds),
                None,
                None,
                Some(Holds),
                Some(DoesNotHold),
                Some(Holds)
            ]
        );
    }

    #[test]
    fn claims_carry_their_verdict_reason_and_hazard() {
        let mut lab = fixture::lab();
        lab.lang = Lang::En;
        let m = Matrix::new(&lab);
        assert_eq!(
            m.verdict_line("F3"),
            "✓ holds: in every CPython run (2) · see N7"
        );
        assert_eq!(m.hazard_line("F3"), "hazard: the parent's code runs twice");
        assert!(
            m.verdict_line("P5")
                .starts_with("± depends: holds under fork, spawn")
        );
    }
}
