//! `brood run` on real processes: exit statuses, the timeout, leftovers, signal
//! forwarding, parent death, and orphan reaping. Each test watches the processes
//! by pid through `/proc` and `kill(pid, 0)`, and cleans up every one it made.

mod run_support;

use run_support::{Cleanup, brood, gone_within, kill, state};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn exists(pid: u32) -> bool {
    brood::os::pid_exists(pid)
}

fn spawn_piped(cmd: &mut Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn line(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    l.trim().to_string()
}

#[test]
fn exit_status_passes_through() {
    let st = brood()
        .args(["run", "--", "sh", "-c", "exit 3"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));
    let st = brood()
        .args(["run", "--", "sh", "-c", "kill -TERM $$"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(128 + 15), "a signal death is 128+N");
}

#[test]
fn missing_program_is_a_clear_error() {
    let out = brood()
        .args(["run", "--", "/nonexistent/prog"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/prog") && err.contains("not found"),
        "{err}"
    );
}

/// The timeout ends the whole tree, grandchildren included, and exits 124.
#[test]
fn timeout_ends_the_whole_tree() {
    let (mut child, mut out) = spawn_piped(brood().args([
        "run",
        "--timeout",
        "500ms",
        "--grace",
        "200ms",
        "--",
        "sh",
        "-c",
        "sleep 60 & echo $!; sleep 60",
    ]));
    let grandchild: u32 = line(&mut out).parse().unwrap();
    let _cleanup = Cleanup(vec![grandchild, child.id()]);
    let t = Instant::now();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(124));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        gone_within(grandchild, Duration::from_secs(1)),
        "grandchild survived the timeout"
    );
}

/// A process the command leaves running is reported, killed, and fails the run.
#[test]
fn leftovers_are_reported_and_killed() {
    let (mut child, mut out) = spawn_piped(brood().args([
        "run",
        "--check-leftovers",
        "--grace",
        "200ms",
        "--",
        "sh",
        "-c",
        "sleep 60 & echo $!",
    ]));
    let leftover: u32 = line(&mut out).parse().unwrap();
    let _cleanup = Cleanup(vec![leftover, child.id()]);
    let st = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(st.code(), Some(125), "{err}");
    assert!(err.contains(&format!("pid {leftover}")), "{err}");
    assert!(
        gone_within(leftover, Duration::from_secs(1)),
        "leftover not killed"
    );
}

/// SIGTERM to `brood run` reaches the command, whose own exit status is kept.
#[test]
fn sigterm_is_forwarded() {
    let (mut child, mut out) = spawn_piped(brood().args([
        "run",
        "--",
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
    ]));
    let _cleanup = Cleanup(vec![child.id()]);
    assert_eq!(line(&mut out), "ready");
    kill(child.id(), libc::SIGTERM);
    assert_eq!(line(&mut out), "got-term");
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

/// `brood run` SIGKILLed: the command gets its parent-death signal.
#[test]
fn command_dies_with_sigkilled_supervisor() {
    brood::os::set_child_subreaper(true).unwrap();
    let (mut child, mut out) =
        spawn_piped(brood().args(["run", "--", "sh", "-c", "echo $$; exec sleep 60"]));
    let command: u32 = line(&mut out).parse().unwrap();
    let _cleanup = Cleanup(vec![command, child.id()]);
    kill(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert!(
        gone_within(command, Duration::from_secs(1)),
        "the command outlived its SIGKILLed supervisor"
    );
}

/// An orphan the command leaves is re-parented to `brood run` and reaped when it
/// ends: never a zombie.
#[test]
fn orphans_are_reaped() {
    let (mut child, mut out) = spawn_piped(brood().args([
        "run",
        "--",
        "sh",
        "-c",
        // The subshell exits at once, orphaning the inner sh, which reports its
        // pid and then waits for a line on stdin.
        "(sh -c 'echo $$; read x; exit 0' &); echo started; while :; do sleep 0.05; done",
    ]));
    let _cleanup = Cleanup(vec![child.id()]);
    let first = line(&mut out);
    let second = line(&mut out);
    let orphan: u32 = if first == "started" { second } else { first }
        .parse()
        .unwrap();
    let supervisor = child.id();
    // Wait until it is re-parented to brood run.
    let deadline = Instant::now() + Duration::from_secs(5);
    while brood::os::procfs::stat(orphan)
        .unwrap()
        .is_some_and(|s| s.ppid != supervisor)
    {
        assert!(
            Instant::now() < deadline,
            "orphan never re-parented to brood run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let it end, then it must vanish from /proc (reaped), not stay a zombie.
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while exists(orphan) {
        assert!(
            Instant::now() < deadline,
            "orphan {orphan} not reaped, state {:?}",
            state(orphan)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    kill(supervisor, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(128 + 15));
}

/// CPU time (user + system) of `pid` so far, from `/proc/<pid>/stat`
/// (fields 14 and 15, in clock ticks; a zombie still shows its own).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: field 3 is index 0, so 14 and 15 are 11 and 12.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// `brood run ARGS` with stdin and stdout piped, and the reader of its
/// stderr gone before it writes a line: the child, its pid, its stdout.
fn with_closed_stderr(args: &[&str]) -> (Child, u32, BufReader<std::process::ChildStdout>) {
    let (mut child, out) = spawn_piped(Command::new(run_support::brood_path()).args(args));
    drop(child.stderr.take());
    let pid = child.id();
    (child, pid, out)
}

/// Waits up to `limit` for brood run (`pid`) to exit, without reaping it (its
/// zombie still shows its CPU time); checks it did — the spin never ended —
/// and stayed mostly idle: in poll(2) but for its looks at /proc, which read
/// every process's stat (a few ms each; seen taking a third of a core while
/// another session ran thousands of processes, hence the loose bound). How
/// long it took from `since`.
fn exits_idle(pid: u32, since: Instant, limit: Duration) -> Duration {
    let exited = brood::os::PidFd::open(pid)
        .unwrap()
        .wait_exited(Some(limit))
        .unwrap();
    let took = since.elapsed();
    let cpu = cpu_time(pid);
    eprintln!("exited: {exited} after {took:?}, CPU {cpu:?}");
    assert!(exited, "brood run still runs {took:?} later, CPU {cpu:?}");
    assert!(
        cpu < took * 3 / 4,
        "brood run used {cpu:?} of CPU in {took:?}"
    );
    took
}

/// With its stderr's reader gone, `brood run -v` neither spins nor dies: the
/// command exits leaving a process that ignores SIGTERM, and brood run ends it
/// with SIGKILL after the grace and exits, having used little CPU. (It used
/// to forward its own SIGPIPE, log that — raising another — for ever.)
#[test]
fn a_closed_stderr_neither_spins_nor_kills_brood_run() {
    let grace = Duration::from_secs(1);
    let (mut child, run, mut out) = with_closed_stderr(&[
        "run",
        "-v",
        "--grace",
        "1s",
        "--",
        "sh",
        "-c",
        "sh -c 'trap \"\" TERM; echo $$; exec sleep 30' & read go; exit 0",
    ]);
    let stubborn: u32 = line(&mut out).parse().unwrap();
    let _cleanup = Cleanup(vec![stubborn, run]);
    // It ignores SIGTERM now (it said so after the trap): let the command exit.
    writeln!(child.stdin.as_mut().unwrap()).unwrap();
    let took = exits_idle(run, Instant::now(), grace + Duration::from_secs(10));
    assert!(took >= grace, "the stubborn process got no grace: {took:?}");
    let status = child.wait().unwrap();
    // Not killed by SIGPIPE: the command's own status.
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(gone_within(stubborn, Duration::from_secs(5)));
}

/// The other phases with a closed stderr: the command's run, its restarts
/// (every restart is a notice on stderr) and the back-off between them. brood
/// run restarts twice, gives up with the command's status, and stays idle
/// meanwhile.
#[test]
fn a_closed_stderr_through_restarts() {
    let t0 = Instant::now();
    let (mut child, run, mut out) = with_closed_stderr(&[
        "run",
        "-v",
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--within",
        "60s",
        "--",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let _cleanup = Cleanup(vec![run]);
    exits_idle(run, t0, Duration::from_secs(20));
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let runs = (0..3).map(|_| line(&mut out)).collect::<Vec<_>>();
    assert_eq!(runs, ["run", "run", "run"]);
}
