//! `brood lab` on real processes: verdicts that are stable on Linux, the JSON
//! schema, and the lab's cleanup when interrupted. Each test runs a small
//! subset (`--only`) to keep the suite fast.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

#[test]
fn f3_code_after_the_if_block_runs_twice_under_python3() {
    let (_, v) = lab_json(&["--only", "F3", "--python", "python3", "--no-brood"]);
    let runs = runs(&v);
    let run = |key: &str| -> &Value {
        runs.iter()
            .find(|r| r["scenario"] == key)
            .unwrap_or_else(|| panic!("no {key} run in {v}"))
    };
    let twice = run("F3.if");
    assert_eq!(twice["verdict"], "holds", "{twice}");
    assert!(
        twice["evidence"]
            .as_str()
            .unwrap()
            .contains("2 process(es)"),
        "{twice}"
    );
    let once = run("F3.else");
    assert_eq!(once["verdict"], "holds", "{once}");
    assert!(
        once["evidence"].as_str().unwrap().contains("1 process(es)"),
        "{once}"
    );
}

#[test]
fn lab_json_matches_its_schema_and_a_broken_shape_does_not() {
    let (_, v) = lab_json(&["--only", "F3,X1", "--python", "python3", "--lang", "zh"]);
    let schema = schema();
    let errs = validate(&schema, &schema, &v, "$");
    assert!(errs.is_empty(), "schema errors: {errs:#?}");
    assert_eq!(v["lang"], "zh");
    assert!(!runs(&v).is_empty());

    // The checker must reject shapes the schema forbids.
    let mut broken = v.clone();
    broken["runs"][0]["verdict"] = Value::from("maybe");
    assert!(!validate(&schema, &schema, &broken, "$").is_empty());
    let mut broken = v.clone();
    broken["runs"][0]
        .as_object_mut()
        .unwrap()
        .remove("evidence");
    assert!(!validate(&schema, &schema, &broken, "$").is_empty());
    let mut broken = v.clone();
    broken["runs"][0]["actor"] = serde_json::json!({"kind": "perl"});
    assert!(!validate(&schema, &schema, &broken, "$").is_empty());
    let mut broken = v.clone();
    broken["machine"]["cpus"] = Value::from("two");
    assert!(!validate(&schema, &schema, &broken, "$").is_empty());
    let mut broken = v;
    broken["schema"] = Value::from("brood-lab/1");
    assert!(!validate(&schema, &schema, &broken, "$").is_empty());
}

#[test]
fn brood_never_leaves_a_zombie() {
    let (_, v) = lab_json(&["--only", "P4,F5,S4", "--python", "python3"]);
    let brood: Vec<&Value> = runs(&v).into_iter().filter(|r| is_brood(r)).collect();
    assert!(
        !brood.is_empty(),
        "brood played none of P4/F5/S4: {:?}",
        runs(&v)
    );
    for r in brood {
        // Not a zombie until the parent ends: never seen in state Z, or only
        // until brood's reaper waited for it (a few milliseconds, longer on a
        // loaded machine), long before the parent ended.
        assert_ne!(r["verdict"], "holds", "{r}");
        assert_ne!(r["verdict"], "inconclusive", "{r}");
        let ev = r["evidence"].as_str().unwrap();
        assert!(
            ev.contains("state Z seen: no") || ev.contains("reaped"),
            "{r}"
        );
    }
}

#[test]
fn brood_child_with_kill_on_parent_death_does_not_outlive_a_sigkilled_parent() {
    let (_, v) = lab_json(&["--only", "kill-parent", "--python", "python3"]);
    let with_policy: Vec<&Value> = runs(&v)
        .into_iter()
        .filter(|r| is_brood(r) && r["actor"]["policy"] == "OnParentDeath::Signal(KILL)")
        .collect();
    assert!(
        !with_policy.is_empty(),
        "no brood run with the kill policy: {:?}",
        runs(&v)
    );
    for r in with_policy {
        let ev = r["evidence"].as_str().unwrap();
        assert!(ev.contains("parent killed by SIGKILL"), "{r}");
        assert_eq!(r["verdict"], "does_not_hold", "{r}");
    }
}

/// N5: where Python's `Pool.map` hangs on a worker SIGKILLed mid-task, brood's
/// returns at once, failing only the killed worker's item.
#[test]
fn brood_pool_map_survives_a_dead_worker() {
    let (_, v) = lab_json(&["--only", "N5", "--python", "python3"]);
    let brood: Vec<&Value> = runs(&v).into_iter().filter(|r| is_brood(r)).collect();
    assert_eq!(brood.len(), 1, "brood's N5 run missing: {:?}", runs(&v));
    let r = brood[0];
    assert_eq!(r["verdict"], "does_not_hold", "{r}");
    let ev = r["evidence"].as_str().unwrap();
    assert!(ev.contains("returned 0,WorkerDied(SIGKILL),2,3"), "{r}");
}

/// Names of what is left in `dir`.
fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_lab_leaves_no_files_in_tmpdir() {
    // A parent SIGKILLed under forkserver or spawn cannot remove
    // multiprocessing's `pymp-*` directory: the lab's own TMPDIR takes it.
    let tmp = tempfile::tempdir().unwrap();
    lab_ok(
        &[
            "--only",
            "P3.kill-parent,N11.helpers-killed",
            "--python",
            "python3",
            "--no-brood",
        ],
        &[("TMPDIR", tmp.path().as_os_str())],
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left in TMPDIR");
}

#[test]
fn interrupted_lab_leaves_no_process_behind() {
    // N1 and N5 keep their processes alive for seconds: a good moment to interrupt.
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = brood()
        .env("TMPDIR", tmp.path())
        .args([
            "lab",
            "--only",
            "N1,N5",
            "--python",
            "python3",
            "--no-brood",
            "--jobs",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brood lab");
    let lab_pid = lab.id();
    // Wait until the lab has a few processes running, remembering every one seen.
    let mut seen: Vec<(u32, u64)> = Vec::new();
    let enough = poll(Duration::from_secs(30), || {
        for p in descendants(lab_pid) {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        (seen.len() >= 4).then_some(())
    });
    // SAFETY: kill has no memory arguments; lab_pid is our own child, not yet waited for.
    unsafe { libc::kill(lab_pid as i32, libc::SIGINT) };
    let status = poll(Duration::from_secs(20), || lab.try_wait().ok().flatten());
    let tagged = with_env_prefix(&format!("BROOD_LAB_RUN={lab_pid}-"));
    let left: Vec<(u32, u64)> = seen
        .iter()
        .chain(&tagged)
        .copied()
        .filter(|(p, s)| exists(*p, *s))
        .collect();
    // Clean up before asserting, whatever happened.
    kill_all(&left);
    if status.is_none() {
        let _ = lab.kill();
    }
    let _ = lab.wait();
    let mut err = String::new();
    if let Some(mut e) = lab.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        enough.is_some(),
        "the lab never started 4 processes (saw {seen:?}); stderr: {err}"
    );
    let status = status.expect("the lab did not exit after SIGINT");
    assert_eq!(status.code(), Some(130), "stderr: {err}");
    assert!(
        left.is_empty(),
        "processes left behind: {left:?}; stderr: {err}"
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left in TMPDIR");
}

#[test]
fn lab_prints_a_table_and_exits_zero() {
    let text = lab_ok(
        &["--only", "F3.else", "--python", "python3", "--no-brood"],
        &[],
    );
    assert!(
        text.contains("\nF3  ") && text.contains("  else (control)") && text.contains("✓"),
        "{text}"
    );
}

#[test]
fn lab_markdown_in_chinese() {
    let out = brood()
        .args([
            "lab",
            "--markdown",
            "--lang",
            "zh",
            "--only",
            "F3.else",
            "--python",
            "python3",
            "--no-brood",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("### F3 — ") && text.contains("执行两次"),
        "{text}"
    );
}

#[test]
fn lab_without_any_usable_interpreter_fails_clearly() {
    let out = brood()
        .args(["lab", "--python", "/nonexistent/python", "--no-brood"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no usable Python interpreter") && err.contains("/nonexistent/python"),
        "{err}"
    );
}

#[test]
fn bad_timeout_is_rejected() {
    let out = brood().args(["lab", "--timeout", "-1"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn only_that_selects_nothing_is_a_usage_error() {
    let out = brood()
        .args(["lab", "--only", "Q9", "--no-brood", "--python", "python3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("selects no scenario"));
}
