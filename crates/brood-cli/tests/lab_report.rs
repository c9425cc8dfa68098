//! `brood lab`'s presentation on real runs (small `--only` subsets): the
//! matrix fills 80, 120 and 160 columns, in English and Chinese, `show` and `--list`, and the HTML page, checked
//! with a strict XML parser always and in headless Chromium when one is
//! installed.

mod common;

use std::path::Path;

use common::*;
use quick_xml::events::Event;
use serde_json::Value;

fn lab_text(args: &[&str]) -> String {
    lab_ok(args, &[])
}

fn lab_text_at(columns: usize, args: &[&str]) -> String {
    lab_ok(args, &[("COLUMNS", columns.to_string().as_ref())])
}

/// Columns a line takes on a terminal (CJK characters two).
fn columns(line: &str) -> usize {
    line.chars()
        .map(|c| {
            if ('\u{2e80}'..='\u{ffe6}').contains(&c) {
                2
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn the_matrix_fills_the_terminal_width_with_a_row_per_scenario() {
    for width in [80, 120, 160] {
        let text = lab_text_at(width, &["--only", "P3,F3", "--python", "python3"]);
        for line in text.lines() {
            assert!(
                columns(line) <= width,
                "{} > {width}: {line}",
                columns(line)
            );
        }
        for row in [
            "\nP3  SIGTERM/SIGKILL",
            "\n  term-parent ",
            "\n  kill-child ",
            "\nF3  code after",
            "\n  else (control) ",
        ] {
            assert!(text.contains(row), "no row {row:?}:\n{text}");
        }
        assert!(text.contains("fk sp fs"), "start-method columns:\n{text}");
        assert!(
            text.contains("Colour shows each scenario's hazard"),
            "legend:\n{text}"
        );
        assert!(
            text.contains("✓ holds: in every CPython run"),
            "verdict:\n{text}"
        );
        // brood's cells say what brood did, and the policy it ran.
        assert!(text.contains("lives on"), "{text}");
        assert!(text.contains("ended with parent"), "{text}");
        assert!(text.contains("OnParentDeath::Signal(KILL)"), "{text}");
    }
}

#[test]
fn the_default_view_follows_lang() {
    let text = lab_text_at(
        100,
        &["--only", "F3", "--python", "python3", "--lang", "zh"],
    );
    assert!(text.contains("执行两次"), "the claim in Chinese:\n{text}");
    for fixed in ["论断 / 场景", "✓ 成立", "危害", "对照", "颜色表示"] {
        assert!(text.contains(fixed), "{fixed:?} missing:\n{text}");
    }
    assert!(!text.contains("measured on this machine"), "{text}");
}

#[test]
fn show_prints_one_claim_in_both_languages_with_every_run() {
    let text = lab_text(&["show", "f3", "--python", "python3", "--no-brood"]);
    assert!(text.starts_with("F3 (os.fork)"), "{text}");
    assert!(text.contains("unless the parent's part is in an else:") && text.contains("执行两次"));
    assert!(
        text.contains("F3.if — ") && text.contains("F3.else — "),
        "{text}"
    );
    assert!(
        text.contains("process(es) (pids "),
        "evidence in full:\n{text}"
    );
    assert!(!text.contains("P3"), "only the claim asked for:\n{text}");

    let out = brood().args(["lab", "show", "Q7"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
}

#[test]
fn list_prints_every_claim_without_running_anything() {
    let text = lab_text(&["--list", "--lang", "zh"]);
    for id in ["P1", "F5", "S4", "X2", "N1", "N11"] {
        assert!(
            text.contains(&format!("  {id:<4} ")),
            "{id} missing:\n{text}"
        );
    }
    assert!(
        text.contains("僵尸") && text.contains("scenarios: N8.exit-signals"),
        "{text}"
    );
}

/// The page's structure, checked by a strict XML parser: every element
/// closed, the matrix table inside the body, one clickable cell per run, the
/// runs' JSON block, and the machine in the header.
fn check_page(page: &str, runs: usize, kernel: &str) -> Value {
    let mut reader = quick_xml::Reader::from_str(page);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let (mut cells, mut data_runs) = (0usize, Vec::<usize>::new());
    let (mut table_in_body, mut in_json, mut in_header) = (false, false, false);
    let (mut json, mut header) = (String::new(), String::new());
    loop {
        match reader.read_event() {
            Ok(ev @ (Event::Start(_) | Event::Empty(_))) => {
                let (e, opens) = match ev {
                    Event::Start(e) => (e, true),
                    Event::Empty(e) => (e, false),
                    _ => unreachable!(),
                };
                let name = e.name().as_ref().to_string();
                let attr = |k: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == k)
                        .map(|a| a.value.to_string())
                };
                if name == "table" && attr("id").as_deref() == Some("matrix") {
                    table_in_body = stack.iter().any(|s| s == "body");
                }
                if name == "td" && attr("class").is_some_and(|c| c.starts_with("cell")) {
                    cells += 1;
                    if let Some(i) = attr("data-run") {
                        data_runs.push(i.parse().expect("data-run is an index"));
                    }
                }
                in_json = name == "script" && attr("type").as_deref() == Some("application/json");
                if name == "header" && attr("id").as_deref() == Some("machine") {
                    in_header = true;
                }
                if opens {
                    stack.push(name);
                }
            }
            Ok(Event::End(e)) => {
                let name = e.name().as_ref().to_string();
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.as_str()),
                    "unbalanced </{name}>"
                );
                if name == "header" {
                    in_header = false;
                }
                in_json = false;
            }
            Ok(Event::Text(t)) => {
                let t = t.as_ref().to_string();
                if in_json {
                    json.push_str(&t);
                }
                if in_header {
                    header.push_str(&t);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}", reader.buffer_position()),
        }
    }
    assert!(table_in_body, "no <table id=matrix> in the body");
    assert!(cells >= runs, "{cells} cells for {runs} runs");
    data_runs.sort_unstable();
    assert_eq!(
        data_runs,
        (0..runs).collect::<Vec<_>>(),
        "one clickable cell per run"
    );
    let v: Value = serde_json::from_str(&json).expect("the runs' JSON block parses");
    assert_eq!(v.as_array().map(Vec::len), Some(runs));
    assert!(
        header.contains(kernel) && header.contains("CPython"),
        "header: {header}"
    );
    v
}

#[test]
fn the_html_page_draws_every_run_and_loads_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let page_path = dir.path().join("lab.html");
    let page_arg = page_path.display().to_string();
    let (_, report) = lab_json(&[
        "--only",
        "F3,P5.join",
        "--python",
        "python3",
        "--html",
        &page_arg,
    ]);
    let runs = runs(&report).len();
    let kernel = report["machine"]["kernel"].as_str().unwrap().to_string();
    let page = std::fs::read_to_string(&page_path).expect("--html wrote the page");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "no network"
    );
    let data = check_page(&page, runs, &kernel);

    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.is_file() {
        println!(
            "skipped the browser check: /usr/bin/chromium is not installed (test.sh installs it: apt-get install chromium)"
        );
        return;
    }
    for (w, h) in [(1280, 900), (1000, 700)] {
        browser_check(chromium, &page, dir.path(), &data, w, h);
    }
}

/// What the test adds to a copy of the page: once the page's own script has
/// run, it measures where each claim's text sits against its verdict and its
/// first scenario row, whether the page fits its window, and whether the
/// evidence of a cell far down the page is shown in view once the cell is
/// clicked; the answers go into attributes of `<body>` for `--dump-dom`.
const MEASURE: &str = r#"<script>//<![CDATA[
(function () {
  var out = [];
  document.querySelectorAll("tr.claim-row").forEach(function (row) {
    // The first line of the text: where it starts when it wraps.
    var text = row.querySelector(".claim-text").getClientRects()[0];
    var verdict = row.querySelector(".verdict").getBoundingClientRect();
    var next = row.nextElementSibling.getBoundingClientRect();
    out.push([row.id, Math.round(Math.abs(text.top - verdict.top)),
      Math.round(next.top - row.getBoundingClientRect().bottom),
      Math.round(text.left - verdict.right)].join(":"));
  });
  document.body.setAttribute("data-layout", out.join(" "));
  var doc = document.documentElement;
  // Neither the page nor the matrix's own column needs a horizontal scroll.
  var main = document.querySelector("main");
  document.body.setAttribute("data-fits", String(doc.scrollWidth <= window.innerWidth
    && main.scrollWidth <= main.clientWidth));
  var cells = document.querySelectorAll("td.cell[data-run]");
  var last = cells[cells.length - 1];
  last.scrollIntoView();
  last.click();
  var panel = document.getElementById("evidence").getBoundingClientRect();
  var cell = last.getBoundingClientRect();
  var inView = panel.top >= 0 && panel.top < window.innerHeight && panel.height > 0;
  document.body.setAttribute("data-evidence", [inView, last.getAttribute("data-run"),
    Math.round(Math.abs(panel.left - cell.right)), window.innerWidth].join(":"));
})();
//]]></script>"#;

fn browser_check(chromium: &Path, page: &str, dir: &Path, data: &Value, w: u32, h: u32) {
    let probe = dir.join(format!("probe-{w}.html"));
    std::fs::write(
        &probe,
        page.replace("</body>", &format!("{MEASURE}</body>")),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    // Under `brood run`, so that every process Chromium starts is ended with it.
    let out = brood()
        .args(["run", "--timeout", "90s", "--"])
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", probe.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let attr = |name: &str| -> String {
        let key = format!("{name}=\"");
        dom.find(&key)
            .map(|i| {
                let rest = &dom[i + key.len()..];
                rest[..rest.find('"').unwrap_or(0)].to_string()
            })
            .unwrap_or_default()
    };
    let runs = data.as_array().unwrap().len();
    assert_eq!(
        attr("data-ready"),
        runs.to_string(),
        "the page's script did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each claim's text sits on its verdict's line, right after it, and its
    // first scenario row follows directly below.
    let layout = attr("data-layout");
    assert!(!layout.is_empty(), "no claim rows: {dom}");
    for item in layout.split(' ') {
        let v: Vec<&str> = item.split(':').collect();
        let (dy, gap, dx): (i64, i64, i64) = (
            v[1].parse().unwrap(),
            v[2].parse().unwrap(),
            v[3].parse().unwrap(),
        );
        assert!(dy <= 4, "{w}px: {} text {dy}px off its verdict", v[0]);
        assert!(
            (0..=24).contains(&dx),
            "{w}px: {} text {dx}px from its verdict",
            v[0]
        );
        assert!(
            (-2..=2).contains(&gap),
            "{w}px: {} rows {gap}px below it",
            v[0]
        );
    }
    assert_eq!(
        attr("data-fits"),
        "true",
        "{w}px: the page is wider than its window"
    );
    // The last cell's evidence is shown, in view, beside the cell.
    let ev: Vec<String> = attr("data-evidence").split(':').map(String::from).collect();
    assert_eq!(
        ev[0], "true",
        "{w}px: the evidence panel is out of view: {ev:?}"
    );
    let last = &data[runs - 1]["evidence"];
    let shown = last
        .as_str()
        .unwrap()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(dom.contains(&shown), "{w}px: evidence panel lacks {last}");
}
