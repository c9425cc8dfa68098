//! Helpers shared by the integration tests: observe processes through /proc and
//! pidfds, never by assumption.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// State letter (field 3 of /proc/<pid>/stat) and ppid (field 4), if the process exists.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running (exists and is not a zombie), as kill(pid, 0) and /proc say.
pub fn running(pid: u32) -> bool {
    // SAFETY: signal 0 only checks existence.
    let exists = unsafe { libc::kill(pid as i32, 0) } == 0;
    exists && stat(pid).is_some_and(|(s, _)| s != 'Z')
}

/// Pids of zombies whose parent is `parent`.
pub fn zombies_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if stat(pid) == Some(('Z', parent)) {
            found.push(pid);
        }
    }
    found
}

/// Pids whose parent is `parent` (any state).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if stat(pid).is_some_and(|(_, p)| p == parent) {
            found.push(pid);
        }
    }
    found
}

/// `pidfd_open(pid)`: None if the process is already gone.
pub fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the result is a fresh fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as i32, 0) };
    // SAFETY: a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits up to `timeout` for the process behind `fd` to exit; true if it did.
pub fn exits_within(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) == 1 }
}

/// Reaps `pid` if it is (now) our child and has exited; blocking up to a moment
/// for the exit notification to finish.
pub fn reap(pid: u32) {
    for _ in 0..200 {
        let mut st = 0;
        // SAFETY: waitpid on a specific pid with a status word we own.
        let rc = unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) };
        if rc == pid as i32 || rc < 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL `pid` (if it still runs) and reap it if it is ours.
pub fn kill_and_reap(pid: u32) {
    if let Some(fd) = pidfd(pid) {
        // SAFETY: pidfd_send_signal on our pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                0,
                0,
            )
        };
        exits_within(&fd, Duration::from_secs(5));
    }
    reap(pid);
}

/// Makes this process a subreaper, so that orphaned descendants become our
/// children (and we can reap them and watch them die) rather than init's.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
}

pub fn me() -> u32 {
    std::process::id()
}
