//! `brood lab show ID`: one claim, in both languages, what this machine
//! showed, and every run's evidence in full.

use std::fmt::Write as _;

use super::matrix::{Matrix, glyph};
use super::{Lab, footer, groups};
use crate::lab::claims;

/// The claim's evidence as text (every claim the lab ran, usually one).
pub fn text(lab: &Lab) -> String {
    let m = Matrix::new(lab);
    let mut out = String::new();
    for (id, gs) in groups(&lab.results) {
        if let Some(c) = claims::find(id) {
            let _ = writeln!(out, "{id} ({})\n  {}\n  {}", c.family, c.en, c.zh);
        }
        let _ = writeln!(out, "{}\n{}\n", m.verdict_line(id), m.hazard_line(id));
        for g in gs {
            let _ = writeln!(out, "{} — {}", g.key, g.variant);
            for r in g.python.iter().copied().chain(g.brood).chain(g.policy) {
                let _ = writeln!(
                    out,
                    "  {} {:<13} {:<34} {:>5.2} s{}",
                    glyph(r.judgement.verdict),
                    r.judgement.verdict.text(),
                    r.actor.label(),
                    r.duration_s,
                    if r.timed_out { " (timed out)" } else { "" }
                );
                let _ = writeln!(out, "      {}", r.judgement.evidence);
            }
            out.push('\n');
        }
    }
    let _ = writeln!(out, "{}", footer(lab));
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn shows_both_languages_and_every_run() {
        let t = text(&fixture::lab());
        assert!(t.contains("P5 (multiprocessing.Process)"), "{t}");
        assert!(
            t.contains("OSError [Errno 3]") && t.contains("退出时抛出"),
            "{t}"
        );
        assert!(t.contains("py3.11.7 forkserver"), "{t}");
        assert!(t.contains("± 视情况而定：在 fork、spawn 成立"), "{t}");
    }
}
