//! cgroup v2: the unified hierarchy's mount, this process's cgroup, and the
//! files brood uses in cgroups it made itself (`cgroup.procs` to join,
//! `cgroup.kill` to end every member at once, `cgroup.events` to see it
//! empty). Nothing here writes outside a directory the caller created.
//!
//! # References
//! Documentation/admin-guide/cgroup-v2.rst (`cgroup.procs`, `cgroup.kill`,
//! Linux 5.14; `cgroup.events`), proc(5) (`/proc/self/cgroup`,
//! `/proc/self/mountinfo`).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted (`cgroup2` in
/// `/proc/self/mountinfo`), if it is.
pub fn mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// This process's cgroup v2 path (the `0::` line of `/proc/self/cgroup`).
pub fn own() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// The controllers available in the cgroup at `dir` (`cgroup.controllers`).
pub fn controllers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `cgroup.procs` of `dir`, open for writing (close-on-exec), for a child to
/// join with [`join`].
pub fn procs_for_joining(dir: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))?;
    Ok(OwnedFd::from(f))
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open on
/// `fd` (writing "0" means "me"). Async-signal-safe: one `write`, for a child
/// between its creation and the program.
pub fn join(fd: RawFd) -> io::Result<()> {
    // SAFETY: writes one byte from a static buffer to a descriptor number.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SIGKILL to every process in `dir` at once (`cgroup.kill`): a fork racing
/// it cannot escape (Linux 5.14).
pub fn kill(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.kill"), b"1")
}

/// The pids in `dir` now (`cgroup.procs`).
pub fn members(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any process is left in `dir` (`populated 1` in `cgroup.events`).
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Whether the kernel has `cgroup.kill` in `dir`.
pub fn has_kill(dir: &Path) -> bool {
    dir.join("cgroup.kill").exists()
}

/// `kill(pid, sig)` to one member (a pid read from `cgroup.procs`).
pub fn kill_member(pid: u32, sig: i32) {
    // SAFETY: kill touches no memory; a gone pid gives ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_cgroup_and_the_mount_is_found_when_there_is_one() {
        // Every Linux process is in some v2 cgroup when v2 is mounted.
        if let Some(m) = super::mount() {
            assert!(m.is_absolute());
            assert!(super::own().is_some_and(|p| p.starts_with('/')));
        }
    }
}
