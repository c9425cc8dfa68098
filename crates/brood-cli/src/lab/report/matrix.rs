//! The compact matrix: a row per scenario, a column per interpreter × start
//! method, then brood's default and brood's policy; one glyph per CPython run,
//! coloured by the scenario's hazard ([`hazard`]), brood's cells in words, and
//! per claim one verdict with its reason ([`verdict`]). The terminal, Markdown
//! and HTML reports all draw this same [`Matrix`]; the terminal folds the
//! version sweep into one column and fills the terminal's width.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::hazard::{self, Outcome};
use super::text::{pad, tr, width, wrap};
use super::verdict::{self, ClaimVerdict, version_name};
use super::{Lab, footer, groups};
use crate::lab::claims::{self, Lang};
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

/// One glyph for a run, coloured by its outcome.
fn cell(r: Option<&RunResult>, color: bool) -> String {
    match r {
        Some(r) => paint(
            &glyph(r.judgement.verdict).to_string(),
            Some(outcome_of(r)),
            color,
        ),
        None => NOT_RUN.to_string(),
    }
}

/// The version sweep folded into one cell: the glyph most versions share,
/// then each other glyph with the versions that showed it (`✗ ✓2.7`).
fn sweep_cell(lab: &Lab, runs: &[&RunResult], color: bool) -> String {
    let mut by: Vec<(Verdict, Vec<&RunResult>)> = Vec::new();
    for r in runs {
        match by.iter_mut().find(|(v, _)| *v == r.judgement.verdict) {
            Some((_, rs)) => rs.push(r),
            None => by.push((r.judgement.verdict, vec![r])),
        }
    }
    by.sort_by_key(|(_, rs)| std::cmp::Reverse(rs.len()));
    let Some(((_, major), rest)) = by.split_first() else {
        return NOT_RUN.to_string();
    };
    let mut s = cell(Some(major[0]), color);
    for (v, rs) in rest {
        let names: Vec<String> = rs
            .iter()
            .filter_map(|r| match &r.actor {
                Actor::Python { version, .. } => Some(version_name(lab, version)),
                _ => None,
            })
            .collect();
        let names = if names.len() > 2 {
            format!("×{}", names.len())
        } else {
            names.join(",")
        };
        let g = format!("{}{names}", glyph(*v));
        let _ = write!(s, " {}", paint(&g, Some(outcome_of(rs[0])), color));
    }
    s
}

/// What brood did in a run, in words, coloured by its outcome.
fn brood_cell(r: Option<&RunResult>, lang: Lang, with_policy: bool, color: bool) -> String {
    let Some(r) = r else {
        return NOT_RUN.to_string();
    };
    let did = hazard::did(r.scenario, &r.judgement, lang == Lang::Zh);
    let mut s = paint(did, Some(outcome_of(r)), color);
    if let (true, Actor::Brood { policy: Some(p) }) = (with_policy, &r.actor) {
        let _ = write!(s, " · {p}");
    }
    s
}

/// The terminal matrix at the terminal's width (`COLUMNS`, else the
/// terminal's, else 120 columns).
pub fn terminal(lab: &Lab, color: bool) -> String {
    terminal_at(lab, color, super::text::terminal_width())
}

/// Lines of `text` wrapped to `w` columns, every line after the first
/// indented by `indent` spaces.
fn hanging(text: &str, first: &str, indent: usize, w: usize) -> Vec<String> {
    let room = w.saturating_sub(indent).max(20);
    let mut out = Vec::new();
    let lead = width(first);
    let lines = wrap(text, room.saturating_sub(lead.saturating_sub(indent)));
    let rest = lines[1..].join(" ");
    out.push(format!("{first}{}", lines[0]));
    if !rest.is_empty() {
        for l in wrap(&rest, room) {
            out.push(format!("{}{l}", " ".repeat(indent)));
        }
    }
    out
}

/// The terminal matrix at `w` columns: per claim its text, its verdict with
/// the reason and the hazard, then a row per scenario.
pub fn terminal_at(lab: &Lab, color: bool, w: usize) -> String {
    let m = Matrix::new(lab);
    let lang = lab.lang;
    let dim = |s: &str| {
        if color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    // The columns: each full interpreter's start methods, the sweep folded
    // into one, brood's default and brood's policy.
    let full: Vec<usize> = (0..m.columns.len())
        .filter(|i| {
            matches!(m.columns[*i].key, ColKey::Python { .. }) && m.columns[*i].group != "sweep"
        })
        .collect();
    let sweep: Vec<usize> = (0..m.columns.len())
        .filter(|i| m.columns[*i].group == "sweep")
        .collect();
    let brood_col = m.columns.iter().position(|c| c.key == ColKey::Brood);
    let policy_col = m.columns.iter().position(|c| c.key == ColKey::Policy);
    // Full interpreters: (group name, its columns).
    let mut interps: Vec<(String, Vec<usize>)> = Vec::new();
    for &i in &full {
        let g = m.columns[i].group.clone();
        match interps.last_mut() {
            Some((name, cols)) if *name == g => cols.push(i),
            _ => interps.push((g, vec![i])),
        }
    }
    let interp_w: Vec<usize> = interps
        .iter()
        .map(|(g, cols)| (cols.len() * 3).max(width(g.trim_start_matches("CPython ")) + 2))
        .collect();
    struct Line {
        label: String,
        py: Vec<String>,
        sweep: String,
        brood: String,
        policy: String,
    }
    let mut rows: Vec<Line> = Vec::new();
    for row in &m.rows {
        let name = row.key.split_once('.').map(|x| x.1).unwrap_or(row.key);
        let label = if hazard::of(row.key).control {
            format!("  {name} ({})", tr(lang, "control", "对照"))
        } else {
            format!("  {name}")
        };
        let py = interps
            .iter()
            .map(|(_, cols)| {
                cols.iter()
                    .map(|&c| cell(row.cells[c], color))
                    .collect::<Vec<_>>()
                    .join("  ")
            })
            .collect();
        let swept: Vec<&RunResult> = sweep.iter().filter_map(|&c| row.cells[c]).collect();
        rows.push(Line {
            label,
            py,
            sweep: sweep_cell(lab, &swept, color),
            brood: brood_col
                .map(|c| brood_cell(row.cells[c], lang, false, color))
                .unwrap_or_default(),
            policy: policy_col
                .map(|c| brood_cell(row.cells[c], lang, true, color))
                .unwrap_or_default(),
        });
    }
    let sweep_head = match (sweep.first(), sweep.last()) {
        (Some(a), Some(b)) if a != b => {
            format!("{}–{}", m.columns[*a].label, m.columns[*b].label)
        }
        (Some(a), _) => m.columns[*a].label.clone(),
        _ => String::new(),
    };
    let corner = tr(lang, "claim / scenario", "论断 / 场景");
    let label_w = rows
        .iter()
        .map(|r| width(&r.label))
        .chain([width(corner)])
        .max()
        .unwrap_or(0)
        .max(10)
        + 1;
    let sweep_w = if sweep.is_empty() {
        0
    } else {
        rows.iter()
            .map(|r| width(&r.sweep))
            .chain([width(&sweep_head), width(tr(lang, "sweep", "版本扫描"))])
            .max()
            .unwrap_or(0)
            + 2
    };
    let default_head = tr(lang, "default", "默认");
    let policy_head = tr(lang, "+ policy", "+ 策略");
    let brood_w = rows
        .iter()
        .map(|r| width(&r.brood))
        .chain([width(default_head)])
        .max()
        .unwrap_or(0)
        + 2;
    let has_brood = brood_col.is_some() || policy_col.is_some();
    let left_w = label_w + interp_w.iter().sum::<usize>() + sweep_w;
    let policy_room = w.saturating_sub(left_w + 2 + brood_w);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        tr(
            lang,
            "brood lab — the field report's claims, measured on this machine",
            "brood lab —— 在本机上实测那篇实践报告的论断"
        )
    );
    // Three heading lines: who, which version, which start method.
    let mut h1 = pad("", label_w);
    let mut h2 = pad("", label_w);
    let mut h3 = pad(corner, label_w);
    h1.push_str(&pad("CPython", interp_w.iter().sum::<usize>() + sweep_w));
    for ((g, cols), iw) in interps.iter().zip(&interp_w) {
        h2.push_str(&pad(g.trim_start_matches("CPython "), *iw));
        let labels: Vec<&str> = cols.iter().map(|&c| m.columns[c].label.as_str()).collect();
        h3.push_str(&pad(&labels.join(" "), *iw));
    }
    if !sweep.is_empty() {
        h2.push_str(&pad(tr(lang, "sweep", "版本扫描"), sweep_w));
        h3.push_str(&pad(&sweep_head, sweep_w));
    }
    if has_brood {
        h1.push_str("│ brood");
        h2.push('│');
        h3.push_str("│ ");
        h3.push_str(&pad(default_head, brood_w));
        if policy_col.is_some() {
            h3.push_str(policy_head);
        }
    }
    for h in [h1, h2, h3] {
        let _ = writeln!(out, "{}", h.trim_end());
    }
    let mut r = 0;
    while r < m.rows.len() {
        let claim = m.rows[r].claim;
        let n = m.rows[r..].iter().take_while(|x| x.claim == claim).count();
        let text = claims::find(claim).map(|c| c.text(lang)).unwrap_or("");
        let id = if color {
            format!("\x1b[1m{claim:<4}\x1b[0m")
        } else {
            format!("{claim:<4}")
        };
        for l in hanging(text, &id, 4, w) {
            let _ = writeln!(out, "{l}");
        }
        let verdict = format!("{} · {}", m.verdict_line(claim), m.hazard_line(claim));
        for l in hanging(&verdict, "    ", 6, w) {
            let _ = writeln!(out, "{}", dim(&l));
        }
        for line in &rows[r..r + n] {
            let mut s = pad(&line.label, label_w);
            for (p, iw) in line.py.iter().zip(&interp_w) {
                s.push_str(&pad(p, *iw));
            }
            if !sweep.is_empty() {
                s.push_str(&pad(&line.sweep, sweep_w));
            }
            if has_brood {
                s.push_str("│ ");
                s.push_str(&pad(&line.brood, brood_w));
                // The policy's cell where it fits, else on a line of its own
                // under brood's columns.
                if width(&line.policy) <= policy_room {
                    s.push_str(&line.policy);
                } else {
                    let _ = writeln!(out, "{}", s.trim_end());
                    let lead = format!("{}↳ brood {policy_head}: ", " ".repeat(4));
                    s = hanging(&line.policy, &lead, width(&lead), w).join("\n");
                }
            }
            let _ = writeln!(out, "{}", s.trim_end());
        }
        r += n;
    }
    out.push('\n');
    for l in wrap(legend(lang), w) {
        let _ = writeln!(out, "{l}");
    }
    for l in footer(lab).lines() {
        for w in wrap(l, w) {
            let _ = writeln!(out, "{w}");
        }
    }
    for l in wrap(
        tr(
            lang,
            "evidence: brood lab --detail, or brood lab show ID · claims: brood lab --list · page: --html FILE",
            "证据：brood lab --detail 或 brood lab show ID · 论断列表：brood lab --list · 网页：--html FILE",
        ),
        w,
    ) {
        let _ = writeln!(out, "{l}");
    }
    out
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

    #[test]
    fn the_terminal_matrix_fills_80_120_and_160_columns_without_breaking_words() {
        for lang in [Lang::En, Lang::Zh] {
            let mut lab = fixture::lab();
            lab.lang = lang;
            for w in [80, 120, 160] {
                let t = terminal_at(&lab, true, w);
                for line in t.lines() {
                    assert!(width(line) <= w, "{w}: {} > {w}: {line:?}", width(line));
                }
                let flat = super::super::text::plain(&t)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                // Every word of the claim texts and the legend, whole.
                let texts = [claims::find("P5").unwrap().text(lang), legend(lang)];
                // (Chinese wraps between characters: its Latin words stay whole.)
                let words = texts.iter().flat_map(|t| t.split_whitespace());
                for word in words.filter(|w| lang == Lang::En || w.is_ascii()) {
                    assert!(flat.contains(word), "{w} {lang:?}: {word:?} broken in\n{t}");
                }
                // brood's cells say what brood did; the policy is named.
                let did = tr(lang, "ran once", "执行一次");
                assert!(t.contains(&format!("\x1b[32m{did}\x1b[0m")), "{t}");
                assert!(t.contains("raw fork"), "{t}");
            }
        }
    }

    #[test]
    fn colour_follows_the_hazard_not_the_claim() {
        let t = terminal_at(&fixture::lab(), true, 120);
        // F3.if holds under CPython: code ran twice, the hazard: red ✓.
        assert!(t.contains("\x1b[31m✓\x1b[0m"), "{t}");
        // The control P5.join holds: no error at exit, green ✓.
        assert!(t.contains("\x1b[32m✓\x1b[0m"), "{t}");
    }

    #[test]
    fn the_sweep_folds_into_one_column_and_full_versions_tell_3_11s_apart() {
        use crate::lab::python::{Interpreter, Scope};
        let mut lab = fixture::lab();
        lab.lang = Lang::En;
        lab.interpreters.push(Interpreter {
            path: "/usr/bin/python3.11".into(),
            version: "3.11.2".into(),
            major_minor: (3, 11),
            start_methods: vec!["fork".into()],
            scope: Scope::Sweep,
        });
        let mut r = fixture::result(
            "F3",
            "F3.if",
            fixture::py("3.11.2", None),
            Verdict::DoesNotHold,
        );
        if let Actor::Python { interpreter, .. } = &mut r.actor {
            *interpreter = "/usr/bin/python3.11".into();
        }
        lab.results.push(r);
        let t = terminal_at(&lab, false, 120);
        assert!(t.contains("3.11.7"), "{t}");
        assert!(t.contains("2.7–3.11.2"), "the sweep's heading: {t}");
        assert!(t.contains("✓ ✗3.11.2"), "the minority named: {t}");
    }
}
