//! The compact matrix: a row per scenario, a column per interpreter × start
//! method, then brood's default and brood's policy; one glyph per run, and a
//! line per claim saying what this machine showed. The terminal, Markdown and
//! HTML reports all draw this same [`Matrix`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Lab, footer, groups};
use crate::lab::python::Scope;
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

/// The widest line the terminal matrix draws.
pub const WIDTH: usize = 120;

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
    /// What this machine showed, per claim, in row order.
    pub summaries: Vec<(&'static str, String)>,
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

/// The legend, one line.
pub const LEGEND: &str = "✓ holds  ✗ does not hold  ◐ partly  ? inconclusive  · not run  │  fk/sp/fs: the fork/spawn/forkserver start method; os.fork and Popen rows sit in each interpreter's first column";

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
                        group: format!("py {}", i.version),
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
                let short: String = i
                    .version
                    .splitn(3, '.')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(".");
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
        let mut summaries = Vec::new();
        for (claim, gs) in groups(&lab.results) {
            let mut runs: Vec<&RunResult> = Vec::new();
            for g in &gs {
                let mut cells = vec![None; columns.len()];
                let all = g.python.iter().copied().chain(g.brood).chain(g.policy);
                for r in all {
                    if let Some(i) = column_of(&columns, r) {
                        cells[i] = Some(r);
                    }
                    runs.push(r);
                }
                rows.push(Row {
                    claim,
                    key: g.key,
                    variant: g.variant,
                    cells,
                });
            }
            summaries.push((claim, summary(&runs)));
        }
        Matrix {
            columns,
            rows,
            summaries,
        }
    }

    /// What this machine showed for `claim`, as plain text.
    pub fn summary_text(&self, claim: &str) -> String {
        self.summary_of(claim).replace('\u{a0}', " ")
    }

    /// What this machine showed for `claim`; a no-break space joins each
    /// label to its tally, so that wrapping keeps them on one line.
    pub fn summary_of(&self, claim: &str) -> &str {
        self.summaries
            .iter()
            .find(|(c, _)| *c == claim)
            .map(|(_, s)| s.as_str())
            .unwrap_or("")
    }
}

/// Where runs with one verdict differ from the rest: the start method, the
/// versions or the scenarios they share, or how many they are.
fn where_(minority: &[&RunResult], all: &[&RunResult]) -> String {
    let method = |r: &RunResult| match &r.actor {
        Actor::Python { method, .. } => method.clone(),
        _ => None,
    };
    let version = |r: &RunResult| match &r.actor {
        Actor::Python { version, .. } => version.clone(),
        _ => String::new(),
    };
    let covers = |f: &dyn Fn(&RunResult) -> String| -> Option<Vec<String>> {
        let mut vals: Vec<String> = minority.iter().map(|r| f(r)).collect();
        vals.sort();
        vals.dedup();
        let whole = all
            .iter()
            .filter(|r| vals.contains(&f(r)))
            .all(|r| minority.iter().any(|m| std::ptr::eq(*m, *r)));
        (whole && vals.len() <= 3).then_some(vals)
    };
    // The shortest true description wins; on a tie, the start method, then
    // the version, then the scenario.
    let by_method = covers(&|r| method(r).unwrap_or_else(|| "-".into()))
        .filter(|ms| !ms.iter().any(|m| m == "-"))
        .map(|ms| (ms.len(), format!("under {}", ms.join(", "))));
    let by_version = covers(&version).map(|vs| {
        let short: Vec<String> = vs
            .iter()
            .map(|v| v.splitn(3, '.').take(2).collect::<Vec<_>>().join("."))
            .collect();
        (vs.len(), format!("on {}", short.join(", ")))
    });
    let by_scenario = covers(&|r| {
        r.scenario
            .split_once('.')
            .map(|k| k.1)
            .unwrap_or("")
            .to_string()
    })
    .map(|ks| (ks.len(), format!("in {}", ks.join(", "))));
    let best = [by_method, by_version, by_scenario]
        .into_iter()
        .flatten()
        .min_by_key(|(n, _)| *n);
    if let Some((_, text)) = best {
        return text;
    }
    format!("{}/{}", minority.len(), all.len())
}

/// A verdict tally of `runs`: `✓` when all agree, else each glyph with where.
fn tally(runs: &[&RunResult]) -> String {
    let mut by: BTreeMap<u8, Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        let rank = match r.judgement.verdict {
            Verdict::Holds => 0,
            Verdict::DoesNotHold => 1,
            Verdict::Partly => 2,
            Verdict::Inconclusive => 3,
        };
        by.entry(rank).or_default().push(r);
    }
    let mut groups: Vec<Vec<&RunResult>> = by.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let Some((major, rest)) = groups.split_first() else {
        return "—".into();
    };
    let g = glyph(major[0].judgement.verdict);
    if rest.is_empty() {
        return g.to_string();
    }
    let mut s = format!("{g} ({}/{})", major.len(), runs.len());
    for m in rest {
        let _ = write!(
            s,
            ", {}\u{a0}{}",
            glyph(m[0].judgement.verdict),
            where_(m, runs)
        );
    }
    s
}

/// The line for one claim: CPython's tally, brood's, brood's policy's.
fn summary(runs: &[&RunResult]) -> String {
    let of = |f: fn(&Actor) -> bool| -> Vec<&RunResult> {
        runs.iter().copied().filter(|r| f(&r.actor)).collect()
    };
    let py = of(|a| matches!(a, Actor::Python { .. }));
    let brood = of(|a| matches!(a, Actor::Brood { policy: None }));
    let policy = of(|a| matches!(a, Actor::Brood { policy: Some(_) }));
    let mut parts = Vec::new();
    if !py.is_empty() {
        parts.push(format!("CPython\u{a0}{}", tally(&py)));
    }
    if !brood.is_empty() {
        parts.push(format!("brood\u{a0}{}", tally(&brood)));
    }
    if !policy.is_empty() {
        parts.push(format!("policy\u{a0}{}", tally(&policy)));
    }
    parts.join(" · ")
}

fn colored(g: char, v: Option<Verdict>, color: bool) -> String {
    let code = match (color, v) {
        (true, Some(Verdict::Holds)) => "32",
        (true, Some(Verdict::DoesNotHold)) => "31",
        (true, Some(Verdict::Partly)) => "33",
        (true, Some(Verdict::Inconclusive)) => "90",
        _ => return g.to_string(),
    };
    format!("\x1b[{code}m{g}\x1b[0m")
}

/// Splits `text` into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line at least");
        let len = last.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if len > 0 {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// The width of the scenario column.
const LABEL: usize = 30;

fn col_width(c: &Column) -> usize {
    c.label.chars().count().max(2) + 1
}

/// The terminal matrix: headings, a row per scenario with the claim's summary
/// beside its rows, the legend, and the footer.
pub fn terminal(lab: &Lab, color: bool) -> String {
    let m = Matrix::new(lab);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "brood lab — the field report's claims, measured on this machine"
    );
    // Group headings over their columns.
    let mut groups_line = format!("{:LABEL$}", "");
    let mut labels_line = format!("{:LABEL$}", "claim scenario");
    let mut i = 0;
    while i < m.columns.len() {
        let g = &m.columns[i].group;
        let span: Vec<&Column> = m.columns[i..]
            .iter()
            .take_while(|c| &c.group == g)
            .collect();
        let w: usize = span.iter().map(|c| col_width(c)).sum::<usize>() + 1;
        let name: String = g.chars().take(w - 1).collect();
        let _ = write!(groups_line, " {name:<width$}", width = w - 1);
        labels_line.push(' ');
        for c in &span {
            let _ = write!(labels_line, "{:<width$}", c.label, width = col_width(c));
        }
        i += span.len();
    }
    let grid_width = labels_line.chars().count();
    let room = WIDTH.saturating_sub(grid_width + 2).max(20);
    let _ = writeln!(out, "{}", groups_line.trim_end());
    let _ = writeln!(out, "{}  what this machine showed", labels_line);
    let mut r = 0;
    while r < m.rows.len() {
        let claim = m.rows[r].claim;
        let n = m.rows[r..].iter().take_while(|x| x.claim == claim).count();
        let text = wrap(m.summary_of(claim), room);
        for k in 0..n.max(text.len()) {
            let mut line = String::new();
            match m.rows.get(r + k).filter(|_| k < n) {
                Some(row) => {
                    let id = if k == 0 { claim } else { "" };
                    let name = row.key.split_once('.').map(|x| x.1).unwrap_or(row.key);
                    let name: String = name.chars().take(LABEL - 6).collect();
                    let _ = write!(line, "{id:<5} {name:<width$}", width = LABEL - 6);
                    let mut gi = 0;
                    for (ci, c) in m.columns.iter().enumerate() {
                        if ci == 0 || m.columns[ci - 1].group != c.group {
                            line.push(' ');
                            gi += 1;
                        }
                        let v = row.cells[ci].map(|x| x.judgement.verdict);
                        let g = v.map(glyph).unwrap_or(NOT_RUN);
                        line.push_str(&colored(g, v, color));
                        line.push_str(&" ".repeat(col_width(c) - 1));
                    }
                    let _ = gi;
                }
                None => line.push_str(&" ".repeat(grid_width)),
            }
            if let Some(t) = text.get(k) {
                line.push_str("  ");
                line.push_str(&t.replace('\u{a0}', " "));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        r += n;
    }
    for l in wrap(LEGEND, WIDTH) {
        let _ = writeln!(out, "{l}");
    }
    for l in footer(lab).lines() {
        for w in wrap(l, WIDTH) {
            let _ = writeln!(out, "{w}");
        }
    }
    let _ = writeln!(
        out,
        "evidence: brood lab --detail, or brood lab show ID · claim texts: brood lab --list · page: --html FILE"
    );
    out
}

/// The matrix as a Markdown table, with the summaries as its last column.
pub fn markdown(lab: &Lab) -> String {
    let m = Matrix::new(lab);
    let mut out = String::new();
    let head: Vec<String> = m
        .columns
        .iter()
        .map(|c| match c.key {
            ColKey::Brood => "brood".to_string(),
            ColKey::Policy => "policy".to_string(),
            _ if c.group == "sweep" => c.label.clone(),
            _ => format!("{} {}", c.group, c.label),
        })
        .collect();
    let _ = writeln!(
        out,
        "| claim | scenario | {} | what this machine showed |",
        head.join(" | ")
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(head.len() + 3));
    let mut last = "";
    for row in &m.rows {
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(|c| {
                c.map(|r| glyph(r.judgement.verdict))
                    .unwrap_or(NOT_RUN)
                    .to_string()
            })
            .collect();
        let (claim, summary) = if row.claim != last {
            (row.claim, m.summary_text(row.claim))
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
    let _ = writeln!(out, "\n{LEGEND}");
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
    fn the_summary_names_where_runs_differ() {
        let lab = fixture::lab();
        let m = Matrix::new(&lab);
        let p5 = m.summary_of("P5").replace('\u{a0}', " ");
        assert!(p5.contains("CPython ✓ (2/4)"), "{p5}");
        assert!(p5.contains("✗ under forkserver"), "{p5}");
        assert!(p5.contains("◐ on 2.7"), "{p5}");
        assert!(p5.contains("brood ?"), "{p5}");
        assert_eq!(
            m.summary_of("F3").replace('\u{a0}', " "),
            "CPython ✓ · brood ✗ · policy ✓"
        );
    }

    #[test]
    fn the_terminal_matrix_fits_120_columns() {
        let t = terminal(&fixture::lab(), true);
        for line in t.lines() {
            let plain = line
                .replace("\x1b[32m", "")
                .replace("\x1b[31m", "")
                .replace("\x1b[33m", "")
                .replace("\x1b[90m", "")
                .replace("\x1b[0m", "");
            assert!(plain.chars().count() <= WIDTH, "{line:?}");
        }
        assert!(t.contains("P5    join"), "{t}");
        assert!(t.contains("\x1b[31m✗\x1b[0m"), "{t}");
    }
}
