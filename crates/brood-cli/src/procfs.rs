//! Reading processes through `/proc`: one place for the kernel's view of a
//! process, shared by the lab's observer and `brood tree`.
//!
//! Everything here is a snapshot: a process may end between two reads, so every
//! reader returns `None` (or skips the process) rather than failing when a
//! `/proc/<pid>` entry vanishes under it.
//!
//! # References
//! - proc(5): `/proc/<pid>/stat`, `/proc/<pid>/cmdline`, `/proc/<pid>/environ`

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

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

/// Parses the text of `/proc/<pid>/stat`.
///
/// The command name sits between the first `(` and the *last* `)`: it may itself
/// contain spaces and parentheses (a program may name itself `a) b (c`), so
/// splitting on whitespace would misread every field after it.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Fields after the comm: 0 state, 1 ppid, 2 pgrp, 3 session, ..., 19 starttime.
    let state = rest.first()?.chars().next()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid: rest.get(1)?.parse().ok()?,
        pgid: rest.get(2)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        starttime: rest.get(19)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone (or unreadable).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// The command line of `pid`, arguments joined by spaces; empty for kernel
/// threads and zombies (whose memory is gone).
pub fn cmdline(pid: u32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => bytes
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => String::new(),
    }
}

/// Whether `pid`'s environment holds exactly the entry `entry` (`NAME=value`).
///
/// The lab tags every scenario with such an entry: it is inherited by every
/// descendant, even one that changed its process group or session, so the
/// scenario's processes can be found again by pid after they were orphaned.
pub fn environ_has(pid: u32, entry: &str) -> bool {
    match fs::read(format!("/proc/{pid}/environ")) {
        Ok(bytes) => bytes.split(|b| *b == 0).any(|e| e == entry.as_bytes()),
        Err(_) => false,
    }
}

/// The owner uid of `/proc/<pid>` (the process's real uid, as ps shows it).
pub fn uid(pid: u32) -> Option<u32> {
    fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
}

/// Every pid in `/proc` at this moment, in ascending order.
pub fn all_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = match fs::read_dir("/proc") {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => Vec::new(),
    };
    pids.sort_unstable();
    pids
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
    fn parses_plain_stat() {
        let s = parse_stat("42 (sleep) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 0 0")
            .unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state, s.ppid),
            (42, "sleep", 'S', 1)
        );
        assert_eq!((s.pgid, s.sid, s.starttime), (42, 42, 777));
    }

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let s = parse_stat("7 (a) b (c)) Z 3 4 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0").unwrap();
        assert_eq!(s.comm, "a) b (c)");
        assert!(s.is_zombie());
        assert_eq!((s.ppid, s.pgid, s.sid, s.starttime), (3, 4, 5, 99));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_stat("").is_none());
        assert!(parse_stat("12 noparen S 1").is_none());
        assert!(parse_stat("x (a) S 1 2 3").is_none());
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
    }
}
