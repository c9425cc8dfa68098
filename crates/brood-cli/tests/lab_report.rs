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
    let out = brood().arg("lab").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "brood lab {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn lab_text_at(columns: usize, args: &[&str]) -> String {
    let out = brood()
        .arg("lab")
        .args(args)
        .env("COLUMNS", columns.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
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
/// closed, the SVG grid inside the body, one clickable cell per run, the
/// runs' JSON block, and the machine in the header.
fn check_page(page: &str, runs: usize, kernel: &str) -> Value {
    let mut reader = quick_xml::Reader::from_str(page);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let (mut cells, mut data_runs) = (0usize, Vec::<usize>::new());
    let (mut svg_in_body, mut in_json, mut in_header) = (false, false, false);
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
                if name == "svg" && attr("id").as_deref() == Some("matrix") {
                    svg_in_body = stack.iter().any(|s| s == "body");
                }
                if name == "g" && attr("class").is_some_and(|c| c.starts_with("cell")) {
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
    assert!(svg_in_body, "no <svg id=matrix> in the body");
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
            "skipped the browser check: /usr/bin/chromium is not installed (apt-get install chromium)"
        );
        return;
    }
    // Under `brood run`, so that every process Chromium starts is ended with it.
    let out = brood()
        .args(["run", "--timeout", "60s", "--"])
        .arg(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page_path.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(&format!(
            "data-ready=\"{}\"",
            data.as_array().unwrap().len()
        )),
        "the page's script did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first cell's evidence is shown, as a click shows it.
    let first = data[0]["evidence"].as_str().unwrap();
    let shown = first
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(dom.contains(&shown), "evidence panel lacks {first:?}");
}
