//! `brood run` as PID 1 of its own pid namespace (`unshare --fork --pid
//! --mount-proc`, as a container runtime starts its entrypoint): orphans are
//! reaped at once, SIGTERM from outside reaches the command, the namespace is
//! emptied (SIGTERM, then SIGKILL after the grace) when the command exits, and
//! the exit status is the command's. Skipped, with a message, where unshare
//! cannot make a pid namespace (not root, seccomp).

mod run_support;

use run_support::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn unshare(mount_proc: bool) -> Option<Command> {
    let mut probe = Command::new("unshare");
    probe.args(["--fork", "--pid"]);
    if mount_proc {
        probe.arg("--mount-proc");
    }
    let works = probe
        .arg("true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        println!("skipping: `unshare --fork --pid` does not work here (needs root and util-linux)");
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--fork", "--pid"]);
    if mount_proc {
        cmd.arg("--mount-proc");
    }
    cmd.arg(brood_path()).arg("run");
    Some(cmd)
}

/// The host pid of `unshare`'s child (brood run, PID 1 inside).
fn pid1_of(unshare: u32) -> u32 {
    let mut found = None;
    assert!(until(Duration::from_secs(10), || {
        found = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok());
        found.is_some()
    }));
    found.unwrap()
}

/// Twenty double-forked orphans: each is re-parented to PID 1 and reaped as it
/// ends, so none stays visible (a zombie keeps its /proc entry).
#[test]
fn orphans_are_reaped_at_once() {
    let Some(mut cmd) = unshare(true) else { return };
    let script = r#"
        pids=""
        for i in $(seq 20); do pids="$pids $( (sh -c 'exit 0' & echo $!) )"; done
        for p in $pids; do
            n=0
            while [ -e /proc/$p ]; do
                n=$((n+1))
                if [ $n -gt 2000 ]; then echo "zombie $p: $(cat /proc/$p/stat)"; exit 1; fi
                sleep 0.005
            done
        done
        echo "reaped $(echo $pids | wc -w)"
    "#;
    let out = cmd.args(["--", "sh", "-c", script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.trim(), "reaped 20");
}

/// SIGTERM sent from outside the namespace to its PID 1 reaches the command
/// (the kernel would drop it for an init that merely installed nothing).
#[test]
fn sigterm_from_outside_reaches_the_command() {
    let Some(mut cmd) = unshare(true) else { return };
    let mut child = cmd
        .args(["--", PROBE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _cleanup = Cleanup(vec![child.id()]);
    let lines = Lines::of(&mut child);
    assert_eq!(
        lines.next(Duration::from_secs(10)).as_deref(),
        Some("ready 2")
    );
    let pid1 = pid1_of(child.id());
    kill(pid1, libc::SIGTERM);
    let line = lines.next(Duration::from_secs(10)).expect("a signal");
    assert_eq!(line, "got SIGTERM:1");
    drop(child.stdin.take());
    assert_eq!(
        exit_within(&mut child, Duration::from_secs(10)),
        Some(Some(0))
    );
}

/// When the command exits, every process left in the namespace gets SIGTERM
/// (one that traps it says so), one that ignores it is SIGKILLed after the
/// grace, and brood run exits with the command's status — with `/proc` of the
/// namespace, and without it (then `kill(-1)`).
#[test]
fn the_namespace_is_emptied_when_the_command_exits() {
    for mount_proc in [true, false] {
        let Some(mut cmd) = unshare(mount_proc) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            r#"
            sh -c 'trap "echo got-term; exit 0" TERM; touch {r}.1; while :; do sleep 0.01; done' &
            sh -c 'trap "" TERM; touch {r}.2; while :; do sleep 0.01; done' &
            while [ ! -e {r}.1 ] || [ ! -e {r}.2 ]; do sleep 0.01; done
            exit 5
            "#,
            r = ready.display()
        );
        let out = cmd
            .args(["-v", "--grace", "300ms", "--", "sh", "-c", &script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(5), "mount_proc={mount_proc}: {err}");
        assert!(
            text.contains("got-term"),
            "mount_proc={mount_proc}: {text}\n{err}"
        );
        assert!(
            err.contains("escalation: SIGKILL"),
            "mount_proc={mount_proc}: {err}"
        );
    }
}

/// Exit statuses as PID 1: 128+N for a signal death, 124 on timeout.
#[test]
fn exit_statuses_as_pid1() {
    let Some(mut cmd) = unshare(true) else { return };
    let st = cmd
        .args(["--", "sh", "-c", "kill -KILL $$"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(137));
    let mut cmd = unshare(true).unwrap();
    let st = cmd
        .args([
            "--timeout",
            "300ms",
            "--grace",
            "100ms",
            "--",
            "sleep",
            "60",
        ])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(124));
}
