//! The evidence behind each verdict: the terminal table of `--detail` (one
//! row per interpreter and start method, brood's two plays beside them) and
//! the Markdown report's sections.

use std::fmt::Write as _;

use comfy_table::{Cell, Color, ContentArrangement, Table};

use super::{Lab, footer, groups, md_escape};
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

/// What the two brood columns are.
pub const POLICY_NOTE: &str = "verdicts are this run's observations; brood's policy column shows the policy that changes the row.";

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
pub fn table(lab: &Lab, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "brood lab — the field report's claims, measured on this machine\n"
    );
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(ContentArrangement::Dynamic);
    if !color {
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
            crate::lab::claims::find(claim)
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
    let _ = writeln!(out, "{POLICY_NOTE}");
    out
}

/// The Markdown report: the matrix, then one section of evidence per claim.
pub fn markdown(lab: &Lab) -> String {
    let mut out = String::from("# brood lab\n\n");
    out.push_str(&super::matrix::markdown(lab));
    out.push_str("\n## Evidence\n\n");
    for (claim, gs) in groups(&lab.results) {
        let text = crate::lab::claims::find(claim)
            .map(|c| c.text(lab.lang))
            .unwrap_or("");
        let _ = writeln!(out, "### {claim} — {}\n", md_escape(text));
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
    let _ = writeln!(out, "\n{POLICY_NOTE}");
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn markdown_groups_by_claim_and_escapes_pipes() {
        let md = markdown(&fixture::lab());
        assert!(md.contains("### F3 — 子进程"), "{md}");
        assert!(md.contains("code after the block \\| twice"), "{md}");
        assert!(md.contains("| brood + raw fork | holds |"), "{md}");
        assert!(md.contains("python9 — cannot run"), "{md}");
    }

    #[test]
    fn table_puts_brood_beside_python() {
        let t = table(&fixture::lab(), false);
        assert!(t.contains("py3.11.7"), "{t}");
        assert!(t.contains("raw fork: holds"), "{t}");
        assert!(t.contains("does not hold"), "{t}");
    }
}
