//! The terminal matrix (the default report): per claim its text, its verdict
//! with the reason and the hazard, then a row per scenario; CPython's runs as
//! glyphs coloured by the hazard, the version sweep folded into one column,
//! brood's cells in words, the policy named; at the terminal's width.

use std::fmt::Write as _;

use super::Lab;
use super::footer;
use super::hazard;
use super::matrix::{ColKey, Matrix, NOT_RUN, glyph, legend, outcome_of, paint};
use super::text::{pad, tr, width, wrap};
use super::verdict::version_name;
use crate::lab::claims::{self, Lang};
use crate::lab::scenarios::Verdict;
use crate::lab::{Actor, RunResult};

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

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

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
