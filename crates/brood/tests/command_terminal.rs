//! `run()` with a timeout at a terminal: the program leads a group of its own
//! (so the timeout's kill reaches what it started), holds the terminal's
//! foreground (so reading it does not stop it), and the terminal comes back.
//!
//! The test forks a copy of itself into a new session whose controlling
//! terminal is a fresh pseudo-terminal, and types on the master side.

mod support;

use brood::{Command, Error};
use std::ffi::CStr;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;
use support::*;

brood::init_before_main!();

/// A new pseudo-terminal: the master, and the slave's path.
fn open_pty() -> (std::fs::File, String) {
    // SAFETY: plain pty calls; the master descriptor is owned by the File.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = CStr::from_ptr(libc::ptsname(master))
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from(OwnedFd::from_raw_fd(master)), name)
    }
}

/// In the forked copy: a session of its own with `slave` as its controlling
/// terminal on stdin, in the terminal's foreground.
fn take_terminal(slave: &str) -> bool {
    let path = std::ffi::CString::new(slave).unwrap();
    // SAFETY: setsid, open and dup2 in a single-purpose forked copy.
    unsafe {
        if libc::setsid() < 0 {
            return false;
        }
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        fd >= 0 && libc::ioctl(fd, libc::TIOCSCTTY, 0) == 0 && libc::dup2(fd, 0) == 0
    }
}

fn foreground_is_ours() -> bool {
    // SAFETY: reading the terminal's foreground group and our own.
    unsafe { libc::tcgetpgrp(0) == libc::getpgrp() }
}

#[test]
fn a_timed_run_at_a_terminal_reads_it_and_leaves_nothing_behind() {
    require_own_process();
    let (mut master, slave) = open_pty();
    let child = brood::fork_with(move || {
        if !take_terminal(&slave) || !foreground_is_ours() {
            return 10;
        }
        // Reads a line from the terminal, starts two sleepers, waits.
        let e = Command::new("sh")
            .args([
                "-c",
                "read line; echo got:$line; sleep 100 & echo $!; sleep 100 & echo $!; wait",
            ])
            .timeout(Duration::from_secs(2))
            .run()
            .unwrap_err();
        let Error::Timeout { stdout, .. } = e else {
            eprintln!("not a timeout: {e}");
            return 11;
        };
        let text = String::from_utf8_lossy(&stdout).into_owned();
        if !text.starts_with("got:hello\n") {
            eprintln!("the program did not read the terminal: {text:?}");
            return 12;
        }
        // Both sleepers went with the program's group.
        let sleepers: Vec<u32> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.parse().ok())
            .collect();
        if sleepers.len() != 2 {
            eprintln!("no sleeper pids: {text:?}");
            return 13;
        }
        for p in sleepers {
            if !wait_exit(p, Duration::from_secs(5)) {
                eprintln!("sleeper {p} outlived the timeout");
                return 14;
            }
        }
        if !foreground_is_ours() {
            eprintln!("the terminal was not given back");
            return 15;
        }
        0
    })
    .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    master.write_all(b"hello\n").unwrap();
    ends_with_zero(&child, Duration::from_secs(30), "the copy at the terminal");
}

#[test]
fn ctrl_c_reaches_a_foreground_group_child_and_the_terminal_comes_back() {
    require_own_process();
    let (mut master, slave) = open_pty();
    let mut report = Report::new();
    let fd = report.fd();
    let child = brood::fork_with(move || {
        if !take_terminal(&slave) || !foreground_is_ours() {
            return 10;
        }
        let cat = Command::new("cat")
            .tree(brood::Tree::Group)
            .foreground(true)
            .stdout(brood::Stdio::null())
            .spawn()
            .unwrap();
        say(fd, "ready");
        let status = cat.wait().unwrap();
        if status.signal() != Some(brood::Signal::INT) {
            eprintln!("cat ended with {status}, not by Ctrl-C");
            return 11;
        }
        // Reaped: the terminal is ours again, without asking.
        if !foreground_is_ours() {
            eprintln!("the terminal was not given back");
            return 12;
        }
        0
    })
    .unwrap();
    report.close_writer();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    assert_eq!(report.line(), "ready");
    // Ctrl-C, as typed: the terminal sends SIGINT to its foreground group,
    // which is cat's — not ours, so we live on.
    master.write_all(&[3]).unwrap();
    ends_with_zero(&child, Duration::from_secs(30), "the copy at the terminal");
}

/// `wait` returns only once the terminal is back: the reaper thread and the
/// waiter both see the child end, and whichever reaps it, the foreground is
/// ours before either answers. Many short children, so a window between the
/// two would show.
#[test]
fn wait_returns_only_after_the_terminal_is_back() {
    require_own_process();
    let (_master, slave) = open_pty();
    let child = brood::fork_with(move || {
        if !take_terminal(&slave) || !foreground_is_ours() {
            return 10;
        }
        for i in 0..300 {
            let c = Command::new("true")
                .tree(brood::Tree::Group)
                .foreground(true)
                .spawn()
                .unwrap();
            if !c.wait().unwrap().success() {
                return 11;
            }
            if !foreground_is_ours() {
                eprintln!("run {i}: wait returned before the terminal came back");
                return 12;
            }
        }
        0
    })
    .unwrap();
    let mut cleanup = Cleanup::default();
    cleanup.add(child.pid());
    ends_with_zero(&child, Duration::from_secs(60), "the copy at the terminal");
}
