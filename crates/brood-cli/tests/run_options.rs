//! `brood run`'s options and exit codes on real processes: usage errors, 126 /
//! 127 / 123, `--success-code`, `--chdir`, `--die-with-parent`, `-v` reporting
//! orphans, `--restart`, `--wait-all`, `--kill-orphans`.

mod run_support;

use run_support::*;
use std::process::Stdio;
use std::time::Duration;

fn code(args: &[&str]) -> (Option<i32>, String, String) {
    let out = brood().args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An unknown option is a usage error (2, with the usage line), not a program;
/// after `--`, or from the first non-option on, everything is the command.
#[test]
fn options_are_options() {
    let (c, _, err) = code(&["run", "--yolo", "--", "/bin/true"]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("Usage: brood run"), "{err}");
    for bad in [
        &["run", "--timeout", "soon", "--", "true"][..],
        &["run", "--on-parent-death", "NOPE", "--", "true"],
        &["run", "--rewrite", "TERM", "--", "true"],
        &["run"],
    ] {
        let (c, _, err) = code(bad);
        assert_eq!(c, Some(2), "{bad:?}: {err}");
    }
    assert_eq!(code(&["run", "--", "--yolo"]).0, Some(127));
    assert_eq!(code(&["run", "sh", "-c", "exit 3"]).0, Some(3));
    let (c, help, _) = code(&["run", "--help"]);
    assert_eq!(c, Some(0));
    assert!(
        help.contains("Exit status:") && help.contains("127"),
        "{help}"
    );
}

/// 127 not found, 126 found but not executable, 123 for brood run's own
/// failure — each with the program and the cause.
#[test]
fn exit_codes_of_failures() {
    let (c, _, err) = code(&["run", "--", "/nonexistent/prog"]);
    assert_eq!(c, Some(127));
    assert!(err.contains("/nonexistent/prog: not found"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-executable");
    std::fs::write(&file, "echo hi\n").unwrap();
    let (c, _, err) = code(&["run", "--", file.to_str().unwrap()]);
    assert_eq!(c, Some(126), "{err}");
    assert!(err.contains("cannot execute"), "{err}");
    assert_eq!(code(&["run", "--", "/tmp"]).0, Some(126));
    let (c, _, err) = code(&["run", "--chdir", "/nonexistent", "--", "true"]);
    assert_eq!(c, Some(123), "{err}");
}

/// `--success-code 3` makes exit 3 count as 0; other codes and signal deaths
/// pass through.
#[test]
fn success_codes_remap() {
    let run = |script: &str| {
        code(&[
            "run",
            "--success-code",
            "3",
            "--success-code",
            "4",
            "--",
            "sh",
            "-c",
            script,
        ])
        .0
    };
    assert_eq!(run("exit 3"), Some(0));
    assert_eq!(run("exit 4"), Some(0));
    assert_eq!(run("exit 5"), Some(5));
    assert_eq!(run("kill -TERM $$"), Some(143));
}

/// The caller's working directory by default; `--chdir DIR` otherwise.
#[test]
fn working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = brood()
        .args(["run", "--", "pwd"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(
        code(&["run", "--chdir", "/tmp", "--", "pwd"]).1.trim(),
        "/tmp"
    );
}

/// `--die-with-parent TERM`: when brood run's own parent dies, brood run gets
/// SIGTERM, forwards it, and ends the tree after the grace (the probe ignores
/// SIGTERM, so it is SIGKILLed): brood run exits 137.
#[test]
fn dies_with_its_parent() {
    brood::os::set_child_subreaper(true).unwrap();
    let brood_bin = brood_path();
    let mut parent = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            // (A background job's stdin would be /dev/null: keep ours.)
            "exec 3<&0; {brood_bin} run --die-with-parent TERM --grace 200ms -- {PROBE} <&3 & echo $!; wait"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut parent);
    let supervisor: u32 = lines
        .next(Duration::from_secs(10))
        .unwrap()
        .parse()
        .unwrap();
    let ready = lines.next(Duration::from_secs(10)).unwrap();
    let probe: u32 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    let _cleanup = Cleanup(vec![probe, supervisor, parent.id()]);
    // Kept open: `wait` would close it, and the probe ends at end of input.
    let _stdin = parent.stdin.take();
    kill(parent.id(), libc::SIGKILL);
    parent.wait().unwrap();
    let line = lines
        .next(Duration::from_secs(10))
        .expect("the probe got a signal");
    assert_eq!(line, format!("got SIGTERM:{supervisor}"));
    assert!(
        gone_within(probe, Duration::from_secs(5)),
        "the tree was not ended"
    );
    assert!(gone_within(supervisor, Duration::from_secs(5)));
}

/// `-v` reports each reaped orphan with its pid and how it ended. Each step
/// is observed, none waited out: the orphan-to-be exits only once `/proc`
/// shows it re-parented to brood run, the command's `$PPID` (had it ended
/// first, its own parent shell could reap it, and there would be no orphan);
/// the command substitution ends at
/// the end of file of its output, which the orphan holds until it exits;
/// then the command waits until the orphan is gone from `/proc`, reaped by
/// brood run. (A `sleep 0.1` that stood for all this failed on a busy
/// machine.)
#[test]
fn verbose_reports_reaped_orphans() {
    let orphan = "while read -r _ _ _ pp _ < /proc/$$/stat; [ \"$pp\" != \"$1\" ]; \
                  do sleep 0.01; done; exit 3";
    let script = format!(
        "pid=$( (sh -c '{orphan}' sh $PPID & echo $!) ); echo $pid; \
         while [ -e /proc/$pid ]; do sleep 0.01; done"
    );
    let (c, out, err) = code(&["run", "-v", "--", "sh", "-c", &script]);
    assert_eq!(c, Some(0), "{err}");
    let orphan = out.trim();
    assert!(
        err.contains(&format!("reaped orphan pid {orphan}: exited with 3")),
        "{err}"
    );
    assert!(err.contains("spawned sh"), "{err}");
}

/// `--restart on-failure` with `--max-restarts 3`: four runs, then it gives up
/// with the last status; a success ends the restarts.
#[test]
fn restarts_then_gives_up() {
    let (c, out, err) = code(&[
        "run",
        "--restart",
        "on-failure",
        "--max-restarts",
        "3",
        "--within",
        "60s",
        "--",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    assert_eq!(c, Some(1), "{err}");
    assert_eq!(out.lines().filter(|l| *l == "run").count(), 4, "{out}");
    assert!(err.contains("giving up"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    std::fs::write(&counter, "0").unwrap();
    let script = format!(
        "n=$(cat {c}); echo $((n+1)) > {c}; [ $n -ge 2 ] && exit 0; exit 1",
        c = counter.display()
    );
    let (c, _, err) = code(&["run", "--restart", "on-failure", "--", "sh", "-c", &script]);
    assert_eq!(c, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
}

/// `--wait-all`: the command's exit does not end a descendant still working;
/// brood run waits for it, then exits with the command's status. The
/// descendant works until it has seen the command gone (`kill -0` fails once
/// it is reaped), so it is there when the command exits, however slow the
/// machine (a `sleep 0.3` stood for that).
#[test]
fn wait_all_waits_for_descendants() {
    let (c, out, err) = code(&[
        "run",
        "--wait-all",
        "--",
        "sh",
        "-c",
        "(while kill -0 $$ 2>/dev/null; do sleep 0.01; done; echo late) & exit 4",
    ]);
    assert_eq!(c, Some(4), "{err}");
    assert_eq!(out.trim(), "late");
}

/// `--kill-orphans`: a process adopted while the command runs is ended.
#[test]
fn kill_orphans_ends_adopted_processes() {
    let (mut child, _lines, orphan) = start_reporting(&[
        "--kill-orphans",
        "--",
        "sh",
        "-c",
        "(sleep 60 & echo $!); read x; exit 0",
    ]);
    let _cleanup = Cleanup(vec![orphan, child.id()]);
    assert!(
        gone_within(orphan, Duration::from_secs(5)),
        "adopted orphan still running"
    );
    assert_eq!(
        state(child.id()).map(|s| s != 'Z'),
        Some(true),
        "brood run ended early"
    );
    drop(child.stdin.take());
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(0))
    );
}
