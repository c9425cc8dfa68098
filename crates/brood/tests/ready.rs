//! `Command::spawn_ready`: each sign of readiness on real programs, the
//! failures (ended first, timeout, STOPPING=1, a sender outside the tree) with
//! nothing left running, and the time from the sign to the return.

mod support;

use brood::{Command, Error, NotReady, Ready, Stdio, Tree};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

brood::init_before_main!();

const LONG: Duration = Duration::from_secs(30);

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Ends a started program and checks it is gone.
fn finish(p: brood::Popen) {
    p.kill().unwrap();
    p.wait().unwrap();
    assert!(!exists(p.pid()));
}

/// The `NotReady` parts of an error.
fn not_ready(e: Error) -> (u32, NotReady, Option<String>, String) {
    match e {
        Error::NotReady {
            pid,
            why,
            status,
            tail,
            ..
        } => (pid, why, status, tail),
        other => panic!("expected NotReady, got {other}"),
    }
}

/// Whether `tool` is on PATH (the systemd tests skip, saying so, without it).
fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
    if !found {
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn monotonic_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

#[test]
fn a_line_on_stdout_makes_it_ready_and_no_output_is_lost() {
    let dir = scratch();
    let marker = dir.path().join("before-the-line");
    let mut p = Command::new("sh")
        .args([
            "-c",
            "echo one; echo $$ > \"$M\"; echo listening on 80; echo three; exec sleep 30",
        ])
        .env("M", &marker)
        .stdout(Stdio::piped())
        .spawn_ready(Ready::Stdout("listening".into()), LONG)
        .unwrap();
    // What the program did before its line is done; it runs on.
    assert!(marker.exists());
    assert!(alive(p.pid()));
    let mut out = p.stdout.take().unwrap();
    // Past its last line once it is `sleep` (killed earlier, the line after
    // the sign may not have been written yet).
    let deadline = std::time::Instant::now() + LONG;
    while !cmdline(p.pid()).starts_with("sleep") && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    p.kill().unwrap();
    p.wait().unwrap();
    let mut text = String::new();
    out.read_to_string(&mut text).unwrap();
    assert_eq!(text, "one\nlistening on 80\nthree\n");
}

#[test]
fn a_line_on_stderr_makes_it_ready() {
    let p = Command::new("sh")
        .args(["-c", "echo started >&2; exec sleep 30"])
        .spawn_ready(Ready::Stderr("started".into()), LONG)
        .unwrap();
    assert!(alive(p.pid()));
    finish(p);
}

#[test]
fn a_program_that_ends_first_fails_with_its_status_and_last_output() {
    let err = Command::new("sh")
        .args(["-c", "echo config loaded; echo port in use >&2; exit 3"])
        .spawn_ready(Ready::Stdout("listening".into()), LONG)
        .unwrap_err();
    let (pid, why, _, tail) = not_ready(err);
    assert!(
        matches!(why, NotReady::Exited(s) if s.code() == Some(3)),
        "{why}"
    );
    assert!(
        tail.contains("config loaded\n") && tail.contains("port in use\n"),
        "{tail:?}"
    );
    assert!(!exists(pid));
}

#[test]
fn a_timeout_ends_the_whole_tree() {
    let dir = scratch();
    let err = Command::new("sh")
        .args(["-c", "sleep 30 & echo $!; exec sleep 30"])
        .tree(Tree::Group)
        .spawn_ready(
            Ready::File(dir.path().join("never")),
            Duration::from_millis(300),
        )
        .unwrap_err();
    let (pid, why, _, tail) = not_ready(err);
    assert_eq!(why, NotReady::Timeout(Duration::from_millis(300)));
    let grandchild: u32 = tail.trim().parse().unwrap();
    assert!(!exists(pid));
    assert!(
        wait_exit(grandchild, Duration::from_secs(10)),
        "grandchild {grandchild} left"
    );
}

#[test]
fn a_file_that_appears_makes_it_ready() {
    let dir = scratch();
    let file = dir.path().join("pid");
    let p = Command::new("sh")
        .args([
            "-c",
            "echo $$ > \"$F.tmp\"; mv \"$F.tmp\" \"$F\"; exec sleep 30",
        ])
        .env("F", &file)
        .spawn_ready(Ready::File(file.clone()), LONG)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        p.pid().to_string()
    );
    finish(p);
}

/// A Python program that listens on `what`, writing the monotonic time
/// to `$T` just before it starts listening.
fn listener(what: &str, stamp: &Path) -> Command {
    let code = format!(
        "import os, socket, time\n{what}\n\
         open(os.environ['T'], 'w').write(str(time.clock_gettime_ns(time.CLOCK_MONOTONIC)))\n\
         s.listen(8)\ntime.sleep(30)\n"
    );
    let mut c = Command::new("python3");
    c.args(["-c", &code]).env("T", stamp);
    c
}

/// Python that binds `s` to `127.0.0.1:port`.
fn tcp_bind(port: u16) -> String {
    format!(
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port}))"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_tcp_port_that_accepts_makes_it_ready() {
    let dir = scratch();
    let port = free_port();
    let bind = tcp_bind(port);
    let stamp = dir.path().join("t");
    let p = listener(&bind, &stamp)
        .spawn_ready(Ready::Tcp(port), LONG)
        .unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    finish(p);
}

#[test]
fn a_unix_socket_that_accepts_makes_it_ready() {
    let dir = scratch();
    let path = dir.path().join("sock");
    let bind = format!(
        "s = socket.socket(socket.AF_UNIX); s.bind({:?})",
        path.to_str().unwrap()
    );
    let p = listener(&bind, &dir.path().join("t"))
        .spawn_ready(Ready::Unix(path.clone()), LONG)
        .unwrap();
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    finish(p);
}

#[test]
fn systemd_notify_ready_makes_it_ready_and_the_socket_goes_away() {
    if !have("systemd-notify") {
        return;
    }
    let dir = scratch();
    let seen = dir.path().join("socket");
    let p = Command::new("sh")
        .args([
            "-c",
            "echo \"$NOTIFY_SOCKET\" > \"$S\"; systemd-notify --ready; exec sleep 30",
        ])
        .env("S", &seen)
        .spawn_ready(Ready::Notify, LONG)
        .unwrap();
    assert!(alive(p.pid()));
    let socket = PathBuf::from(std::fs::read_to_string(&seen).unwrap().trim());
    assert!(!socket.exists(), "{socket:?} left behind");
    assert!(!socket.parent().unwrap().exists());
    finish(p);
}

#[test]
fn systemd_status_is_kept_for_the_error_and_stopping_fails_the_start() {
    if !have("systemd-notify") {
        return;
    }
    let err = Command::new("sh")
        .args([
            "-c",
            "systemd-notify STATUS=migrating; systemd-notify STOPPING=1; exec sleep 30",
        ])
        .tree(Tree::Group)
        .spawn_ready(Ready::Notify, LONG)
        .unwrap_err();
    let (pid, why, status, _) = not_ready(err);
    assert_eq!(why, NotReady::Stopping);
    assert_eq!(status.as_deref(), Some("migrating"));
    assert!(!exists(pid));
}

#[test]
fn a_notification_from_outside_the_tree_is_ignored() {
    let dir = scratch();
    let seen = dir.path().join("socket");
    let seen2 = seen.clone();
    // Another process (this test) learns the socket and says READY=1.
    let foreign = std::thread::spawn(move || {
        while !std::fs::read_to_string(&seen2).is_ok_and(|s| s.ends_with('\n')) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let path = std::fs::read_to_string(&seen2).unwrap();
        let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sock.send_to(b"READY=1", path.trim()).unwrap();
    });
    let err = Command::new("sh")
        .args(["-c", "echo \"$NOTIFY_SOCKET\" > \"$S\"; exec sleep 30"])
        .env("S", &seen)
        .spawn_ready(Ready::Notify, Duration::from_secs(3))
        .unwrap_err();
    foreign.join().unwrap();
    let (pid, why, _, _) = not_ready(err);
    assert_eq!(why, NotReady::Timeout(Duration::from_secs(3)));
    assert!(!exists(pid));
}

#[test]
fn an_s6_newline_makes_it_ready_and_a_closed_descriptor_does_not() {
    let p = Command::new("sh")
        .args(["-c", "echo >&5; exec sleep 30"])
        .spawn_ready(Ready::NotifyFd(5), LONG)
        .unwrap();
    assert!(alive(p.pid()));
    finish(p);

    let err = Command::new("sh")
        .args(["-c", "exec 5>&-; exit 7"])
        .spawn_ready(Ready::NotifyFd(5), LONG)
        .unwrap_err();
    let (_, why, _, _) = not_ready(err);
    assert!(
        matches!(why, NotReady::Exited(s) if s.code() == Some(7)),
        "{why}"
    );
}

#[test]
fn signs_that_cannot_be_watched_are_refused_before_starting() {
    let e = Command::new("true")
        .stdout(Stdio::null())
        .spawn_ready(Ready::Stdout("x".into()), LONG)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("stdout is neither inherited nor piped"),
        "{e}"
    );
    let e = Command::new("true")
        .spawn_ready(Ready::NotifyFd(1), LONG)
        .unwrap_err();
    assert!(
        e.to_string().contains("descriptor 1 is a standard stream"),
        "{e}"
    );
}

fn median_and_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// From the sign to `spawn_ready`'s return: a `READY=1` datagram is seen at
/// once (target ≤ 1 ms), a port within one poll interval.
#[test]
fn measured_from_the_sign_to_the_return() {
    let dir = scratch();
    let stamp = dir.path().join("t");
    let since_stamp = || {
        let now = monotonic_ns();
        let t: u128 = std::fs::read_to_string(&stamp).unwrap().parse().unwrap();
        Duration::from_nanos((now - t) as u64)
    };
    let notify = "import os, socket, time\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect(os.environ['NOTIFY_SOCKET'])\n\
        open(os.environ['T'], 'w').write(str(time.clock_gettime_ns(time.CLOCK_MONOTONIC)))\n\
        s.send(b'READY=1')\ntime.sleep(30)\n";
    let mut by_notify = Vec::new();
    let mut by_port = Vec::new();
    for _ in 0..15 {
        let p = Command::new("python3")
            .args(["-c", notify])
            .env("T", &stamp)
            .spawn_ready(Ready::Notify, LONG)
            .unwrap();
        by_notify.push(since_stamp());
        finish(p);

        let port = free_port();
        let bind = tcp_bind(port);
        let p = listener(&bind, &stamp)
            .spawn_ready(Ready::Tcp(port), LONG)
            .unwrap();
        by_port.push(since_stamp());
        finish(p);
    }
    let (n_med, n_max) = median_and_max(by_notify);
    let (p_med, p_max) = median_and_max(by_port);
    println!(
        "sign -> spawn_ready return, 15 runs: READY=1 median {n_med:?} max {n_max:?}; port median {p_med:?} max {p_max:?} (poll interval {:?})",
        Ready::POLL_INTERVAL
    );
    // Loose bounds: the machine may be loaded; the figures are the point.
    assert!(n_med < Duration::from_millis(100), "{n_med:?}");
    assert!(
        p_med < Ready::POLL_INTERVAL + Duration::from_millis(100),
        "{p_med:?}"
    );
}
