//! The deeper scenarios on real processes (N6–N11, P5 under forkserver):
//! each test checks what the lab must see whatever CPython does (a trace was
//! taken, a finding has its evidence) and what brood guarantees.

mod common;

use common::*;
use serde_json::Value;

fn run<'a>(v: &'a Value, scenario: &str, actor: &str) -> &'a Value {
    runs(v)
        .into_iter()
        .find(|r| {
            r["scenario"] == scenario
                && match actor {
                    "brood" => is_brood(r) && r["actor"]["policy"].is_null(),
                    "policy" => is_brood(r) && r["actor"]["policy"].is_string(),
                    method => {
                        r["actor"]["method"] == method
                            || (method == "-" && r["actor"]["method"].is_null() && !is_brood(r))
                    }
                }
        })
        .unwrap_or_else(|| panic!("no {scenario} run for {actor} in {v}"))
}

fn evidence(r: &Value) -> &str {
    r["evidence"].as_str().unwrap_or("")
}

#[test]
fn sigint_with_brood_graceful_runs_the_exit_policies() {
    let (_, v) = lab_json(&["--only", "N6", "--python", "python3"]);
    // brood's default leaves SIGINT's default action: the parent dies at once
    // and no policy runs; with signals::graceful the daemon child is ended and
    // the other waited for.
    let d = run(&v, "N6.sigint-parent", "brood");
    assert_eq!(d["verdict"], "does_not_hold", "{d}");
    let p = run(&v, "N6.sigint-parent", "policy");
    assert_eq!(p["verdict"], "holds", "{p}");
    assert!(evidence(p).contains("parent killed by SIGINT"), "{p}");
}

#[test]
fn the_exit_handlers_signals_are_traced() {
    if !std::path::Path::new("/usr/bin/strace").is_file() {
        println!("skipped: /usr/bin/strace is not installed (test.sh installs it)");
        return;
    }
    let (_, v) = lab_json(&["--only", "N8", "--python", "python3"]);
    let fork = run(&v, "N8.exit-signals", "fork");
    assert_ne!(fork["verdict"], "inconclusive", "{fork}");
    assert!(evidence(fork).contains("os.waitpid reaped"), "{fork}");
    assert!(
        evidence(fork).contains("running child"),
        "the live child's SIGTERM is traced: {fork}"
    );
    // brood signals through pidfds only: never by pid, so never a reaped pid.
    for who in ["brood", "policy"] {
        let b = run(&v, "N8.exit-signals", who);
        assert_ne!(b["verdict"], "does_not_hold", "{b}");
        assert!(!evidence(b).contains("(kill)"), "{b}");
    }
}

#[test]
fn a_blocked_os_wait_under_forkserver_is_a_finding_with_its_reason() {
    let (_, v) = lab_json(&["--only", "P5.os-wait", "--python", "python3", "--no-brood"]);
    let fs = run(&v, "P5.os-wait", "forkserver");
    let ev = evidence(fs);
    if ev.starts_with("blocks:") {
        assert_eq!(fs["verdict"], "does_not_hold", "{fs}");
        assert!(ev.contains("fork server"), "names what it waits for: {fs}");
    } else {
        // A CPython whose os.wait() returns under forkserver: then the run is
        // judged as under the other methods.
        assert_ne!(fs["verdict"], "inconclusive", "{fs}");
    }
}

#[test]
fn brood_ends_every_zombie_and_names_its_fork_server() {
    let (_, v) = lab_json(&[
        "--only",
        "N9.popen,N9.process-is-alive,N11.helpers-killed",
        "--python",
        "python3",
    ]);
    for r in runs(&v)
        .into_iter()
        .filter(|r| is_brood(r) && r["claim"] == "N9")
    {
        // Not one zombie that outlasts a call: brood reaped each at once.
        assert_eq!(r["verdict"], "does_not_hold", "{r}");
        assert!(!evidence(r).contains("left the zombie"), "{r}");
    }
    let fork = run(&v, "N11.helpers-killed", "policy");
    assert_eq!(
        fork["verdict"], "holds",
        "StartMethod::Fork starts no helper: {fork}"
    );
    let server = run(&v, "N11.helpers-killed", "brood");
    assert!(
        evidence(server).contains("fork server"),
        "the fork server is found: {server}"
    );
}

#[test]
fn buffered_output_and_the_popen_warning_are_observed() {
    let (_, v) = lab_json(&["--only", "N7,N10", "--python", "python3", "--no-brood"]);
    for r in runs(&v) {
        assert_ne!(r["verdict"], "inconclusive", "{r}");
    }
    let fork = run(&v, "N7.buffered-fork", "-");
    assert!(evidence(fork).contains("time(s) on the pipe"), "{fork}");
    let popen = run(&v, "N10.popen-running-at-exit", "-");
    assert!(
        evidence(popen).contains("stderr at exit") || evidence(popen).contains("nothing on stderr"),
        "{popen}"
    );
}

#[test]
fn n9_under_forkserver_is_inconclusive_and_no_run_waits_out_its_budget() {
    let (_, v) = lab_json(&["--only", "N9.process", "--python", "python3", "--no-brood"]);
    for r in runs(&v) {
        let ev = evidence(r);
        if r["actor"]["method"] == "forkserver" {
            // The child is the fork server's, which reaps it: the program's
            // call can neither leave nor end a zombie.
            assert_eq!(r["verdict"], "inconclusive", "{r}");
            assert!(ev.contains("fork server"), "{r}");
        } else {
            assert_ne!(r["verdict"], "inconclusive", "{r}");
        }
        // The go-ahead for the call comes after the lab saw the zombie.
        assert!(!ev.contains("before the call"), "{r}");
        // The parent exits by itself once told to (it ends the other child it
        // started), never after the lab's 5 s exit budget ran out.
        assert!(r["duration_s"].as_f64().unwrap() < 5.0, "{r}");
    }
}
