//! `--html FILE`: one self-contained page (no network): the machine in a
//! header, then the matrix as a table (per claim a row with its verdict and
//! its text, then its scenarios' rows; CPython's columns and brood's set
//! apart by a rule), and beside it a panel that stays in view (sticky) with
//! the evidence of the cell clicked (or focused and Enter). The runs travel in
//! a JSON block inside the page.
//!
//! The page is well-formed XML as well as HTML (every element closed, the
//! JSON block escaped, the script in a CDATA section), so the tests can check
//! its structure with a strict XML parser, and in headless Chromium where it
//! is installed.

use std::fmt::Write as _;

use serde::Serialize;

use super::Lab;
use super::hazard::{self, Outcome};
use super::matrix::{ColKey, Matrix, NOT_RUN, glyph, legend, outcome_of};
use super::text::tr;
use crate::lab::Actor;
use crate::lab::claims::{self, Lang};

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
    did: &'a str,
    hazard: &'a str,
    evidence: &'a str,
    duration_s: f64,
}

fn class_of(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Safe) => "safe",
        Some(Outcome::Hurt) => "hurt",
        Some(Outcome::Partly) => "partly",
        Some(Outcome::Unknown) => "unknown",
        None => "none",
    }
}

const STYLE: &str = r#"
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
header { padding: .8em 1.2em; background: #f6f6f6; border-bottom: 1px solid #ddd; }
header h1 { margin: 0 0 .2em; font-size: 1.4em; }
header p { margin: .2em 0; }
header dl { display: grid; grid-template-columns: max-content auto; gap: 0 1em; margin: .4em 0 0; }
header dt { font-weight: 600; }
header dd { margin: 0; }
#layout { display: grid; grid-template-columns: minmax(0, 1fr) minmax(16em, 24em); gap: 1em; padding: 0 1.2em 1.2em; align-items: start; }
.legend { font-size: 12.5px; color: #444; max-width: 70em; }
#matrix { border-collapse: collapse; font-size: 13px; }
#matrix th, #matrix td { padding: 2px 4px; }
#matrix thead th { position: sticky; top: 0; background: #fff; font-weight: 600; text-align: center; border-bottom: 1px solid #999; }
#matrix th.key { text-align: left; font-weight: 400; font-family: ui-monospace, monospace; white-space: nowrap; padding-left: 1.2em; }
tr.claim-row td, tr.claim-row th { border-top: 2px solid #bbb; padding-top: .5em; background: #fafafa; text-align: left; }
tr.claim-row th.claim-id { font-family: ui-monospace, monospace; vertical-align: top; }
.verdict { font-weight: 700; margin-right: .5em; white-space: nowrap; }
.claim-text { font-weight: 500; }
.reason { font-size: 12px; color: #555; font-weight: 400; }
td.cell { text-align: center; min-width: 1.9em; border: 2px solid #fff; border-radius: 3px; cursor: pointer; color: #fff; }
td.cell.safe { background: #2e7d32; } td.cell.hurt { background: #c62828; }
td.cell.partly { background: #f9a825; } td.cell.unknown { background: #8a8a8a; }
td.cell.none { background: #f0f0f0; color: #999; cursor: default; }
td.cell.words { font-size: 12px; white-space: normal; min-width: 6em; max-width: 11em; }
td.cell.selected, td.cell:focus { outline: 3px solid #000; outline-offset: -3px; }
.first-brood { border-left: 4px solid #333 !important; }
.first-sweep { border-left: 2px dashed #999 !important; }
#evidence { position: sticky; top: .5em; border: 1px solid #ccc; border-radius: 4px; padding: .6em .9em; background: #fff; max-height: calc(100vh - 1em); overflow: auto; margin-top: 1em; }
#evidence h2 { font-size: 1.05em; margin: 0 0 .4em; }
#evidence .v { font-weight: 600; }
#evidence div { margin-bottom: .35em; overflow-wrap: anywhere; }
main { overflow-x: auto; }
td.cell small { display: block; font-size: 10.5px; opacity: .85; }
@media (max-width: 1150px) {
  #layout { grid-template-columns: minmax(0, 1fr); }
  #evidence { position: sticky; bottom: 0; top: auto; max-height: 35vh; box-shadow: 0 -2px 8px rgba(0,0,0,.15); }
}
"#;

/// The page's script: fills the evidence panel from the clicked cell's run.
const SCRIPT: &str = r#"
(function () {
  var runs = JSON.parse(document.getElementById("runs").textContent);
  var panel = document.getElementById("evidence-body");
  var cells = document.querySelectorAll("td.cell[data-run]");
  function line(cls, text) {
    var d = document.createElement("div");
    d.className = cls;
    d.textContent = text;
    panel.appendChild(d);
  }
  function show(cell) {
    var r = runs[Number(cell.getAttribute("data-run"))];
    cells.forEach(function (c) { c.classList.remove("selected"); });
    cell.classList.add("selected");
    panel.textContent = "";
    line("v", r.scenario + " · " + r.actor);
    line("did", r.did + " (" + r.verdict + ", " + r.duration_s.toFixed(2) + " s)");
    line("variant", r.variant);
    line("hazard", r.hazard);
    line("evidence", r.evidence);
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
    let lang = lab.lang;
    let zh = lang == Lang::Zh;
    let mut runs: Vec<RunOut<'_>> = Vec::new();
    let ncols = m.columns.len();
    let first_brood = m
        .columns
        .iter()
        .position(|c| matches!(c.key, ColKey::Brood | ColKey::Policy));
    let first_sweep = m.columns.iter().position(|c| c.group == "sweep");
    let edge = |ci: usize| -> &'static str {
        if Some(ci) == first_brood {
            " first-brood"
        } else if Some(ci) == first_sweep {
            " first-sweep"
        } else {
            ""
        }
    };
    // Headings: the group over its columns, then each column.
    let mut h1 = format!(
        r#"<th rowspan="2">{}</th>"#,
        tr(lang, "claim / scenario", "论断 / 场景")
    );
    let mut h2 = String::new();
    let mut i = 0;
    while i < ncols {
        let g = &m.columns[i].group;
        let span = m.columns[i..].iter().take_while(|c| &c.group == g).count();
        let name = match m.columns[i].key {
            ColKey::Brood | ColKey::Policy => "brood".to_string(),
            _ if g == "sweep" => tr(lang, "CPython version sweep", "CPython 版本扫描").to_string(),
            _ => g.clone(),
        };
        let _ = write!(
            h1,
            r#"<th colspan="{span}" class="group{}">{}</th>"#,
            edge(i),
            esc(&name)
        );
        i += span;
    }
    for (ci, c) in m.columns.iter().enumerate() {
        let label = match c.key {
            ColKey::Brood => tr(lang, "default", "默认").to_string(),
            ColKey::Policy => tr(lang, "+ policy", "+ 策略").to_string(),
            _ => c.label.clone(),
        };
        let _ = write!(
            h2,
            r#"<th class="col{}" title="{}">{}</th>"#,
            edge(ci),
            esc(&c.title),
            esc(&label)
        );
    }
    let mut body = String::new();
    let mut r = 0;
    while r < m.rows.len() {
        let claim = m.rows[r].claim;
        let n = m.rows[r..].iter().take_while(|x| x.claim == claim).count();
        let text = claims::find(claim).map(|c| c.text(lang)).unwrap_or("");
        let v = m.verdicts.get(claim);
        let verdict = v
            .map(|v| format!("{} {}", v.kind.glyph(), v.kind.text(lang)))
            .unwrap_or_default();
        let line = m.verdict_line(claim);
        let reason = line
            .split_once(tr(lang, ": ", "："))
            .map(|x| x.1)
            .unwrap_or("");
        let _ = write!(
            body,
            r#"<tbody id="claim-{claim}"><tr class="claim-row" id="row-{claim}"><th class="claim-id">{claim}</th><td colspan="{ncols}"><span class="verdict">{}</span><span class="claim-text">{}</span><div class="reason">{} · {}</div></td></tr>"#,
            esc(&verdict),
            esc(text),
            esc(reason),
            esc(&m.hazard_line(claim))
        );
        for row in &m.rows[r..r + n] {
            let name = row.key.split_once('.').map(|x| x.1).unwrap_or(row.key);
            let h = hazard::of(row.key);
            let control = if h.control {
                format!(" ({})", tr(lang, "control", "对照"))
            } else {
                String::new()
            };
            let _ = write!(
                body,
                r#"<tr><th class="key" title="{}">{}{}</th>"#,
                esc(row.variant),
                esc(name),
                esc(&control)
            );
            for (ci, c) in row.cells.iter().enumerate() {
                let col = &m.columns[ci];
                let words = matches!(col.key, ColKey::Brood | ColKey::Policy);
                let Some(run) = c else {
                    let _ = write!(
                        body,
                        r#"<td class="cell none{}" title="{}">{NOT_RUN}</td>"#,
                        edge(ci),
                        esc(&col.title)
                    );
                    continue;
                };
                let did = hazard::did(run.scenario, &run.judgement, zh);
                let hz = tr(lang, h.what.0, h.what.1);
                runs.push(RunOut {
                    claim: run.claim,
                    scenario: run.scenario,
                    variant: run.variant,
                    actor: run.actor.label(),
                    verdict: run.judgement.verdict.text(),
                    did,
                    hazard: hz,
                    evidence: &run.judgement.evidence,
                    duration_s: run.duration_s,
                });
                let policy = match &run.actor {
                    Actor::Brood { policy: Some(p) } => format!(" ({p})"),
                    _ => String::new(),
                };
                let shown = match (&run.actor, words) {
                    (Actor::Brood { policy: Some(p) }, _) => {
                        // A break may fall after `::`, never inside a word.
                        let p = esc(p).replace("::", "::<wbr/>");
                        format!("{}<small>{p}</small>", esc(did))
                    }
                    (_, true) => esc(did),
                    _ => glyph(run.judgement.verdict).to_string(),
                };
                let _ = write!(
                    body,
                    r#"<td class="cell {}{}{}" data-run="{}" tabindex="0" title="{} · {}{}: {}">{}</td>"#,
                    class_of(Some(outcome_of(run))),
                    if words { " words" } else { "" },
                    edge(ci),
                    runs.len() - 1,
                    esc(&col.title),
                    esc(did),
                    esc(&policy),
                    esc(&run.judgement.evidence),
                    shown
                );
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody>");
        r += n;
    }

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
    // Safe inside <script> and in XML: no raw <, > or & in the JSON text.
    let data = serde_json::to_string(&runs)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let mc = &lab.machine;
    format!(
        r#"<!DOCTYPE html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>brood lab — {kernel}</title>
<style>{STYLE}</style>
</head>
<body>
<header id="machine">
<h1>brood lab</h1>
<p>{intro}</p>
<dl>
<dt>kernel</dt><dd>Linux {kernel}</dd>
<dt>CPUs</dt><dd>{cpus} ({model}), load at start {load}</dd>
<dt>brood</dt><dd>{version}; {nruns} runs in {dur:.1} s</dd>
<dt>interpreters</dt><dd><details><summary>{ninterps} CPython</summary><ul>{interps}</ul></details></dd>
</dl>
</header>
<div id="layout">
<main>
<p class="legend">{legend}</p>
<table id="matrix"><thead><tr>{h1}</tr><tr>{h2}</tr></thead>{body}</table>
</main>
<aside id="evidence"><h2>{evidence_head}</h2><div id="evidence-body">{click}</div></aside>
</div>
<script type="application/json" id="runs">{data}</script>
<script>//<![CDATA[
{SCRIPT}
//]]></script>
</body>
</html>
"#,
        html_lang = if zh { "zh" } else { "en" },
        intro = esc(tr(
            lang,
            "The field report's claims about Python's child processes, measured on this machine for CPython and for brood.",
            "那篇实践报告关于 Python 子进程的论断，在本机上对 CPython 和 brood 实测的结果。"
        )),
        kernel = esc(&mc.kernel),
        cpus = mc.cpus,
        model = esc(&mc.cpu_model),
        load = esc(&mc.load),
        version = env!("CARGO_PKG_VERSION"),
        nruns = lab.results.len(),
        dur = lab.duration_s,
        ninterps = lab.interpreters.len(),
        legend = esc(legend(lang)),
        evidence_head = esc(tr(lang, "Evidence", "证据")),
        click = esc(tr(lang, "Click a cell.", "点击一个单元格。")),
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
