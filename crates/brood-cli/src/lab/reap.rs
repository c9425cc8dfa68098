//! The lab's reaper and its process hygiene: subreaper, reaping, cleanup.
//!
//! The lab marks itself a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`,
//! Linux 3.4), so every orphan of every scenario is re-parented to the lab
//! rather than to init: none escapes, and the observer can see the re-parenting.
//! One thread owns every wait of the lab (`waitpid(-1)`), recording each exit
//! with its time, so adopted orphans never stay zombies and the observer learns
//! exact exit times and statuses of the scenario parents.
//!
//! Because that thread reaps everything, nothing else in the lab may wait for a
//! child once it runs: scenario parents are spawned with `std::process::Command`
//! (which uses `posix_spawn` and does not wait) and their handles are never waited on.
//!
//! # References
//! - prctl(2) `PR_SET_CHILD_SUBREAPER`; waitpid(2); kill(2)

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::procfs;
use crate::sys;
use crate::sys::wait::Waited;

/// How a process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl Ended {
    fn from_raw(status: i32) -> Self {
        if libc::WIFSIGNALED(status) {
            Ended::Signaled(libc::WTERMSIG(status))
        } else {
            Ended::Exited(libc::WEXITSTATUS(status))
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Exited(c) => write!(f, "exit {c}"),
            Ended::Signaled(s) => write!(f, "killed by {}", signal_name(*s)),
        }
    }
}

/// `SIGTERM` for 15, and so on for the signals the lab uses.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGCHLD => "SIGCHLD".into(),
        other => format!("signal {other}"),
    }
}

struct Book {
    ended: Mutex<HashMap<u32, Vec<(Instant, Ended)>>>,
    changed: Condvar,
}

fn book() -> &'static Book {
    static BOOK: OnceLock<Book> = OnceLock::new();
    BOOK.get_or_init(|| Book {
        ended: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
    })
}

/// Errors setting up the lab's process hygiene.
#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    /// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(std::io::Error),
    /// The reaper thread could not start.
    #[error("cannot start the reaper thread: {0}")]
    Thread(std::io::Error),
}

/// Makes the lab a subreaper and starts the reaper thread (once).
pub fn start() -> Result<(), ReapError> {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.get().is_some() {
        return Ok(());
    }
    brood::os::set_child_subreaper(true).map_err(ReapError::Subreaper)?;
    std::thread::Builder::new()
        .name("lab-reaper".into())
        .spawn(reap_forever)
        .map_err(ReapError::Thread)?;
    let _ = STARTED.set(());
    Ok(())
}

fn reap_forever() {
    loop {
        if let Ok(Waited::Reaped(pid, status)) = sys::wait::waitpid(-1, true) {
            let b = book();
            let mut ended = b.ended.lock().unwrap_or_else(|e| e.into_inner());
            ended
                .entry(pid)
                .or_default()
                .push((Instant::now(), Ended::from_raw(status)));
            b.changed.notify_all();
        } else {
            // ECHILD (no children right now) or EINTR: a blocking waitpid would
            // return at once again, so pause briefly instead of spinning.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// How `pid` ended, if the lab reaped a process with that pid at or after `since`.
pub fn ended(pid: u32, since: Instant) -> Option<(Instant, Ended)> {
    let ended = book().ended.lock().unwrap_or_else(|e| e.into_inner());
    ended.get(&pid)?.iter().find(|(t, _)| *t >= since).copied()
}

/// Sends `sig` to `pid`; false when the process does not exist.
pub fn kill(pid: u32, sig: i32) -> bool {
    sys::signal::kill(pid, sig)
}

/// SIGKILLs every process in `pids` and their descendants, then waits (up to
/// `budget`) until each is gone from `/proc` (reaped, by the lab or by its parent).
/// Returns the pids that could not be made to disappear.
pub fn kill_and_wait(mut pids: Vec<(u32, u64)>, budget: Duration) -> Vec<u32> {
    let deadline = Instant::now() + budget;
    loop {
        for (pid, start) in &pids {
            if matches!(procfs::stat(*pid), Some(s) if s.starttime == *start && !s.is_zombie()) {
                kill(*pid, libc::SIGKILL);
            }
        }
        pids.retain(|(pid, start)| matches!(procfs::stat(*pid), Some(s) if s.starttime == *start));
        if pids.is_empty() || Instant::now() >= deadline {
            return pids.into_iter().map(|(p, _)| p).collect();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every process below the lab right now, with its start time.
pub fn lab_descendants() -> Vec<(u32, u64)> {
    let snap = procfs::snapshot();
    procfs::descendants(&snap, std::process::id())
        .into_iter()
        .filter_map(|pid| snap.get(&pid).map(|s| (pid, s.starttime)))
        .collect()
}

/// Kills every descendant of the lab, repeatedly until none is left (a process
/// may fork while we kill its siblings). Returns the pids that remained.
pub fn kill_all_descendants(budget: Duration) -> Vec<u32> {
    let deadline = Instant::now() + budget;
    loop {
        let left = lab_descendants();
        if left.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        if now >= deadline {
            return left.into_iter().map(|(p, _)| p).collect();
        }
        kill_and_wait(left, (deadline - now).min(Duration::from_millis(500)));
    }
}
