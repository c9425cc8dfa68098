//! Helpers for the brood command's tests: running the binary, reading `/proc`
//! with deadlines (never sleeping as synchronisation), cleaning up by pid, and a
//! small JSON Schema checker for the subset `lab-schema.json` uses.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use brood::os::procfs;
use serde_json::Value;

pub fn brood() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brood"))
}

/// Runs `brood lab --json ARGS` and parses its output. Also checks that the
/// lab left no process of its own behind (found by the tag every lab process
/// carries in its environment, and killed here if any).
pub fn lab_json(args: &[&str]) -> (Output, Value) {
    let child = brood()
        .arg("lab")
        .arg("--json")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run brood lab");
    let lab_pid = child.id();
    let out = child.wait_with_output().expect("wait for brood lab");
    let left = with_env_prefix(&format!("BROOD_LAB_RUN={lab_pid}-"));
    kill_all(&left);
    assert!(left.is_empty(), "brood lab left processes behind: {left:?}");
    assert!(
        out.status.success(),
        "brood lab failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("brood lab --json prints JSON");
    (out, v)
}

/// Runs `brood lab ARGS` with `env` added; its stdout, once it succeeded.
pub fn lab_ok(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut cmd = brood();
    cmd.arg("lab").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "brood lab {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The runs of a lab report.
pub fn runs(v: &Value) -> Vec<&Value> {
    v["runs"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

pub fn is_brood(run: &Value) -> bool {
    run["actor"]["kind"] == "brood"
}

/// Polls `f` until it returns `Some` or `budget` passes. The pause between
/// polls only paces the loop; the condition is what synchronises.
pub fn poll<T>(budget: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + budget;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (state, ppid, starttime) of `pid`.
pub fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let s = procfs::stat(pid).unwrap()?;
    Some((s.state.as_char(), s.ppid, s.start_time))
}

/// Every (pid, starttime) whose parent chain leads to `root`.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut parent: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
    for pid in procfs::pids().unwrap() {
        if let Some((_, ppid, start)) = stat(pid) {
            parent.insert(pid, (ppid, start));
        }
    }
    let mut out = Vec::new();
    for (&pid, &(_, start)) in &parent {
        let mut p = pid;
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&(pp, _)) if pp == root => {
                    out.push((pid, start));
                    break;
                }
                Some(&(pp, _)) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    out
}

/// Whether the process (pid, starttime) still exists (zombie or not).
pub fn exists(pid: u32, start: u64) -> bool {
    matches!(stat(pid), Some((_, _, s)) if s == start)
}

/// SIGKILLs each process that still exists: a test's own cleanup, by pid.
pub fn kill_all(procs: &[(u32, u64)]) {
    for &(pid, start) in procs {
        if exists(pid, start) {
            // SAFETY: kill has no memory arguments; the pid was checked against its start time.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Every process whose environment has an entry starting with `prefix`.
pub fn with_env_prefix(prefix: &str) -> Vec<(u32, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for pid in procfs::pids().unwrap() {
        // Gone, or not ours to read (EACCES): not one of the test's processes.
        let Ok(Some(env)) = procfs::environ(pid) else {
            continue;
        };
        if env
            .iter()
            .any(|entry| entry.as_bytes().starts_with(prefix.as_bytes()))
            && let Some((_, _, start)) = stat(pid)
        {
            out.push((pid, start));
        }
    }
    out
}

// ---- a JSON Schema checker for the keywords lab-schema.json uses ------------

pub fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("lab-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks `v` against `schema` (rooted at `root` for `$ref`); returns every error.
pub fn validate(root: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(s) = schema.as_object() else {
        return errs;
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let mut target = root;
        for part in r.trim_start_matches("#/").split('/') {
            target = &target[part];
        }
        assert!(!target.is_null(), "unresolved $ref {r}");
        errs.extend(validate(root, target, v, at));
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| type_ok(t, v)) {
            errs.push(format!("{at}: expected {types:?}, got {v}"));
            return errs;
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        errs.push(format!("{at}: expected {c}, got {v}"));
    }
    if let Some(Value::Array(e)) = s.get("enum")
        && !e.contains(v)
    {
        errs.push(format!("{at}: {v} not in {e:?}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errs.push(format!("{at}: {n} < {min}"));
    }
    if let Some(Value::Array(options)) = s.get("oneOf") {
        let ok = options
            .iter()
            .filter(|o| validate(root, o, v, at).is_empty())
            .count();
        if ok != 1 {
            errs.push(format!("{at}: matches {ok} of oneOf, not exactly 1"));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errs.push(format!("{at}: missing {r}"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => errs.extend(validate(root, ps, val, &format!("{at}.{k}"))),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{at}: unexpected property {k}"))
                }
                None => {}
            }
        }
    }
    if let Some(arr) = v.as_array() {
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && (arr.len() as u64) < min
        {
            errs.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(items) = s.get("items") {
            for (i, item) in arr.iter().enumerate() {
                errs.extend(validate(root, items, item, &format!("{at}[{i}]")));
            }
        }
    }
    errs
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}
