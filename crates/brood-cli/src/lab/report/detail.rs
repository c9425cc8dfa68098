//! The evidence behind each verdict: `--detail` (per claim its text and
//! verdict, per scenario its key, as in the matrix's rows, then one line per
//! run with what it showed and its evidence, filling the terminal's width) and
//! the Markdown report's sections.

use std::fmt::Write as _;

use super::hazard;
use super::matrix::{Matrix, glyph, outcome_of, paint};
use super::text::{pad, tr, width, wrap};
use super::{Lab, footer, groups, md_escape};
use crate::lab::claims::Lang;
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

/// What the two brood columns are.
pub const POLICY_NOTE: &str = "verdicts are this run's observations; brood's policy column shows the policy that changes the row.";

/// Who ran, short: `3.11.7 fork`, `2.7.18`, `brood`, `brood + policy`.
fn who(r: &RunResult, lang: Lang) -> String {
    match &r.actor {
        Actor::Python {
            version, method, ..
        } => match method {
            Some(m) => format!("{version} {m}"),
            None => version.clone(),
        },
        Actor::Brood { policy: None } => "brood".into(),
        Actor::Brood { policy: Some(_) } => tr(lang, "brood + policy", "brood + 策略").into(),
    }
}

/// A run's verdict in words, in `lang`.
fn verdict_text(v: Verdict, lang: Lang) -> &'static str {
    match v {
        Verdict::Holds => tr(lang, "holds", "成立"),
        Verdict::DoesNotHold => tr(lang, "does not hold", "不成立"),
        Verdict::Partly => tr(lang, "partly", "部分成立"),
        Verdict::Inconclusive => tr(lang, "inconclusive", "无法判断"),
    }
}

/// What the run showed: the claim's verdict for CPython, what brood did for
/// brood; coloured by the hazard.
fn showed(r: &RunResult, lang: Lang, color: bool) -> (String, usize) {
    let text = match &r.actor {
        Actor::Python { .. } => format!(
            "{} {}",
            glyph(r.judgement.verdict),
            verdict_text(r.judgement.verdict, lang)
        ),
        Actor::Brood { .. } => hazard::did(r.scenario, &r.judgement, lang == Lang::Zh).to_string(),
    };
    let w = width(&text);
    (paint(&text, Some(outcome_of(r)), color), w)
}

/// The evidence table at the terminal's width.
pub fn table(lab: &Lab, color: bool) -> String {
    table_at(lab, color, super::text::terminal_width())
}

/// The evidence table at `w` columns.
pub fn table_at(lab: &Lab, color: bool, w: usize) -> String {
    let m = Matrix::new(lab);
    let lang = lab.lang;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}\n",
        tr(
            lang,
            "brood lab — the evidence of every run",
            "brood lab —— 每次运行的证据"
        )
    );
    let all: Vec<&RunResult> = lab.results.iter().collect();
    let who_w = all.iter().map(|r| width(&who(r, lang))).max().unwrap_or(5) + 2;
    let showed_w = all
        .iter()
        .map(|r| showed(r, lang, false).1)
        .max()
        .unwrap_or(5)
        + 2;
    let indent = 4 + who_w + showed_w;
    let room = w.saturating_sub(indent).max(30);
    for (claim, gs) in groups(&lab.results) {
        let text = crate::lab::claims::find(claim)
            .map(|c| c.text(lang))
            .unwrap_or("");
        for (i, l) in wrap(&format!("{claim:<4}{text}"), w)
            .into_iter()
            .enumerate()
        {
            let _ = writeln!(out, "{}{l}", if i > 0 { "    " } else { "" });
        }
        for l in wrap(&m.verdict_line(claim), w.saturating_sub(4)) {
            let _ = writeln!(out, "    {l}");
        }
        for g in gs {
            let h = hazard::of(g.key);
            let head = format!(
                "{} — {} · {}{}",
                g.key,
                g.variant,
                tr(lang, "hazard: ", "危害："),
                tr(lang, h.what.0, h.what.1)
            );
            for (i, l) in wrap(&head, w.saturating_sub(2)).into_iter().enumerate() {
                let _ = writeln!(out, "  {}{l}", if i > 0 { "  " } else { "" });
            }
            for r in g.python.iter().copied().chain(g.brood).chain(g.policy) {
                let (shown, sw) = showed(r, lang, color);
                let mut evidence = r.judgement.evidence.clone();
                if let Actor::Brood { policy: Some(p) } = &r.actor {
                    evidence = format!("[{p}] {evidence}");
                }
                let lines = wrap(&evidence, room);
                let _ = writeln!(
                    out,
                    "    {}{shown}{}{}",
                    pad(&who(r, lang), who_w),
                    " ".repeat(showed_w.saturating_sub(sw)),
                    lines[0]
                );
                for l in &lines[1..] {
                    let _ = writeln!(out, "{}{l}", " ".repeat(indent));
                }
            }
        }
        out.push('\n');
    }
    for l in footer(lab).lines() {
        for l in wrap(l, w) {
            let _ = writeln!(out, "{l}");
        }
    }
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
    fn the_table_keys_match_the_matrix_and_evidence_gets_the_width() {
        let mut lab = fixture::lab();
        lab.lang = Lang::En;
        let t = table_at(&lab, false, 160);
        assert!(t.contains("  F3.if — "), "{t}");
        assert!(t.contains("3.11.7 forkserver"), "{t}");
        assert!(t.contains("[raw fork] ran in 2 process(es)"), "{t}");
        assert!(t.contains("ran twice"), "{t}");
        assert!(t.contains("✗ does not hold"), "{t}");
        for line in t.lines() {
            assert!(width(line) <= 160, "{line}");
        }
    }
}
