//! `--html FILE`: one self-contained page (no network): the machine in a
//! header, the matrix drawn as an SVG grid, and each cell's evidence shown on
//! click (or Enter). The runs travel in a JSON block inside the page.
//!
//! The page is well-formed XML as well as HTML (every element closed, the
//! JSON block escaped, the script in a CDATA section), so the tests can check
//! its structure with a strict XML parser where no browser is installed.

use std::fmt::Write as _;

use serde::Serialize;

use super::Lab;
use super::matrix::{ColKey, Matrix, NOT_RUN, glyph, legend};
use crate::lab::claims;
use crate::lab::scenarios::Verdict;

const CELL: usize = 30;
const LABEL_W: usize = 250;
const HEAD_H: usize = 64;
const SUMMARY_W: usize = 560;

/// Escapes text for an XML/HTML text node or attribute.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Serialize)]
struct RunOut<'a> {
    claim: &'a str,
    scenario: &'a str,
    variant: &'a str,
    actor: String,
    verdict: &'a str,
    evidence: &'a str,
    duration_s: f64,
}

fn class_of(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Holds) => "holds",
        Some(Verdict::DoesNotHold) => "not",
        Some(Verdict::Partly) => "partly",
        Some(Verdict::Inconclusive) => "inconclusive",
        None => "none",
    }
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
header dl { display: grid; grid-template-columns: max-content auto; gap: 0 1em; }
header dt { font-weight: 600; }
svg text { font: 12px ui-monospace, monospace; }
svg .group { font-weight: 600; }
svg .col { font-size: 11px; }
.cell rect { stroke: #fff; stroke-width: 2; cursor: pointer; }
.cell.holds rect { fill: #2e7d32; } .cell.not rect { fill: #c62828; }
.cell.partly rect { fill: #f9a825; } .cell.inconclusive rect { fill: #9e9e9e; }
.cell.none rect { fill: #eee; cursor: default; }
.cell text { fill: #fff; pointer-events: none; text-anchor: middle; }
.cell.none text { fill: #999; }
.cell.selected rect, .cell:focus rect { stroke: #000; outline: none; }
.summary { fill: #444; }
#evidence { border: 1px solid #ccc; padding: .5em 1em; margin-top: 1em; min-height: 4em; }
#evidence .v { font-weight: 600; }
"#;

/// The page's script: fills the evidence panel from the clicked cell's run.
const SCRIPT: &str = r#"
(function () {
  var runs = JSON.parse(document.getElementById("runs").textContent);
  var panel = document.getElementById("evidence-body");
  var cells = document.querySelectorAll(".cell[data-run]");
  function show(cell) {
    var r = runs[Number(cell.getAttribute("data-run"))];
    cells.forEach(function (c) { c.classList.remove("selected"); });
    cell.classList.add("selected");
    panel.textContent = "";
    var h = document.createElement("div");
    h.className = "v";
    h.textContent = r.scenario + " · " + r.actor + " · " + r.verdict + " (" + r.duration_s.toFixed(2) + " s)";
    var v = document.createElement("div");
    v.textContent = r.variant;
    var e = document.createElement("div");
    e.textContent = r.evidence;
    panel.appendChild(h); panel.appendChild(v); panel.appendChild(e);
  }
  cells.forEach(function (c) {
    c.addEventListener("click", function () { show(c); });
    c.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { show(c); } });
  });
  if (cells.length) { show(cells[0]); }
  document.body.setAttribute("data-ready", String(cells.length));
})();
"#;

/// The whole page.
pub fn page(lab: &Lab) -> String {
    let m = Matrix::new(lab);
    let mut runs: Vec<RunOut<'_>> = Vec::new();
    let width = LABEL_W + m.columns.len() * CELL + 20 + SUMMARY_W;
    let height = HEAD_H + m.rows.len() * CELL + 10;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="matrix" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="verdict matrix">"#
    );
    // Column headings: the group once over its columns, then each label.
    let mut groups_seen = 0;
    for (i, c) in m.columns.iter().enumerate() {
        let x = LABEL_W + i * CELL;
        if i == 0 || m.columns[i - 1].group != c.group {
            // Alternate heights: a group's name may be wider than its columns.
            groups_seen += 1;
            let _ = write!(
                svg,
                r#"<text class="group" x="{x}" y="{}">{}</text>"#,
                if groups_seen % 2 == 1 { 16 } else { 32 },
                esc(&c.group)
            );
        }
        let _ = write!(
            svg,
            r#"<text class="col" x="{}" y="{}" text-anchor="middle"><title>{}</title>{}</text>"#,
            x + CELL / 2,
            HEAD_H - 10,
            esc(&c.title),
            esc(&c.label)
        );
    }
    let _ = write!(
        svg,
        r#"<text class="group" x="{}" y="{}">what this machine showed</text>"#,
        LABEL_W + m.columns.len() * CELL + 20,
        HEAD_H - 10
    );
    let mut last = "";
    for (ri, row) in m.rows.iter().enumerate() {
        let y = HEAD_H + ri * CELL;
        let _ = write!(
            svg,
            r#"<text x="4" y="{}"><title>{}</title>{}</text>"#,
            y + CELL / 2 + 5,
            esc(row.variant),
            esc(row.key)
        );
        for (ci, cell) in row.cells.iter().enumerate() {
            let x = LABEL_W + ci * CELL;
            let v = cell.map(|r| r.judgement.verdict);
            let g = v.map(glyph).unwrap_or(NOT_RUN);
            let (data, title) = match cell {
                Some(r) => {
                    runs.push(RunOut {
                        claim: r.claim,
                        scenario: r.scenario,
                        variant: r.variant,
                        actor: r.actor.label(),
                        verdict: r.judgement.verdict.text(),
                        evidence: &r.judgement.evidence,
                        duration_s: r.duration_s,
                    });
                    (
                        format!(r#" data-run="{}" tabindex="0""#, runs.len() - 1),
                        format!(
                            "{} · {}: {}",
                            r.actor.label(),
                            r.judgement.verdict.text(),
                            r.judgement.evidence
                        ),
                    )
                }
                None => (String::new(), format!("{}: not run", m.columns[ci].title)),
            };
            let policy = match (&m.columns[ci].key, cell) {
                (ColKey::Policy, Some(r)) => format!(" ({})", r.actor.label()),
                _ => String::new(),
            };
            let _ = write!(
                svg,
                r#"<g class="cell {}"{data}><title>{}{}</title><rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" rx="3"/><text x="{}" y="{}">{g}</text></g>"#,
                class_of(v),
                esc(&title),
                esc(&policy),
                x + CELL / 2,
                y + CELL / 2 + 5
            );
        }
        if row.claim != last {
            last = row.claim;
            let _ = write!(
                svg,
                r#"<text class="summary" x="{}" y="{}"><tspan class="group">{}</tspan> {}</text>"#,
                LABEL_W + m.columns.len() * CELL + 20,
                y + CELL / 2 + 5,
                esc(row.claim),
                esc(&m.verdict_line(row.claim))
            );
        }
    }
    svg.push_str("</svg>");

    let mut interps = String::new();
    for i in &lab.interpreters {
        let methods = if i.start_methods.is_empty() {
            "no start methods".to_string()
        } else {
            i.start_methods.join(", ")
        };
        let _ = write!(
            interps,
            "<li>CPython {} — {} ({methods})</li>",
            esc(&i.version),
            esc(&i.path.display().to_string())
        );
    }
    let mut claims_rows = String::new();
    for id in &m.claims {
        let summary = m.verdict_line(id);
        let text = claims::find(id).map(|c| c.text(lab.lang)).unwrap_or("");
        let _ = write!(
            claims_rows,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(id),
            esc(text),
            esc(&summary)
        );
    }
    // Safe inside <script> and in XML: no raw <, > or & in the JSON text.
    let data = serde_json::to_string(&runs)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mc = &lab.machine;
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>brood lab — {kernel}</title>
<style>{STYLE}</style>
</head>
<body>
<header id="machine">
<h1>brood lab</h1>
<p>The field report's claims about Python's child processes, measured on this machine for CPython and for brood.</p>
<dl>
<dt>kernel</dt><dd>Linux {kernel}</dd>
<dt>CPUs</dt><dd>{cpus} ({model})</dd>
<dt>load at start</dt><dd>{load}</dd>
<dt>brood</dt><dd>{version}</dd>
<dt>runs</dt><dd>{nruns} in {dur:.1} s</dd>
<dt>interpreters</dt><dd><ul>{interps}</ul></dd>
</dl>
</header>
<main>
<p>{legend}</p>
{svg}
<section id="evidence"><h2>Evidence</h2><div id="evidence-body">Click a cell.</div></section>
<h2>Claims</h2>
<table id="claims"><thead><tr><th>id</th><th>claim</th><th>what this machine showed</th></tr></thead><tbody>{claims_rows}</tbody></table>
</main>
<script type="application/json" id="runs">{data}</script>
<script>//<![CDATA[
{SCRIPT}
//]]></script>
</body>
</html>
"#,
        kernel = esc(&mc.kernel),
        cpus = mc.cpus,
        model = esc(&mc.cpu_model),
        load = esc(&mc.load),
        version = env!("CARGO_PKG_VERSION"),
        nruns = lab.results.len(),
        dur = lab.duration_s,
        legend = esc(legend(lab.lang)),
    )
}

/// Writes the page to `path`.
pub fn write(lab: &Lab, path: &std::path::Path) -> Result<(), super::ReportError> {
    std::fs::write(path, page(lab)).map_err(|source| super::ReportError::Html {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::*;

    #[test]
    fn every_run_is_a_cell_and_text_is_escaped() {
        let p = page(&fixture::lab());
        assert_eq!(p.matches("data-run=").count(), fixture::lab().results.len());
        assert!(
            p.contains("ran in 2 process(es) &lt;&amp;&gt;"),
            "titles are escaped"
        );
        assert!(
            p.contains(r#"\u003c\u0026\u003e"#),
            "the JSON block is escaped"
        );
        assert!(
            !p.contains("http://") || p.matches("http://").count() == 1,
            "only the SVG namespace"
        );
    }
}
