//! Reading processes through `/proc` for the lab's observer, `brood tree` and
//! `brood run`: the CLI's view over the library's one reader,
//! [`brood::os::procfs`].
//!
//! Everything here is a snapshot: a process may end between two reads, so every
//! reader returns `None` (or skips the process) rather than failing when a
//! `/proc/<pid>` entry vanishes under it, or cannot be read.
//!
//! # References
//! - proc(5): `/proc/<pid>/stat`, `/proc/<pid>/cmdline`, `/proc/<pid>/environ`

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use brood::os::procfs;

/// The fields of `/proc/<pid>/stat` that brood looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The process id.
    pub pid: u32,
    /// The command name (`comm`, at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// The one-letter state: `R`, `S`, `D`, `Z` (zombie), `T`, `t`, `X`, `I`.
    pub state: char,
    /// The parent's pid (0 for init and kernel threads' roots).
    pub ppid: u32,
    /// The process group id.
    pub pgid: u32,
    /// The session id.
    pub sid: u32,
    /// Start time in clock ticks after boot: with `pid`, it names one process
    /// for good, even when the pid is reused later.
    pub starttime: u64,
}

impl Stat {
    /// Whether the process has ended and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

impl Stat {
    /// The CLI's view of the library's: `None` for a process already reaped and
    /// being released (no group or session any more), which the CLI's readers
    /// treat as gone.
    fn from_os(s: procfs::Stat) -> Option<Stat> {
        Some(Stat {
            pid: s.pid,
            comm: s.comm,
            state: s.state.as_char(),
            ppid: s.ppid,
            pgid: s.pgrp?,
            sid: s.session?,
            starttime: s.start_time,
        })
    }
}

/// Parses the text of `/proc/<pid>/stat` (see [`procfs::parse_stat`]).
// Unused by the command today; kept so that code written against this module
// (run.rs, lab/, edited elsewhere at the same time) keeps compiling.
#[allow(dead_code)]
pub fn parse_stat(text: &str) -> Option<Stat> {
    procfs::parse_stat(text.as_bytes())
        .ok()
        .and_then(Stat::from_os)
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone (or unreadable).
pub fn stat(pid: u32) -> Option<Stat> {
    procfs::stat(pid).ok().flatten().and_then(Stat::from_os)
}

/// The command line of `pid`, arguments joined by spaces; empty for kernel
/// threads and zombies (whose memory is gone).
pub fn cmdline(pid: u32) -> String {
    let args = procfs::cmdline(pid).ok().flatten().unwrap_or_default();
    let args: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    args.join(" ")
}

/// Whether `pid`'s environment holds exactly the entry `entry` (`NAME=value`).
///
/// The lab tags every scenario with such an entry: it is inherited by every
/// descendant, even one that changed its process group or session, so the
/// scenario's processes can be found again by pid after they were orphaned.
pub fn environ_has(pid: u32, entry: &str) -> bool {
    let env = procfs::environ(pid).ok().flatten().unwrap_or_default();
    env.iter().any(|e| e.as_bytes() == entry.as_bytes())
}

/// The owner uid of `/proc/<pid>` (the process's real uid, as ps shows it).
pub fn uid(pid: u32) -> Option<u32> {
    std::fs::metadata(format!("/proc/{pid}"))
        .ok()
        .map(|m| m.uid())
}

/// Every pid in `/proc` at this moment, in ascending order.
pub fn all_pids() -> Vec<u32> {
    procfs::pids().unwrap_or_default()
}

/// A snapshot of every process's stat, keyed by pid.
pub fn snapshot() -> BTreeMap<u32, Stat> {
    all_pids()
        .into_iter()
        .filter_map(|pid| stat(pid).map(|s| (pid, s)))
        .collect()
}

/// The pids in `snap` whose chain of parents leads to `root` (not `root` itself).
pub fn descendants(snap: &BTreeMap<u32, Stat>, root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for s in snap.values() {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            // A pid cannot be its own ancestor, but a snapshot taken while
            // processes come and go is not atomic: guard against cycles.
            if child != root && !out.contains(&child) {
                out.push(child);
                stack.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_letter_and_the_old_field_names() {
        let s = parse_stat("7 (a) b (c)) Z 3 4 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0").unwrap();
        assert_eq!((s.pid, s.comm.as_str(), s.state), (7, "a) b (c)", 'Z'));
        assert!(s.is_zombie());
        assert_eq!((s.ppid, s.pgid, s.sid, s.starttime), (3, 4, 5, 99));
        assert!(parse_stat("12 noparen S 1").is_none());
        let released = "9 (a) X 0 -1 -1 0 -1 0 0 0 0 0 0 0 0 0 20 0 0 0 99 0";
        assert!(parse_stat(released).is_none(), "a released process is gone");
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        assert_eq!(stat(me).unwrap().pid, me);
        assert!(all_pids().contains(&me));
        assert!(cmdline(me).contains("brood"));
    }
}
