//! Finding the CPython interpreters the lab runs against.
//!
//! `python3` (from `PATH`) is always tried. Other versions come from `PATH`
//! (`python2`, `python2.7`, `python3.N`) and from pyenv (`~/.pyenv/versions/*/bin/python`).
//! `--python PATH…` replaces the search. Each candidate is probed by running it:
//! its version, its real executable (to drop duplicates: `python3` is often one
//! of the pyenv versions) and the multiprocessing start methods it offers
//! (Python 2.7 has no start methods: it always forks).
//!
//! This runs before the lab's reaper thread starts, so it may wait for its own
//! children with `std::process::Child::wait`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How much of the matrix an interpreter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every scenario, for each start method.
    Full,
    /// The scenarios marked as a version sweep (where versions are known to
    /// differ), to keep the default run short; `--all-pythons` makes it `Full`.
    Sweep,
}

/// A usable interpreter.
#[derive(Debug, Clone, Serialize)]
pub struct Interpreter {
    /// What the lab runs (the real executable, not a pyenv shim).
    pub path: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
    /// `(major, minor)`.
    #[serde(skip)]
    pub major_minor: (u32, u32),
    /// multiprocessing start methods, as `get_all_start_methods()` lists them,
    /// the default first; empty on Python 2.7, which has no start methods (it
    /// always forks).
    pub start_methods: Vec<String>,
    /// Full matrix or version sweep.
    pub scope: Scope,
}

impl Interpreter {
    /// Whether `multiprocessing` lets the script choose a start method.
    pub fn has_contexts(&self) -> bool {
        self.major_minor >= (3, 4)
    }
}

/// A candidate that could not be used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unusable {
    /// The path or name tried.
    pub path: String,
    /// Why it was skipped.
    pub reason: String,
}

/// The probe: Python 2.7 syntax on purpose.
const PROBE: &str = r#"
import os, sys
try:
    import multiprocessing as m
    ms = m.get_all_start_methods()
except Exception:
    ms = []  # Python 2.7: no start methods, multiprocessing always forks
sys.stdout.write("%d.%d.%d\n%s\n%s\n" % (sys.version_info[0], sys.version_info[1], sys.version_info[2], ",".join(ms), os.path.realpath(sys.executable)))
"#;

/// Finds the interpreters: `explicit` paths when given, else `python3` plus
/// the others found. `all` gives every interpreter the full matrix.
pub fn discover(explicit: &[PathBuf], all: bool) -> (Vec<Interpreter>, Vec<Unusable>) {
    let mut found: Vec<Interpreter> = Vec::new();
    let mut bad = Vec::new();
    let candidates: Vec<(PathBuf, Scope)> = if explicit.is_empty() {
        let rest = if all { Scope::Full } else { Scope::Sweep };
        let mut c = vec![(PathBuf::from("python3"), Scope::Full)];
        c.extend(path_candidates().into_iter().map(|p| (p, rest)));
        c.extend(pyenv_candidates().into_iter().map(|p| (p, rest)));
        c
    } else {
        explicit.iter().map(|p| (p.clone(), Scope::Full)).collect()
    };
    for (cand, scope) in candidates {
        match probe(&cand) {
            Ok((version, methods, real)) => {
                if found.iter().any(|i| i.path == real) {
                    continue;
                }
                let mm = parse_mm(&version);
                if mm < (2, 7) || (mm.0 == 3 && mm.1 < 6) {
                    bad.push(Unusable {
                        path: cand.display().to_string(),
                        reason: format!(
                            "Python {version} is older than the lab supports (2.7, 3.6+)"
                        ),
                    });
                    continue;
                }
                found.push(Interpreter {
                    path: real,
                    version,
                    major_minor: mm,
                    start_methods: methods,
                    scope,
                });
            }
            Err(reason) => bad.push(Unusable {
                path: cand.display().to_string(),
                reason,
            }),
        }
    }
    // python3 (full) first, then the others by version.
    found.sort_by_key(|i| (i.scope != Scope::Full, i.major_minor, i.version.clone()));
    (found, bad)
}

fn parse_mm(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Version-named interpreters on PATH. pyenv's shim directory is skipped: its
/// shims answer for versions that are not enabled, and the versions themselves
/// are found directly.
fn path_candidates() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    let mut names = vec!["python2".to_string(), "python2.7".to_string()];
    names.extend((6..=14).map(|m| format!("python3.{m}")));
    let mut out = Vec::new();
    for dir in std::env::split_paths(&path) {
        if dir.components().any(|c| c.as_os_str() == "shims") {
            continue;
        }
        for name in &names {
            let p = dir.join(name);
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

fn pyenv_candidates() -> Vec<PathBuf> {
    let root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv")));
    let Some(root) = root else { return Vec::new() };
    let Ok(dir) = std::fs::read_dir(root.join("versions")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join("python"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Runs the probe with a deadline; returns (version, start methods, real path).
fn probe(python: &Path) -> Result<(String, Vec<String>, PathBuf), String> {
    let mut child = Command::new(python)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("did not answer within 10 s".into());
            }
            Err(e) => return Err(format!("wait failed: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot read its output: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{}: {}",
            out.status,
            err.trim().lines().last().unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (Some(version), Some(methods), Some(real)) = (lines.next(), lines.next(), lines.next())
    else {
        return Err(format!("unexpected probe output {text:?}"));
    };
    let methods = methods
        .split(',')
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect();
    Ok((version.to_string(), methods, PathBuf::from(real)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parsing() {
        assert_eq!(parse_mm("3.11.7"), (3, 11));
        assert_eq!(parse_mm("2.7.18"), (2, 7));
        assert_eq!(parse_mm("junk"), (0, 0));
    }

    #[test]
    fn missing_interpreter_is_reported() {
        let (ok, bad) = discover(&[PathBuf::from("/nonexistent/python9")], false);
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 1);
    }
}
