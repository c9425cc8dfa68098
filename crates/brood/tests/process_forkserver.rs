//! The fork server's own guarantees: it is not our child, a server that dies is
//! reported (no hang) and replaced, and it leaves when its client is gone.
//! One test function, because the server is shared by the whole process.

mod support;

use brood::{JoinError, Process, StartMethod};
use std::time::Duration;
use support::cmdline;

brood::init_before_main!();

fn park(_: ()) -> u8 {
    support::park()
}

fn one(_: ()) -> u8 {
    1
}

#[test]
fn server_death_is_reported_and_the_server_replaced() {
    support::become_subreaper();
    let mut clean = support::Cleanup::default();
    let start = |f: fn(()) -> u8| {
        Process::new(f, ())
            .start_method(StartMethod::ForkServer)
            .start()
            .unwrap()
    };
    assert_eq!(start(one).join().unwrap(), 1);
    let server = clean.add(brood::fork_server_pid().unwrap());
    // Not our child: a waitpid(-1) here can neither block on it nor reap its
    // children. (As a subreaper we adopted it when its intermediate exited, so
    // check that it was re-parented, not that it was forked by us.)
    assert_ne!(support::stat(server).unwrap().1, 0);

    let h = start(park);
    clean.add(h.pid());
    assert!(h.is_alive());
    // The server dies; the child (Survive) is orphaned and keeps running,
    // can still be signalled through its pidfd; its status is lost.
    support::kill_server_under(&h, server);

    // The next start launches a new server.
    assert_eq!(start(one).join().unwrap(), 1);
    let second = clean.add(brood::fork_server_pid().unwrap());
    assert_ne!(second, server);
}

/// A re-executed child that receives garbage instead of a request says so and
/// exits with code 3: no crash, no jump into garbage, no hang.
#[test]
fn a_corrupt_request_is_an_error_not_a_crash() {
    use rustix::net::{AddressFamily, SendFlags, SocketFlags, SocketType, socketpair};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("__BROOD_CHILD", format!("spawn:{}", std::process::id()))
        .stdin(std::process::Stdio::from(theirs))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rustix::net::send(&ours, &[0xff; 40], SendFlags::empty()).unwrap();
    drop(ours);
    let out = out.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the request does not decode"), "{err}");
}

/// `ps` names brood's processes after the program, as Python's are
/// recognisable: the server `myapp (brood fork server)`, each child
/// `myapp (brood <its name>)`, and `comm` (what `top` and `pgrep` show) follows.
#[test]
fn ps_names_the_server_and_its_children_after_the_program() {
    let mut clean = support::Cleanup::default();
    let program = std::env::args().next().unwrap();
    let h = Process::new(park, ())
        .name("resizer")
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    clean.add(h.pid());
    let server = clean.add(brood::fork_server_pid().unwrap());
    assert_eq!(cmdline(server), format!("{program} (brood fork server)"));
    // The child renames itself right after the fork: wait until it has (a
    // bounded poll on the kernel's view, not a sleep-and-hope).
    let want = format!("{program} (brood resizer)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cmdline(h.pid()) != want && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(cmdline(h.pid()), want);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", h.pid())).unwrap();
    // From the program's base name on: what `ps -e` and `pgrep` show.
    let base = want.rsplit_once('/').map_or(want.as_str(), |(_, b)| b);
    let expected: String = base.chars().take(15).collect();
    assert_eq!(comm.trim_end(), expected);
    h.kill().unwrap();
    assert!(matches!(h.join(), Err(JoinError::Killed { .. })));
}

/// Waits until the fork server (pid `server`, its parent) has died, then
/// returns. (Opened by pid: the server cannot die and be reused meanwhile,
/// since it waits for this very child; if it is already gone the open fails
/// and there is nothing to wait for.)
fn outlive_the_server(server: u32) -> u32 {
    if let Ok(fd) = brood::os::PidFd::open(server) {
        fd.wait_exited(None).unwrap();
    }
    42
}

/// A child that sent its result after its fork server was killed: the value
/// reached us, so `join` returns it (the status alone is lost).
#[test]
fn a_result_that_arrived_after_the_server_died_is_returned() {
    support::become_subreaper();
    let mut clean = support::Cleanup::default();
    // A first start launches the server, so that its pid can be passed on.
    let warm = Process::new(one, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    assert_eq!(warm.join().unwrap(), 1);
    let server = clean.add(brood::fork_server_pid().unwrap());
    let h = Process::new(outlive_the_server, server)
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    let child = clean.add(h.pid());
    support::kill_and_reap(server);
    assert_eq!(h.join().unwrap(), 42);
    // Re-parented to us (a subreaper) when the server died: ours to reap.
    assert!(support::wait_exit(child, Duration::from_secs(5)));
    assert!(matches!(h.poll(), Err(JoinError::ServerDied { .. })));
}

/// Queries answer at once even when the fork server cannot report: with the
/// server stopped (SIGSTOP), a child that ended is not alive, and `exitcode`
/// and `poll` answer "not known yet" within a few milliseconds (they used to
/// wait 5 s for the report).
#[test]
fn queries_do_not_wait_for_a_stopped_server() {
    let mut clean = support::Cleanup::default();
    let h = Process::new(park, ())
        .start_method(StartMethod::ForkServer)
        .start()
        .unwrap();
    clean.add(h.pid());
    let server = clean.add(brood::fork_server_pid().unwrap());
    // SAFETY: signalling the server this test started.
    unsafe { libc::kill(server as i32, libc::SIGSTOP) };
    h.kill().unwrap();
    let fd = brood::os::PidFd::open(h.pid()).unwrap();
    assert!(fd.wait_exited(Some(Duration::from_secs(10))).unwrap());
    let t = std::time::Instant::now();
    assert!(!h.is_alive());
    assert_eq!(h.exitcode(), None);
    assert!(matches!(h.poll(), Ok(None)));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // SAFETY: as above.
    unsafe { libc::kill(server as i32, libc::SIGCONT) };
    assert!(matches!(h.join(), Err(JoinError::Killed { .. })));
    assert_eq!(h.exitcode(), Some(-9));
}
