//! N8: which signals the parent's exit handlers send, and to which pids.
//!
//! The parent has two daemon children: one it reaps itself with
//! `os.waitpid(pid)` (under forkserver the fork server reaps it; with brood,
//! brood's reaper usually does first), one still running. Before the parent returns, the lab
//! attaches `strace -p` to the parent's main thread (where CPython's atexit
//! handlers and brood's exit hook run) and records every `kill`, `tkill`,
//! `tgkill` and `pidfd_send_signal` call with its result. A signal aimed at
//! the reaped pid is the claim failing: that pid is free for the kernel to
//! give to any new process.

use std::path::Path;
use std::time::Duration;

use super::common::*;
use super::{BroodPlay, Interp, Judgement, Kind, Scenario, Verdict};
use crate::lab::observe::{Abort, Obs, Run};

/// The scenarios of this family.
pub fn list() -> Vec<Scenario> {
    vec![Scenario {
        claim: "N8",
        key: "N8.exit-signals",
        variant: "two daemon children, one reaped by os.waitpid(pid); the parent returns under strace",
        kind: Kind::Process,
        mode: &["exit_signals"],
        interp: Interp::PLAIN,
        sweep: true,
        drive: drive_traced_exit,
        judge: judge_exit_signals,
        brood: Some(BroodPlay {
            default: &["process", "exit_signals"],
            policy: Some((
                "StartMethod::Fork",
                &["process", "exit_signals", "method=fork"],
            )),
        }),
    }]
}

/// The tracer, if this machine has one.
fn strace() -> Option<&'static str> {
    ["/usr/bin/strace", "/bin/strace", "/usr/local/bin/strace"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// The pid tracing `pid`, from `/proc/<pid>/status` (0: none).
fn tracer_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn drive_traced_exit(run: &mut Run) -> Result<(), Abort> {
    run.expect("child", 2, START)?;
    run.expect("first_gone", 1, START)?;
    let parent = run.obs().parent;
    let Some(tracer) = strace() else {
        run.note("trace_error", "strace not found (install strace)");
        run.go();
        run.wait_gone(parent, EXIT)?;
        return Ok(());
    };
    let file = match tempfile::NamedTempFile::new() {
        Ok(f) => f,
        Err(e) => {
            run.note("trace_error", format!("no file for the trace: {e}"));
            run.go();
            run.wait_gone(parent, EXIT)?;
            return Ok(());
        }
    };
    let args: Vec<String> = [
        "-qq",
        "-e",
        "trace=kill,tkill,tgkill,pidfd_send_signal",
        "-e",
        "signal=none",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        file.path().display().to_string(),
        "-p".into(),
        parent.to_string(),
    ])
    .collect();
    let spid = match run.spawn_helper(tracer, &args) {
        Ok(p) => p,
        Err(e) => {
            run.note("trace_error", e);
            run.go();
            run.wait_gone(parent, EXIT)?;
            return Ok(());
        }
    };
    let attached = run.wait_until(START, |o| {
        tracer_of(parent) == spid || o.track(spid).gone_at.is_some()
    })?;
    if !attached || tracer_of(parent) != spid {
        run.note("trace_error", "strace could not attach to the parent");
    }
    run.go();
    run.wait_gone(parent, EXIT)?;
    // strace writes each call as it returns and leaves when its tracee is gone.
    run.wait_gone(spid, Duration::from_secs(2))?;
    match std::fs::read_to_string(file.path()) {
        Ok(text) => run.note("trace", text),
        Err(e) => run.note("trace_error", format!("cannot read the trace: {e}")),
    }
    Ok(())
}

/// One signalling call from the trace.
struct Call {
    syscall: String,
    target: String,
    signal: String,
    result: String,
}

/// Parses `kill(1234, SIGTERM) = -1 ESRCH (No such process)` and its kin.
fn parse_call(line: &str) -> Option<Call> {
    let open = line.find('(')?;
    let syscall = line[..open].trim().to_string();
    // strace pads the call to a column: `kill(1, SIGTERM)      = 0`.
    let eq = line.rfind(" = ")?;
    let close = line[..eq].rfind(')')?;
    let (args, result) = (&line[open + 1..close], line[eq + 3..].trim());
    let mut parts = args.split(',').map(str::trim);
    let first = parts.next()?.to_string();
    let (target, signal) = match syscall.as_str() {
        // tgkill(tgid, tid, sig)
        "tgkill" => (parts.next()?.to_string(), parts.next()?.to_string()),
        _ => (first, parts.next()?.to_string()),
    };
    let result = match result.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["0", ..] => "delivered".to_string(),
        ["-1", errno, ..] => errno.to_string(),
        other => other.join(" "),
    };
    Some(Call {
        syscall,
        target,
        signal,
        result,
    })
}

/// N8: no signal at exit aimed at the pid the parent had reaped.
fn judge_exit_signals(o: &Obs) -> Judgement {
    if let Some(e) = o.notes.get("trace_error") {
        return Judgement::new(Verdict::Inconclusive, format!("no trace: {e}"));
    }
    let Some(trace) = o.notes.get("trace") else {
        return missing("the run ended before the trace", o);
    };
    let role = |r: &str| {
        o.events("child")
            .find(|l| l.get("role") == Some(r))
            .and_then(|l| l.pid())
    };
    let (Some(reaped), Some(running)) = (role("reaped"), role("running")) else {
        return Judgement::new(Verdict::Inconclusive, "the two children were not announced");
    };
    let wait = match (o.first("waited"), o.first("wait_error")) {
        (Some(w), _) if w.pid() == Some(reaped) => format!("os.waitpid reaped {reaped}"),
        (_, Some(e)) => format!(
            "os.waitpid({reaped}) failed ({} {})",
            e.get("type").unwrap_or("?"),
            e.get("errno").unwrap_or("")
        ),
        _ => format!("os.waitpid({reaped}) did not report"),
    };
    let reaped_by_parent = o.first("waited").is_some_and(|w| w.pid() == Some(reaped));
    let calls: Vec<Call> = trace.lines().filter_map(parse_call).collect();
    let label = if reaped_by_parent {
        format!("reaped pid {reaped}")
    } else {
        format!("ended child {reaped} (gone from /proc)")
    };
    let mut hit_reaped = false;
    let described: Vec<String> = calls
        .iter()
        .map(|c| {
            let whom = if c.syscall == "pidfd_send_signal" {
                "a pidfd".to_string()
            } else if c.target == reaped.to_string() {
                hit_reaped = true;
                match c.result.as_str() {
                    "ESRCH" => format!("{label}: no such process"),
                    "delivered" => format!("{label}: delivered to whatever has it now"),
                    r => format!("{label}: {r}"),
                }
            } else if c.target == running.to_string() {
                format!("running child {running}: {}", c.result)
            } else {
                format!("pid {}: {}", c.target, c.result)
            };
            if c.syscall == "pidfd_send_signal" {
                format!("{}({whom}, {}) {}", c.syscall, c.signal, c.result)
            } else {
                format!("{}({}) → {whom}", c.signal, c.syscall)
            }
        })
        .collect();
    let sent = if described.is_empty() {
        "no signal".to_string()
    } else {
        described.join("; ")
    };
    let evidence = format!("{wait}; at exit: {sent}");
    let gone_first = o
        .first("first_gone")
        .is_some_and(|l| l.get("gone") == Some("1"));
    if !gone_first {
        // The situation the claim is about (a child reaped before the exit
        // handlers run) did not arise.
        return Judgement::new(
            Verdict::Inconclusive,
            evidence + " (the first child was still there at exit)",
        );
    }
    let v = if hit_reaped {
        Verdict::DoesNotHold
    } else {
        Verdict::Holds
    };
    Judgement::new(v, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_lines() {
        let c =
            parse_call("kill(1234, SIGTERM)                       = -1 ESRCH (No such process)")
                .unwrap();
        assert_eq!(
            (
                c.syscall.as_str(),
                c.target.as_str(),
                c.signal.as_str(),
                c.result.as_str()
            ),
            ("kill", "1234", "SIGTERM", "ESRCH")
        );
        let c = parse_call("pidfd_send_signal(5, SIGTERM, NULL, 0) = 0").unwrap();
        assert_eq!((c.target.as_str(), c.result.as_str()), ("5", "delivered"));
        let c = parse_call("tgkill(10, 11, SIGABRT) = 0").unwrap();
        assert_eq!((c.target.as_str(), c.signal.as_str()), ("11", "SIGABRT"));
        assert!(parse_call("+++ exited with 0 +++").is_none());
    }
}
