//! Command lifecycle rows that need a *parent* to leave or die: seed rows S1, S2,
//! S3 (signal to the parent), S4 (zombie count), and guarantee (a) for Command.
//!
//! This file is its own test harness (`harness = false`): the same binary is the
//! intermediate parent. Run with `BROOD_CMD_HELPER=<mode>`, it spawns a `sleep`
//! with brood, reports its pid on stdout and then leaves or blocks as the mode
//! says. The test process is a subreaper, so the orphaned grandchild becomes its
//! child: it can watch it (pidfd), and reap it. Tests run one after another (some
//! change process-wide state), and at the end the harness fails if any process
//! it started is left.

mod support;

use brood::{Command, Error, OnParentDeath, Signal};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child as StdChild, ChildStdout, Stdio as StdStdio};
use std::time::{Duration, Instant};
use support::*;

/// `[(name, fn)]` from function names.
macro_rules! named {
    ($($f:ident),* $(,)?) => { [$((stringify!($f), $f as fn())),*] };
}

const HELPER: &str = "BROOD_CMD_HELPER";

fn main() {
    brood::init();
    if let Ok(mode) = std::env::var(HELPER) {
        helper(&mode);
        return;
    }
    let tests: &[(&str, fn())] = &named![
        s1_s2_parent_leaves_child_runs_on,
        s3_signal_to_parent_child_lives,
        s4_no_zombies_among_our_children,
        a_parent_sigkilled_100_trials,
        a_parent_sigkilled_mid_spawn,
        a_spawned_from_a_thread_that_ends,
        c_sigchld_ignored_gives_reaped_elsewhere,
        pipes_landing_on_fds_0_and_1,
        on_exit_terminate_ends_the_child_first,
    ];
    // The libtest command line, as far as cargo test and cargo-nextest use it:
    // `--list --format terse [--ignored]` lists, `--exact NAME` runs one test, a
    // bare word runs the tests whose name contains it; other flags are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--list") {
        if !flag("--ignored") {
            for (name, _) in tests {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = flag("--exact");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected = |name: &str| {
        filter.is_empty()
            || filter.iter().any(|f| {
                if exact {
                    name == f.as_str()
                } else {
                    name.contains(f.as_str())
                }
            })
    };
    become_subreaper();
    let mut failed = Vec::new();
    for &(name, test) in tests {
        if !selected(name) {
            continue;
        }
        let started = Instant::now();
        let ok = std::panic::catch_unwind(test).is_ok();
        println!(
            "test {name} ... {} ({:.2?})",
            if ok { "ok" } else { "FAILED" },
            started.elapsed()
        );
        if !ok {
            failed.push(name);
        }
    }
    // The suite leaves no process behind: every child (orphans included, since we
    // are a subreaper) must be gone.
    let left: Vec<u32> = children_of(me());
    if !left.is_empty() {
        println!("processes left behind: {left:?}");
        for pid in &left {
            kill_and_reap(*pid);
        }
        failed.push("no process left behind");
    }
    if failed.is_empty() {
        println!("test result: ok");
    } else {
        println!("test result: FAILED: {failed:?}");
        std::process::exit(1);
    }
}

/// The intermediate parent.
fn helper(mode: &str) {
    let report = |pid: u32| println!("{pid}");
    let block = || {
        // Until the test kills us (or closes our stdin).
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    };
    let sleep = || {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        cmd
    };
    match mode {
        "detach-return" | "detach-exit" | "detach-exit-now" => {
            report(sleep().spawn().unwrap().pid());
            match mode {
                "detach-exit" => brood::exit(0),
                "detach-exit-now" => brood::exit_now(0),
                _ => {}
            }
        }
        "terminate-on-exit" => {
            let p = sleep()
                .on_exit(brood::OnExit::Terminate {
                    grace: Duration::from_secs(5),
                })
                .spawn()
                .unwrap();
            report(p.pid());
            brood::exit(0);
        }
        "survive" => {
            report(sleep().spawn().unwrap().pid());
            block();
        }
        "kill" => {
            let p = sleep()
                .on_parent_death(OnParentDeath::Signal(Signal::KILL))
                .spawn()
                .unwrap();
            report(p.pid());
            block();
        }
        "storm" => loop {
            let p = sleep()
                .on_parent_death(OnParentDeath::Signal(Signal::KILL))
                .spawn()
                .unwrap();
            report(p.pid());
        },
        "thread" => {
            let (pid, tid) = std::thread::spawn(move || {
                let p = sleep()
                    .on_parent_death(OnParentDeath::Signal(Signal::KILL))
                    .spawn()
                    .unwrap();
                // SAFETY: gettid has no preconditions.
                (p.pid(), unsafe { libc::gettid() })
            })
            .join()
            .unwrap();
            // The thread has fully exited once its /proc entry is gone (the
            // kernel sends parent-death signals before that).
            while std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() {
                std::thread::yield_now();
            }
            report(pid);
            block();
        }
        "low-fds" => {
            // Run with 0 and 1 closed, so that the pipes brood makes land on them:
            // the exec child must still wire each stream to the right pipe.
            // SAFETY: dup/close on our own standard descriptors, in a
            // single-purpose helper process.
            let report_fd = unsafe { libc::dup(1) };
            // SAFETY: as above.
            unsafe {
                libc::close(0);
                libc::close(1);
            }
            let mut p = Command::new("sh")
                .args(["-c", "cat; echo e >&2"])
                .stdin(brood::Stdio::piped())
                .stdout(brood::Stdio::piped())
                .stderr(brood::Stdio::piped())
                .spawn()
                .unwrap();
            let (out, err) = p.communicate(Some(b"abc"), None).unwrap();
            let verdict = format!(
                "{}\n",
                String::from_utf8_lossy(&[out, err].concat()).replace('\n', "|")
            );
            // SAFETY: writing a valid buffer to the saved descriptor.
            unsafe { libc::write(report_fd, verdict.as_ptr().cast(), verdict.len()) };
        }
        other => panic!("unknown helper mode {other}"),
    }
}

fn start_helper(mode: &str) -> (StdChild, BufReader<ChildStdout>) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(HELPER, mode)
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn read_pid(out: &mut BufReader<ChildStdout>) -> u32 {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("helper said {line:?}"))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling our own (unreaped) helper child.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// S1: the parent can leave without waiting; S2: the child runs on after it left
/// (returning from main, brood::exit and brood::exit_now alike, under defaults).
fn s1_s2_parent_leaves_child_runs_on() {
    for mode in ["detach-return", "detach-exit", "detach-exit-now"] {
        let (mut helper, mut out) = start_helper(mode);
        let grandchild = read_pid(&mut out);
        let fd = pidfd(grandchild).unwrap();
        let status = helper.wait().unwrap();
        assert!(status.success(), "{mode}: {status}");
        assert!(running(grandchild), "{mode}: child died with its parent");
        assert!(!exits_within(&fd, Duration::from_millis(50)));
        assert_eq!(
            stat(grandchild).map(|(_, ppid)| ppid),
            Some(me()),
            "{mode}: not re-parented to us"
        );
        kill_and_reap(grandchild);
    }
}

/// S3: SIGTERM or SIGKILL to the parent stops the parent; the child lives.
fn s3_signal_to_parent_child_lives() {
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        let (mut helper, mut out) = start_helper("survive");
        let grandchild = read_pid(&mut out);
        let fd = pidfd(grandchild).unwrap();
        signal(helper.id(), sig);
        let status = helper.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(sig)
        );
        assert!(
            !exits_within(&fd, Duration::from_millis(100)),
            "child died with its parent"
        );
        assert!(running(grandchild));
        kill_and_reap(grandchild);
    }
}

/// S4 (and guarantee (b) in small): 200 children end unwaited with their Popen
/// dropped; none stays a zombie.
fn s4_no_zombies_among_our_children() {
    let mut fds = Vec::new();
    for _ in 0..200 {
        let p = Command::new("true").spawn().unwrap();
        if let Some(fd) = pidfd(p.pid()) {
            fds.push(fd);
        }
    }
    for fd in &fds {
        assert!(exits_within(fd, Duration::from_secs(5)));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let zombies = zombies_of(me());
        if zombies.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "zombies: {zombies:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Guarantee (a): the parent is SIGKILLed right after spawn returns; the child
/// with OnParentDeath::Signal(KILL) is gone within 1 s, every time.
fn a_parent_sigkilled_100_trials() {
    for trial in 0..100 {
        let (mut helper, mut out) = start_helper("kill");
        let grandchild = read_pid(&mut out);
        let fd = pidfd(grandchild).unwrap();
        helper.kill().unwrap();
        helper.wait().unwrap();
        assert!(
            exits_within(&fd, Duration::from_secs(1)),
            "trial {trial}: child {grandchild} outlived its SIGKILLed parent"
        );
        reap(grandchild);
        assert!(!running(grandchild));
    }
}

/// Guarantee (a), the start-up race: the parent is SIGKILLed while it is spawning
/// children back to back; none of them may survive, whatever step each was at.
fn a_parent_sigkilled_mid_spawn() {
    for trial in 0..20 {
        let (mut helper, mut out) = start_helper("storm");
        let first = read_pid(&mut out);
        for _ in 0..(trial % 5) {
            read_pid(&mut out);
        }
        helper.kill().unwrap();
        helper.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            // Orphans come to us (subreaper): reap the dead, look for the living.
            let kids = children_of(me());
            for &pid in &kids {
                if stat(pid).is_some_and(|(s, _)| s == 'Z') {
                    reap(pid);
                }
            }
            let living: Vec<u32> = kids.iter().copied().filter(|&p| running(p)).collect();
            // Done only when none is left at all: a child that died between
            // the two looks above is a zombie of ours, reaped next time round.
            if kids.iter().all(|&p| !support::exists(p)) {
                break;
            }
            if Instant::now() >= deadline {
                for pid in &living {
                    kill_and_reap(*pid);
                }
                panic!(
                    "trial {trial}: children {living:?} outlived their SIGKILLed parent (first {first})"
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Guarantee (a): a child spawned with a parent-death signal from a thread that
/// then exits lives on until the parent process dies.
fn a_spawned_from_a_thread_that_ends() {
    let (mut helper, mut out) = start_helper("thread");
    let grandchild = read_pid(&mut out);
    let fd = pidfd(grandchild).unwrap();
    assert!(
        !exits_within(&fd, Duration::from_millis(200)),
        "killed when its spawning thread ended"
    );
    assert!(running(grandchild));
    assert_eq!(stat(grandchild).map(|(_, ppid)| ppid), Some(helper.id()));
    helper.kill().unwrap();
    helper.wait().unwrap();
    assert!(
        exits_within(&fd, Duration::from_secs(1)),
        "outlived its SIGKILLed parent"
    );
    reap(grandchild);
}

/// Guarantee (c) for Command: with SIGCHLD ignored the kernel reaps our children
/// itself; brood answers ReapedElsewhere, never "running".
fn c_sigchld_ignored_gives_reaped_elsewhere() {
    // SAFETY: process-wide signal disposition, restored below; the tests of this
    // harness run one at a time, so nothing else waits for a child meanwhile.
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let p = Command::new("true").spawn();
    let outcome = p.map(|p| {
        let fd = pidfd(p.pid());
        if let Some(fd) = fd {
            exits_within(&fd, Duration::from_secs(5));
        }
        (p.pid(), p.wait(), p.is_alive(), p.send_signal(Signal::KILL))
    });
    // SAFETY: restores the saved disposition.
    unsafe { libc::signal(libc::SIGCHLD, old) };
    let (pid, waited, alive, signalled) = outcome.unwrap();
    assert!(
        matches!(waited, Err(Error::ReapedElsewhere { pid: q }) if q == pid),
        "{waited:?}"
    );
    assert!(!alive);
    assert!(
        matches!(signalled, Err(Error::ReapedElsewhere { .. })),
        "{signalled:?}"
    );
}

/// The parent runs with fds 0 and 1 closed, so new pipes get those numbers: the
/// exec child must not overwrite one stream's pipe while installing another.
fn pipes_landing_on_fds_0_and_1() {
    let (mut helper, mut out) = start_helper("low-fds");
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "abce|\n");
    assert!(helper.wait().unwrap().success());
}

/// `OnExit::Terminate` for a Command: `brood::exit` ends the child (SIGTERM, which
/// `sleep` obeys, so well within the grace) before the parent is gone.
fn on_exit_terminate_ends_the_child_first() {
    let (mut helper, mut out) = start_helper("terminate-on-exit");
    let grandchild = read_pid(&mut out);
    let fd = pidfd(grandchild);
    let started = Instant::now();
    assert!(helper.wait().unwrap().success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited out the grace"
    );
    if let Some(fd) = fd {
        assert!(
            exits_within(&fd, Duration::ZERO),
            "child outlived its parent's exit"
        );
    }
    reap(grandchild);
    assert!(!running(grandchild));
}
