//! `/proc`: the kernel's own view of a process, read in one place.
//!
//! What brood and its command need from it: a process's `stat` line (state,
//! parent, group, session, start time, thread count), its children, every pid,
//! and a process's command line and environment. Public as [`crate::os::procfs`].
//!
//! Everything here is a snapshot: a process may end between two reads. A process
//! that is not there (never was, or ended and was reaped, even in the middle of a
//! read) is the expected `Ok(None)`, never an error; errors are for a `/proc` that
//! cannot be read or does not say what proc(5) promises.
//!
//! # References
//! proc(5): `/proc/<pid>/stat`, `/proc/<pid>/task/<tid>/children` (Linux 3.5,
//! `CONFIG_PROC_CHILDREN`), `/proc/<pid>/cmdline`, `/proc/<pid>/environ`.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

/// Why `/proc` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcfsError {
    /// Reading the file failed for a reason other than the process being gone.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory, e.g. `/proc/42/stat`.
        path: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The file does not have the shape proc(5) describes.
    #[error("{path} is malformed ({source}): {text:?}")]
    Malformed {
        /// The file, e.g. `/proc/42/stat`.
        path: String,
        /// What it said.
        text: String,
        /// Which part is wrong.
        #[source]
        source: MalformedStat,
    },
}

/// A `stat` line lacks a field, or a field is not what proc(5) says it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` is missing or not a number")]
pub struct MalformedStat {
    /// The field's name in proc(5) (`pid`, `comm`, `state`, `ppid`, ...).
    pub field: &'static str,
}

/// A process's scheduling state: field 3 of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep (waiting for an event).
    Sleeping,
    /// `D`: uninterruptible sleep (usually I/O).
    DiskSleep,
    /// `Z`: ended, and its parent has not yet reaped it.
    Zombie,
    /// `T`: stopped by a signal (SIGSTOP, SIGTSTP, ...).
    Stopped,
    /// `t`: stopped by a tracer.
    TracingStop,
    /// `X` (or `x` before Linux 3.14): dead, being released.
    Dead,
    /// `I`: an idle kernel thread (Linux 4.14).
    Idle,
    /// `P`: parked (a kernel thread, Linux 3.9 to 3.13).
    Parked,
    /// `K`: wakekill (Linux 2.6.33 to 3.13).
    WakeKill,
    /// `W`: waking (Linux 2.6.33 to 3.13), or paging (before 2.6.0).
    Waking,
    /// A letter this version of brood does not know.
    Other(char),
}

impl State {
    /// The state for proc(5)'s letter.
    pub fn from_char(c: char) -> State {
        match c {
            'R' => State::Running,
            'S' => State::Sleeping,
            'D' => State::DiskSleep,
            'Z' => State::Zombie,
            'T' => State::Stopped,
            't' => State::TracingStop,
            'X' | 'x' => State::Dead,
            'I' => State::Idle,
            'P' => State::Parked,
            'K' => State::WakeKill,
            'W' => State::Waking,
            other => State::Other(other),
        }
    }

    /// proc(5)'s letter for the state, as `ps` shows it.
    pub fn as_char(self) -> char {
        match self {
            State::Running => 'R',
            State::Sleeping => 'S',
            State::DiskSleep => 'D',
            State::Zombie => 'Z',
            State::Stopped => 'T',
            State::TracingStop => 't',
            State::Dead => 'X',
            State::Idle => 'I',
            State::Parked => 'P',
            State::WakeKill => 'K',
            State::Waking => 'W',
            State::Other(c) => c,
        }
    }

    /// Whether the process has ended (zombie or dead): it runs no more code.
    pub fn has_ended(self) -> bool {
        matches!(self, State::Zombie | State::Dead)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// The fields of `/proc/<pid>/stat` that brood looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 1, the process id (as this `/proc`'s pid namespace numbers it).
    pub pid: u32,
    /// Field 2, the command name: the executable's file name, at most 15 bytes
    /// (bytes that are not UTF-8 shown as U+FFFD). It may hold spaces and
    /// parentheses.
    pub comm: String,
    /// Field 3.
    pub state: State,
    /// Field 4, the parent's pid (0 for init and for kernel threads' roots).
    pub ppid: u32,
    /// Field 5, the process group id; `None` once the process has been reaped
    /// and is being released (state `X`, which the kernel reports with group
    /// and session -1, parent 0 and no threads).
    pub pgrp: Option<u32>,
    /// Field 6, the session id; `None` when `pgrp` is.
    pub session: Option<u32>,
    /// Field 8, the foreground process group of the controlling terminal;
    /// `None` without a controlling terminal.
    pub tpgid: Option<u32>,
    /// Field 20, how many threads the process has.
    pub num_threads: u32,
    /// Field 22, when the process started, in clock ticks after boot. With
    /// `pid` it names one process for good, even after the pid is reused.
    pub start_time: u64,
    /// Fields 48–49, where the process's command line lies in its memory
    /// (`arg_start`, `arg_end`); `None` when the kernel does not show them (to
    /// a reader without ptrace access, or before Linux 3.5).
    pub arg_area: Option<(u64, u64)>,
}

impl Stat {
    /// Whether the process has ended and waits to be reaped (state `Z`).
    pub fn is_zombie(&self) -> bool {
        self.state == State::Zombie
    }
}

/// Parses the text of a `/proc/<pid>/stat` file.
///
/// The command name sits between the first `(` and the *last* `)`: a program may
/// call itself `a) b (c`, so splitting the line on whitespace would misread
/// every later field.
///
/// ```
/// use brood::os::procfs::{parse_stat, State};
///
/// let line = "7 (a) b (c) Z 3 4 5 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
/// let stat = parse_stat(line.as_bytes())?;
/// assert_eq!(stat.comm, "a) b (c");
/// assert_eq!((stat.state, stat.ppid, stat.start_time), (State::Zombie, 3, 99));
/// assert_eq!(stat.tpgid, None);
/// # Ok::<(), brood::os::procfs::MalformedStat>(())
/// ```
pub fn parse_stat(text: &[u8]) -> Result<Stat, MalformedStat> {
    let bad = |field| MalformedStat { field };
    let open = text.iter().position(|&b| b == b'(').ok_or(bad("comm"))?;
    let close = text.iter().rposition(|&b| b == b')').ok_or(bad("comm"))?;
    if close < open {
        return Err(bad("comm"));
    }
    let pid = std::str::from_utf8(&text[..open])
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .ok_or(bad("pid"))?;
    let comm = String::from_utf8_lossy(&text[open + 1..close]).into_owned();
    // Everything after the comm is ASCII numbers and the state letter.
    let rest = std::str::from_utf8(&text[close + 1..]).map_err(|_| bad("state"))?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // proc(5) numbers fields from 1: field n is fields[n - 3].
    let number = |n: usize, field: &'static str| -> Result<i64, MalformedStat> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or(bad(field))
    };
    let id = |n, field| u32::try_from(number(n, field)?).map_err(|_| bad(field));
    // -1: the kernel could no longer look it up (a released process).
    let known = |n, field| match number(n, field)? {
        -1 => Ok(None),
        n => u32::try_from(n).map(Some).map_err(|_| bad(field)),
    };
    let mut state = fields.first().ok_or(bad("state"))?.chars();
    let state = match (state.next(), state.next()) {
        (Some(c), None) => State::from_char(c),
        _ => return Err(bad("state")),
    };
    // In proc(5)'s order, so that a short line names its first missing field.
    let ppid = id(4, "ppid")?;
    let pgrp = known(5, "pgrp")?;
    let session = known(6, "session")?;
    let tpgid = number(8, "tpgid")?;
    let num_threads = id(20, "num_threads")?;
    let start_time = fields
        .get(22 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or(bad("starttime"))?;
    let address = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let arg_area = match (address(48), address(49)) {
        (Some(start), Some(end)) if start < end => Some((start, end)),
        _ => None,
    };
    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        session,
        // -1 without a controlling terminal.
        tpgid: u32::try_from(tpgid).ok().filter(|&t| t > 0),
        num_threads,
        start_time,
        arg_area,
    })
}

/// Whether the `/proc/<pid>/stat` text `text` shows a process on its way out:
/// a zombie, one in `do_exit` (`PF_EXITING` in field 9, the kernel's flags),
/// or one with SIGKILL pending (field 31, the pending classic signals) —
/// what a `kill(pid, SIGKILL)` that has returned leaves, before the process
/// has had a chance to run again. Unreadable text counts as dying.
pub(crate) fn shows_dying(text: &[u8]) -> bool {
    const PF_EXITING: u64 = 0x4;
    let (Some(state), Some(flags), Some(pending)) = (
        stat_field(text, 3),
        stat_number(text, 9),
        stat_number(text, 31),
    ) else {
        return true;
    };
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0 || pending & (1 << 8) != 0
}

/// Field `n` of a `/proc/<pid>/stat` text, numbered from 1 as proc(5) does
/// (`n` ≥ 3: the state and what follows). Counted after the command name's
/// *last* `)`, since the name may hold spaces and parentheses (see
/// [`parse_stat`]). `None` when the text has no such field. Allocates
/// nothing: a forked child and the fork-server path read it.
pub(crate) fn stat_field(text: &[u8], n: usize) -> Option<&str> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// [`stat_field`] `n` as a number.
pub(crate) fn stat_number(text: &[u8], n: usize) -> Option<u64> {
    stat_field(text, n)?.parse().ok()
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when there is no such process (any more).
///
/// ```
/// use brood::os::procfs;
///
/// let me = procfs::stat(std::process::id())?.expect("this process exists");
/// assert_eq!(me.pid, std::process::id());
/// assert_eq!(me.ppid, brood::os::getppid());
/// # Ok::<(), procfs::ProcfsError>(())
/// ```
pub fn stat(pid: u32) -> Result<Option<Stat>, ProcfsError> {
    read_stat(&format!("/proc/{pid}/stat"))
}

/// Reads `/proc/self/stat`: the caller's own stat, right even when this `/proc`
/// belongs to another pid namespace than the caller's pid.
pub fn stat_self() -> Result<Stat, ProcfsError> {
    let path = "/proc/self/stat";
    read_stat(path)?.ok_or_else(|| ProcfsError::Read {
        path: path.to_string(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

fn read_stat(path: &str) -> Result<Option<Stat>, ProcfsError> {
    let Some(text) = read(path)? else {
        return Ok(None);
    };
    parse_stat(&text)
        .map(Some)
        .map_err(|source| ProcfsError::Malformed {
            path: path.to_string(),
            text: String::from_utf8_lossy(&text).trim_end().to_string(),
            source,
        })
}

/// The pids of `pid`'s children, ascending; `Ok(None)` when `pid` does not exist.
///
/// Reads `/proc/<pid>/task/<tid>/children` of every thread (a child belongs to
/// the thread that created it); on a kernel built without those files, scans
/// every process's parent instead ([`children_by_scan`]). Either way a snapshot:
/// a child that another thread's exit is re-parenting at that moment may be
/// missed.
///
/// ```
/// use brood::os::procfs;
///
/// let mut sleeper = std::process::Command::new("sleep").arg("30").spawn()?;
/// let kids = procfs::children(std::process::id())?.expect("we exist");
/// assert!(kids.contains(&sleeper.id()));
/// sleeper.kill()?;
/// sleeper.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn children(pid: u32) -> Result<Option<Vec<u32>>, ProcfsError> {
    let tasks_dir = format!("/proc/{pid}/task");
    let tasks = match fs::read_dir(&tasks_dir) {
        Ok(tasks) => tasks,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(source) => return Err(read_error(&tasks_dir, source)),
    };
    let mut kids = Vec::new();
    for task in tasks {
        let task = match task {
            Ok(task) => task,
            Err(e) if is_gone(&e) => return Ok(None),
            Err(source) => return Err(read_error(&tasks_dir, source)),
        };
        let path = task.path().join("children");
        let path = path.to_string_lossy();
        match read(&path)? {
            Some(text) => kids.extend(numbers(&text)),
            // The thread's directory is there but not the file: this kernel has
            // no CONFIG_PROC_CHILDREN.
            None if task.path().exists() => return children_by_scan(pid),
            // The thread ended while we read; its children moved to a sibling.
            None => {}
        }
    }
    kids.sort_unstable();
    kids.dedup();
    Ok(Some(kids))
}

/// [`children`] found the slow way: every process in `/proc` whose parent is
/// `pid`. `Ok(None)` when `pid` does not exist.
pub fn children_by_scan(pid: u32) -> Result<Option<Vec<u32>>, ProcfsError> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Ok(None);
    }
    let mut kids = Vec::new();
    for candidate in pids()? {
        if stat(candidate)?.is_some_and(|s| s.ppid == pid) {
            kids.push(candidate);
        }
    }
    Ok(Some(kids))
}

/// Every pid in `/proc` at this moment (processes, not their other threads),
/// ascending.
///
/// ```
/// let pids = brood::os::procfs::pids()?;
/// assert!(pids.contains(&std::process::id()));
/// # Ok::<(), brood::os::procfs::ProcfsError>(())
/// ```
pub fn pids() -> Result<Vec<u32>, ProcfsError> {
    let dir = fs::read_dir("/proc").map_err(|e| read_error("/proc", e))?;
    let mut pids = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| read_error("/proc", e))?;
        if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// `pid`'s arguments (`/proc/<pid>/cmdline`); empty for a zombie or a kernel
/// thread, whose memory is gone or never was. `Ok(None)` when `pid` does not
/// exist.
pub fn cmdline(pid: u32) -> Result<Option<Vec<OsString>>, ProcfsError> {
    Ok(read(&format!("/proc/{pid}/cmdline"))?.map(|bytes| nul_separated(&bytes)))
}

/// `pid`'s resident memory in bytes (the second field of `/proc/<pid>/statm`,
/// in pages); `None` when it cannot be read (the process is gone).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// `pid`'s address space in bytes, everything it maps (the first field of
/// `/proc/<pid>/statm`, in pages: `VmSize`); `None` when it cannot be read.
pub fn vm_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// `pid`'s environment as `NAME=value` entries (`/proc/<pid>/environ`), as it
/// was at its last `execve` (later `setenv` calls are not seen). `Ok(None)` when
/// `pid` does not exist; an error when it is not ours to read (`EACCES`).
pub fn environ(pid: u32) -> Result<Option<Vec<OsString>>, ProcfsError> {
    Ok(read(&format!("/proc/{pid}/environ"))?.map(|bytes| nul_separated(&bytes)))
}

fn nul_separated(bytes: &[u8]) -> Vec<OsString> {
    bytes
        .split(|&b| b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| OsString::from_vec(part.to_vec()))
        .collect()
}

fn numbers(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.split(u8::is_ascii_whitespace)
        .filter_map(|n| std::str::from_utf8(n).ok()?.parse().ok())
}

/// One file, whole; `None` if the process behind it is gone.
fn read(path: &str) -> Result<Option<Vec<u8>>, ProcfsError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(source) => Err(read_error(path, source)),
    }
}

/// `ENOENT`: no such process (or thread); `ESRCH`: it was reaped after the file
/// was opened.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn read_error(path: &str, source: io::Error) -> ProcfsError {
    ProcfsError::Read {
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    const SLEEP: &str = "3 (sleep) S 1 3 3 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 777 1000 200";

    #[test]
    fn parses_a_plain_line() {
        let s = parse_stat(SLEEP.as_bytes()).unwrap();
        assert_eq!(
            (s.pid, s.comm.as_str(), s.state),
            (3, "sleep", State::Sleeping)
        );
        assert_eq!(
            (s.ppid, s.pgrp, s.session, s.tpgid),
            (1, Some(3), Some(3), None)
        );
        assert_eq!((s.num_threads, s.start_time), (1, 777));
    }

    /// What the kernel really prints for a process that its parent has just
    /// reaped, while it is being released (seen in this crate's own tests).
    #[test]
    fn a_released_process_has_no_group_or_session() {
        let line = "25181 (g_a_parent_sigk) X 0 -1 -1 0 -1 4228172 73 0 0 0 0 0 0 0 20 0 0 0 \
                    126039 0 0 0 0 0 0 0 0 0 0 0 0 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 9\n";
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!((s.state, s.ppid, s.num_threads), (State::Dead, 0, 0));
        assert_eq!((s.pgrp, s.session, s.tpgid), (None, None, None));
        assert_eq!(s.start_time, 126039);
        let line = line.replace("X 0 -1 -1", "X 0 -2 -1");
        assert_eq!(parse_stat(line.as_bytes()).unwrap_err().field, "pgrp");
    }

    #[test]
    fn a_comm_with_parens_and_spaces_is_read_from_the_last_paren() {
        let line = "7 () (x) y ) Z 3 4 5 34816 9 0 0 0 0 0 0 0 0 0 20 0 6 0 99 0 0";
        let s = parse_stat(line.as_bytes()).unwrap();
        assert_eq!(s.comm, ") (x) y ");
        assert!(s.is_zombie() && s.state.has_ended());
        assert_eq!(
            (s.ppid, s.pgrp, s.session, s.tpgid),
            (3, Some(4), Some(5), Some(9))
        );
        assert_eq!((s.num_threads, s.start_time), (6, 99));
    }

    #[test]
    fn a_comm_that_is_not_utf8_is_not_an_error() {
        let mut line = b"8 (\xff\xfe) R 1 8 8 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0".to_vec();
        let s = parse_stat(&line).unwrap();
        assert_eq!(
            (s.comm.as_str(), s.state),
            ("\u{fffd}\u{fffd}", State::Running)
        );
        line.truncate(10);
        assert_eq!(parse_stat(&line).unwrap_err().field, "pgrp");
    }

    #[test]
    fn every_state_letter_round_trips() {
        for c in "RSDZTtXIPKW?".chars() {
            assert_eq!(State::from_char(c).as_char(), c);
        }
        assert_eq!(State::from_char('x'), State::Dead);
        assert_eq!(State::from_char('?'), State::Other('?'));
        assert_eq!(State::TracingStop.to_string(), "t");
    }

    #[test]
    fn malformed_lines_name_the_field() {
        let field = |line: &str| parse_stat(line.as_bytes()).unwrap_err().field;
        assert_eq!(field(""), "comm");
        assert_eq!(field("12 noparen S 1"), "comm");
        assert_eq!(field("12 ) (x S 1"), "comm");
        assert_eq!(field("x (a) S 1 2 3"), "pid");
        assert_eq!(field("1 (a) SS 1 2 3"), "state");
        assert_eq!(field("1 (a)"), "state");
        assert_eq!(field("1 (a) S -4 2 3"), "ppid");
        assert_eq!(field("1 (a) S 1 x 3"), "pgrp");
        assert_eq!(field(&SLEEP[..SLEEP.len() - 13]), "starttime");
    }

    #[test]
    fn sees_itself() {
        let me = std::process::id();
        let s = stat(me).unwrap().unwrap();
        assert_eq!((s.pid, s.ppid), (me, crate::sys::getppid()));
        let own = stat_self().unwrap();
        assert_eq!((own.pid, own.start_time), (me, s.start_time));
        // Our own argument area is shown to us.
        assert!(own.arg_area.is_some_and(|(start, end)| start < end));
        assert!(pids().unwrap().contains(&me));
    }

    #[test]
    fn a_missing_process_is_none_not_an_error() {
        // Above the kernel's pid_max limit (2^22): never a pid.
        let pid = (1 << 22) + 1;
        assert!(stat(pid).unwrap().is_none());
        assert!(children(pid).unwrap().is_none());
        assert!(children_by_scan(pid).unwrap().is_none());
        assert!(cmdline(pid).unwrap().is_none());
        assert!(environ(pid).unwrap().is_none());
    }

    /// A child that runs `sleep` under the name `) (a b`: its stat is read from
    /// the last `)`, its parent is us; after SIGKILL and before `wait`, it is a
    /// zombie; once reaped, it is gone.
    #[test]
    fn a_real_child_then_its_zombie_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join(") (a b");
        let sleep = ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sleep(1)");
        std::os::unix::fs::symlink(sleep, &odd).unwrap();
        let mut child = Command::new(&odd)
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let pidfd = crate::sys::pidfd::open(pid).unwrap();
        // comm changes early in execve, the argument area a little later: wait
        // for both (not for time).
        let ours = stat_self().unwrap().comm;
        let running = loop {
            let s = stat(pid).unwrap().unwrap();
            if s.comm != ours && cmdline(pid).unwrap().is_some_and(|c| !c.is_empty()) {
                break s;
            }
            std::thread::yield_now();
        };
        assert_eq!(running.comm, ") (a b");
        assert_eq!(running.ppid, std::process::id());
        // (D for a moment while execve finishes loading the program.)
        assert!(matches!(
            running.state,
            State::Running | State::Sleeping | State::DiskSleep
        ));
        assert_eq!(
            cmdline(pid).unwrap().unwrap(),
            [odd.as_os_str(), "30".as_ref()]
        );
        assert!(
            children(std::process::id())
                .unwrap()
                .unwrap()
                .contains(&pid)
        );

        child.kill().unwrap();
        let exited = crate::sys::pidfd::wait_exited(pidfd.as_fd(), Some(Duration::from_secs(10)));
        assert!(exited.unwrap(), "SIGKILLed child still running");
        let zombie = stat(pid).unwrap().unwrap();
        assert_eq!(zombie.state, State::Zombie);
        assert_eq!(zombie.start_time, running.start_time);
        assert_eq!(cmdline(pid).unwrap().unwrap(), Vec::<OsString>::new());

        child.wait().unwrap();
        assert_eq!(stat(pid).unwrap(), None);
    }

    /// A child belongs to the thread that made it: `children` must read every
    /// thread's list, and the scan must agree with it.
    #[test]
    fn children_made_by_another_thread_are_listed() {
        let me = std::process::id();
        let spawn = || Command::new("sleep").arg("30").spawn().unwrap();
        let mut here = spawn();
        let (there_tx, there_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        // The thread stays alive while we look, so its child stays its own.
        let thread = std::thread::spawn(move || {
            there_tx.send(spawn()).unwrap();
            let _ = done_rx.recv();
        });
        let mut there = there_rx.recv().unwrap();
        let listed = children(me).unwrap().unwrap();
        let scanned = children_by_scan(me).unwrap().unwrap();
        for pid in [here.id(), there.id()] {
            assert!(listed.contains(&pid), "{pid} not in {listed:?}");
            assert!(scanned.contains(&pid), "{pid} not in {scanned:?}");
        }
        assert!(listed.is_sorted() && scanned.is_sorted());
        for child in [&mut here, &mut there] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        drop(done_tx);
        thread.join().unwrap();
    }

    #[test]
    fn environ_holds_what_the_child_was_given() {
        let mut child = Command::new("sleep")
            .arg("30")
            .env("BROOD_PROCFS_TEST", "a b=c")
            .spawn()
            .unwrap();
        let pid = child.id();
        let want = OsString::from("BROOD_PROCFS_TEST=a b=c");
        // The environment is the child's own only after its execve: see the
        // new command line first, then read the environment (read the other
        // way round, an exec between the two reads gave the old one).
        while cmdline(pid)
            .unwrap()
            .unwrap()
            .first()
            .is_none_or(|a| a != "sleep")
        {
            std::thread::yield_now();
        }
        let seen = environ(pid).unwrap().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.contains(&want), "{seen:?}");
    }
}
