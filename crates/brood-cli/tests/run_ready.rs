//! `brood run --ready`: the command counts as started once its sign shows;
//! under systemd's `Type=notify` (a `NOTIFY_SOCKET` this test makes), brood
//! run sends READY=1 only then; a command that never gets ready is ended,
//! exit 122.

mod run_support;

use run_support::*;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

/// A socket standing for systemd's, with a generous read timeout.
fn fake_systemd(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    (sock, path)
}

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Ends brood run with SIGTERM and checks it exits.
fn stop(mut run: std::process::Child) {
    kill(run.id(), libc::SIGTERM);
    assert!(exit_within(&mut run, Duration::from_secs(30)).is_some());
}

#[test]
fn ready_1_is_passed_on_once_the_command_printed_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = fake_systemd(dir.path());
    let marker = dir.path().join("before-the-line");
    let socket_seen = dir.path().join("command-socket");
    let run = brood()
        .args(["run", "--ready", "line:listening", "--", "sh", "-c"])
        .arg(
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; \
             echo \"${NOTIFY_SOCKET-none}\" > \"$S\"; touch \"$M\"; echo listening; exec sleep 30",
        )
        .env("NOTIFY_SOCKET", &path)
        .env("M", &marker)
        .env("S", &socket_seen)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(recv(&sock), "READY=1");
    // Sent only after the command's work before its line.
    assert!(marker.exists());
    // The command did not get systemd's socket.
    assert_eq!(std::fs::read_to_string(&socket_seen).unwrap(), "none\n");
    stop(run);
}

#[test]
fn the_commands_own_ready_1_is_passed_on() {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| d.join("systemd-notify").is_file())
    });
    if !found {
        eprintln!("skipped: systemd-notify is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (sock, path) = fake_systemd(dir.path());
    let marker = dir.path().join("notified");
    let run = brood()
        .args(["run", "--ready", "notify", "--", "sh", "-c"])
        .arg("touch \"$M\"; systemd-notify --ready; exec sleep 30")
        .env("NOTIFY_SOCKET", &path)
        .env("M", &marker)
        .spawn()
        .unwrap();
    assert_eq!(recv(&sock), "READY=1");
    assert!(marker.exists());
    stop(run);
}

#[test]
fn a_command_that_never_gets_ready_is_ended_with_122() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let out = brood()
        .args([
            "run",
            "--ready",
            "file:/nonexistent/never",
            "--ready-timeout",
            "300ms",
        ])
        .args([
            "--",
            "sh",
            "-c",
            "echo $$ > \"$P\"; echo almost there; exec sleep 30",
        ])
        .env("P", &pid_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(122), "{err}");
    assert!(
        err.contains("did not become ready") && err.contains("almost there"),
        "{err}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(state(pid).is_none(), "the command {pid} was left");
}

/// Polls for a file the command writes (its pid), up to a minute.
fn pid_in(path: &std::path::Path) -> u32 {
    for _ in 0..60_000 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("{path:?} never written");
}

#[test]
fn sigterm_while_the_command_starts_ends_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut run = brood()
        .args([
            "run",
            "--ready",
            "file:/nonexistent/never",
            "--ready-timeout",
            "60s",
        ])
        .args(["--", "sh", "-c", "echo $$ > \"$P\"; exec sleep 30"])
        .env("P", &pid_file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = pid_in(&pid_file);
    let sent = std::time::Instant::now();
    kill(run.id(), libc::SIGTERM);
    // Not after the 60 s the readiness wait allows: the command got it.
    assert_eq!(
        exit_within(&mut run, Duration::from_secs(30)),
        Some(Some(143))
    );
    assert!(sent.elapsed() < Duration::from_secs(30));
    assert!(state(pid).is_none(), "the command {pid} was left");
}

#[test]
fn other_signals_while_the_command_starts_reach_it_once_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (pid_file, go, got) = (
        dir.path().join("pid"),
        dir.path().join("go"),
        dir.path().join("got"),
    );
    let ready = format!("file:{}.ready", go.display());
    let mut run = brood()
        .args(["run", "--ready", &ready, "--", "sh", "-c"])
        .arg(
            "trap 'echo usr1 > \"$GOT\"' USR1; echo $$ > \"$P\"; \
             while [ ! -e \"$GO\" ]; do sleep 0.01; done; touch \"$GO.ready\"; \
             while [ ! -e \"$GOT\" ]; do sleep 0.01; done; exec sleep 30",
        )
        .env("P", &pid_file)
        .env("GO", &go)
        .env("GOT", &got)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = pid_in(&pid_file);
    // Sent while it starts: kept, and forwarded once it is ready.
    kill(run.id(), libc::SIGUSR1);
    std::fs::write(&go, "").unwrap();
    pid_in_text(&got);
    kill(run.id(), libc::SIGTERM);
    assert!(exit_within(&mut run, Duration::from_secs(30)).is_some());
    assert!(state(pid).is_none(), "the command {pid} was left");
}

/// Waits for a file to have some text, up to a minute.
fn pid_in_text(path: &std::path::Path) {
    for _ in 0..60_000 {
        if std::fs::read_to_string(path).is_ok_and(|t| !t.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("{path:?} never written");
}
