//! The lab's report: a terminal table, Markdown, or JSON.
//!
//! # JSON schema
//!
//! `--json` prints one object, described formally by `crates/brood-cli/lab-schema.json`
//! (JSON Schema, draft 2020-12) and checked against it by the test suite:
//!
//! - `schema`: `"brood-lab/1"`; `brood_version`; `kernel` (release); `cpus`;
//!   `duration_s`; `lang` (`"en"` or `"zh"`).
//! - `interpreters`: `[{path, version, start_methods: [..], scope: "full"|"sweep"}]`.
//! - `unusable`: `[{path, reason}]`: interpreters that were tried and skipped.
//! - `claims`: `[{id, family, text, en, zh}]`: every claim; `text` in `lang`.
//! - `runs`: `[{claim, scenario, variant, actor, verdict, evidence, duration_s, timed_out}]`,
//!   where `actor` is `{kind: "python", version, interpreter, method: string|null}`
//!   or `{kind: "brood", policy: string|null}` (`null`: brood's defaults), and
//!   `verdict` is `"holds"`, `"does_not_hold"`, `"partly"` or `"inconclusive"`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use comfy_table::{Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use super::claims::{Lang, CLAIMS};
use super::python::{Interpreter, Unusable};
use super::scenarios::Verdict;
use super::{Actor, RunResult};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for the terminal.
    Table,
    /// Markdown.
    Markdown,
    /// JSON (see the module documentation).
    Json,
}

/// Errors writing the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// stdout failed (closed pipe, full disk).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Serialising failed.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Everything the report shows.
pub struct Lab {
    /// Language of claim texts.
    pub lang: Lang,
    /// Interpreters used.
    pub interpreters: Vec<Interpreter>,
    /// Interpreters skipped.
    pub unusable: Vec<Unusable>,
    /// Every run, in report order.
    pub results: Vec<RunResult>,
    /// Wall time of the lab.
    pub duration_s: f64,
}

#[derive(Serialize)]
struct ClaimOut {
    id: &'static str,
    family: &'static str,
    text: &'static str,
    en: &'static str,
    zh: &'static str,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    brood_version: &'static str,
    kernel: String,
    cpus: usize,
    duration_s: f64,
    lang: &'static str,
    interpreters: &'a [Interpreter],
    unusable: &'a [Unusable],
    claims: Vec<ClaimOut>,
    runs: &'a [RunResult],
}

/// Writes the report to stdout.
pub fn print(lab: &Lab, format: Format) -> Result<(), ReportError> {
    let text = match format {
        Format::Json => json(lab)? + "\n",
        Format::Markdown => markdown(lab),
        Format::Table => table(lab),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that stopped early (`brood lab | head`) is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The JSON text.
pub fn json(lab: &Lab) -> Result<String, serde_json::Error> {
    let report = JsonReport {
        schema: "brood-lab/1",
        brood_version: env!("CARGO_PKG_VERSION"),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        duration_s: lab.duration_s,
        lang: match lab.lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        },
        interpreters: &lab.interpreters,
        unusable: &lab.unusable,
        claims: CLAIMS
            .iter()
            .map(|c| ClaimOut {
                id: c.id,
                family: c.family,
                text: c.text(lab.lang),
                en: c.en,
                zh: c.zh,
            })
            .collect(),
        runs: &lab.results,
    };
    serde_json::to_string_pretty(&report)
}

/// Runs of one scenario: the Python rows, brood's default, brood's policy.
struct Group<'a> {
    variant: &'static str,
    python: Vec<&'a RunResult>,
    brood: Option<&'a RunResult>,
    policy: Option<&'a RunResult>,
}

/// Groups results by claim, then scenario, keeping report order.
fn groups(results: &[RunResult]) -> Vec<(&'static str, Vec<Group<'_>>)> {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_key: BTreeMap<&'static str, Group<'_>> = BTreeMap::new();
    for r in results {
        let g = by_key.entry(r.scenario).or_insert_with(|| {
            order.push(r.scenario);
            Group {
                variant: r.variant,
                python: Vec::new(),
                brood: None,
                policy: None,
            }
        });
        match &r.actor {
            Actor::Python { .. } => g.python.push(r),
            Actor::Brood { policy: None } => g.brood = Some(r),
            Actor::Brood { policy: Some(_) } => g.policy = Some(r),
        }
    }
    let mut out: Vec<(&'static str, Vec<Group<'_>>)> = Vec::new();
    for claim in CLAIMS {
        let keys: Vec<&'static str> = order
            .iter()
            .copied()
            .filter(|k| by_key.get(k).is_some_and(|g| first(g).claim == claim.id))
            .collect();
        let gs: Vec<Group<'_>> = keys.iter().filter_map(|k| by_key.remove(k)).collect();
        if !gs.is_empty() {
            out.push((claim.id, gs));
        }
    }
    out
}

fn first<'a>(g: &Group<'a>) -> &'a RunResult {
    g.python
        .first()
        .copied()
        .or(g.brood)
        .or(g.policy)
        .expect("a group has at least one run")
}

fn verdict_cell(v: Verdict, color: bool) -> Cell {
    let cell = Cell::new(v.text());
    if !color {
        return cell;
    }
    cell.fg(match v {
        Verdict::Holds => Color::Green,
        Verdict::DoesNotHold => Color::Red,
        Verdict::Partly => Color::Yellow,
        Verdict::Inconclusive => Color::DarkGrey,
    })
}

fn brood_text(r: Option<&RunResult>, with_policy: bool) -> String {
    match r {
        None => "—".into(),
        Some(r) => {
            let policy = match (&r.actor, with_policy) {
                (Actor::Brood { policy: Some(p) }, true) => format!("{p}: "),
                _ => String::new(),
            };
            format!(
                "{policy}{} — {}",
                r.judgement.verdict.text(),
                nbsp(&r.judgement.evidence)
            )
        }
    }
}

/// Keeps a number and its unit on one line when the table wraps a cell.
fn nbsp(text: &str) -> String {
    text.replace(" s;", "\u{a0}s;")
        .replace(" s ", "\u{a0}s ")
        .replace(" s)", "\u{a0}s)")
}

/// The terminal table, with the claim texts above it.
pub fn table(lab: &Lab) -> String {
    let color = std::io::stdout().is_terminal();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "brood lab — the field report's claims, measured on this machine\n"
    );
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    if !std::io::stdout().is_terminal() {
        t.set_width(200);
    }
    t.set_header(vec![
        "claim",
        "variant",
        "python / method",
        "verdict",
        "observed",
        "brood default",
        "brood with policy",
    ]);
    for (claim, gs) in groups(&lab.results) {
        let _ = writeln!(
            out,
            "{claim}  {}",
            super::claims::find(claim)
                .map(|c| c.text(lab.lang))
                .unwrap_or("")
        );
        if !t.is_empty() {
            t.add_row(vec![""; 7]);
        }
        let mut claim_shown = false;
        for g in gs {
            let n = g.python.len().max(1);
            for i in 0..n {
                let py = g.python.get(i);
                let mut row = vec![
                    Cell::new(if claim_shown { "" } else { claim }),
                    Cell::new(if i == 0 { g.variant } else { "" }),
                    Cell::new(py.map(|r| r.actor.label()).unwrap_or_else(|| "—".into())),
                    py.map(|r| verdict_cell(r.judgement.verdict, color))
                        .unwrap_or_else(|| Cell::new("")),
                    Cell::new(py.map(|r| nbsp(&r.judgement.evidence)).unwrap_or_default()),
                ];
                if i == 0 {
                    row.push(Cell::new(brood_text(g.brood, false)));
                    row.push(Cell::new(brood_text(g.policy, true)));
                } else {
                    row.push(Cell::new(""));
                    row.push(Cell::new(""));
                }
                t.add_row(row);
                claim_shown = true;
            }
        }
    }
    let _ = writeln!(out, "\n{t}");
    let _ = writeln!(out, "{}", footer(lab));
    out
}

fn footer(lab: &Lab) -> String {
    let mut s = format!(
        "{} runs in {:.1} s; interpreters: ",
        lab.results.len(),
        lab.duration_s
    );
    let names: Vec<String> = lab
        .interpreters
        .iter()
        .map(|i| {
            let scope = match i.scope {
                super::python::Scope::Full => "full",
                super::python::Scope::Sweep => "sweep",
            };
            let methods = if i.start_methods.is_empty() {
                "no start methods: always forks".to_string()
            } else {
                i.start_methods.join("/")
            };
            format!("{} ({methods}, {scope})", i.version)
        })
        .collect();
    s.push_str(if names.is_empty() { "none" } else { "" });
    s.push_str(&names.join(", "));
    for u in &lab.unusable {
        let _ = write!(s, "\nnot used: {} — {}", u.path, u.reason);
    }
    s.push_str("\nverdicts are this run's observations; brood's policy column shows the policy that changes the row.");
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown report: one section per claim.
pub fn markdown(lab: &Lab) -> String {
    let mut out = String::from("# brood lab\n\n");
    for (claim, gs) in groups(&lab.results) {
        let text = super::claims::find(claim)
            .map(|c| c.text(lab.lang))
            .unwrap_or("");
        let _ = writeln!(out, "## {claim} — {}\n", md_escape(text));
        let _ = writeln!(
            out,
            "| variant | run | verdict | evidence |\n| --- | --- | --- | --- |"
        );
        for g in gs {
            let rows = g.python.iter().copied().chain(g.brood).chain(g.policy);
            for r in rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    md_escape(g.variant),
                    md_escape(&r.actor.label()),
                    r.judgement.verdict.text(),
                    md_escape(&r.judgement.evidence)
                );
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", footer(lab).replace('\n', "  \n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::scenarios::Judgement;

    fn result(scenario: &'static str, actor: Actor, verdict: Verdict) -> RunResult {
        RunResult {
            claim: "F3",
            scenario,
            variant: "code after the block | twice",
            actor,
            judgement: Judgement {
                verdict,
                evidence: "ran in 2 process(es)".into(),
            },
            duration_s: 0.1,
            timed_out: false,
        }
    }

    fn lab() -> Lab {
        let py = Actor::Python {
            version: "3.11.7".into(),
            interpreter: "/usr/bin/python3".into(),
            method: None,
        };
        Lab {
            lang: Lang::Zh,
            interpreters: Vec::new(),
            unusable: vec![Unusable {
                path: "python9".into(),
                reason: "cannot run".into(),
            }],
            results: vec![
                result("F3.if", py, Verdict::Holds),
                result("F3.if", Actor::Brood { policy: None }, Verdict::DoesNotHold),
                result(
                    "F3.if",
                    Actor::Brood {
                        policy: Some("raw fork".into()),
                    },
                    Verdict::Holds,
                ),
            ],
            duration_s: 1.0,
        }
    }

    #[test]
    fn markdown_groups_by_claim_and_escapes_pipes() {
        let md = markdown(&lab());
        assert!(md.contains("## F3 — 子进程"), "{md}");
        assert!(md.contains("code after the block \\| twice"), "{md}");
        assert!(md.contains("| brood + raw fork | holds |"), "{md}");
        assert!(md.contains("not used: python9"), "{md}");
    }

    #[test]
    fn table_puts_brood_beside_python() {
        let t = table(&lab());
        assert!(t.contains("py3.11.7"), "{t}");
        assert!(t.contains("raw fork: holds"), "{t}");
        assert!(t.contains("does not hold"), "{t}");
    }

    #[test]
    fn json_has_the_schema_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&lab()).unwrap()).unwrap();
        assert_eq!(v["schema"], "brood-lab/1");
        assert_eq!(v["runs"][0]["actor"]["kind"], "python");
        assert_eq!(v["runs"][1]["actor"]["policy"], serde_json::Value::Null);
        assert_eq!(v["runs"][2]["verdict"], "holds");
        assert_eq!(v["lang"], "zh");
    }
}
