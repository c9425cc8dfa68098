//! Who `brood run` answers for, and ending them: every descendant (found through
//! `/proc`, whatever its group or session), or — as PID 1 of a pid namespace —
//! every process in the namespace.
//!
//! Descendants are signalled through pidfds opened after checking the process's
//! start time, so a pid reused meanwhile is never hit. When `/proc` belongs to
//! another pid namespace (`unshare --pid` without `--mount-proc`) its pids mean
//! nothing here: PID 1 then uses `kill(-1)`, anyone else the command's group.

use super::reap;
use super::verbose::Log;
use crate::procfs::{self, Stat};
use crate::sys::{kill, poll, signalfd::SignalFd};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long SIGKILLed processes get to disappear before brood run stops
/// waiting for them (a process in uninterruptible sleep can take a while).
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Longest pause between two looks at who is left (new processes may appear).
const RESCAN: Duration = Duration::from_millis(100);
/// At most this many pidfds are polled at once; the rest are seen at rescan.
const MAX_POLLED: usize = 256;

/// The processes `brood run` answers for.
#[derive(Copy, Clone, Debug)]
pub struct Scope {
    me: u32,
    /// PID 1 of a pid namespace.
    pub pid1: bool,
    /// `/proc` shows our pid namespace.
    pub procfs: bool,
}

impl Scope {
    /// Looks at ourselves now.
    pub fn detect() -> Scope {
        let me = std::process::id();
        let procfs = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str()?.parse::<u32>().ok())
            == Some(me);
        Scope {
            me,
            pid1: me == 1,
            procfs,
        }
    }

    /// Every process still running (not a zombie) that we answer for.
    pub fn living(&self) -> Vec<Stat> {
        if !self.procfs {
            return Vec::new();
        }
        let snap = procfs::snapshot();
        let pids: Vec<u32> = if self.pid1 {
            snap.keys().copied().filter(|&p| p != self.me).collect()
        } else {
            procfs::descendants(&snap, self.me)
        };
        pids.into_iter()
            .filter_map(|pid| snap.get(&pid).cloned())
            .filter(|s| !s.is_zombie())
            .collect()
    }

    /// Is anyone left? `group` is the command's process group, the only thing
    /// we can see without a `/proc` of ours when we are not PID 1.
    pub fn anyone_left(&self, group: u32) -> bool {
        if self.procfs {
            !self.living().is_empty()
        } else if self.pid1 {
            kill::anyone_else()
        } else {
            brood::os::group_exists(group)
        }
    }

    /// Sends `sig` to everyone left; returns how many were found.
    pub fn signal_all(&self, sig: i32, group: u32) -> usize {
        let living = self.living();
        if self.pid1 {
            let _ = kill::everyone(sig);
        } else if self.procfs {
            if let Some(sig) = brood::Signal::from_raw(sig) {
                for s in &living {
                    signal_checked(s, sig);
                }
            }
        } else {
            let _ = kill::group(group, sig);
        }
        living.len()
    }
}

/// Sends `sig` to the process `s` described, if it is still that process: the
/// pidfd is opened first and the start time checked after, so a pid reused
/// between the snapshot and the signal is never hit.
pub(crate) fn signal_checked(s: &Stat, sig: brood::Signal) {
    if let Some(fd) = open_checked(s) {
        let _ = fd.send_signal(sig);
    }
}

/// A pidfd for `s`, if it is still the same process (same start time).
fn open_checked(s: &Stat) -> Option<brood::os::PidFd> {
    let fd = brood::os::PidFd::open(s.pid).ok()?;
    procfs::stat(s.pid)
        .is_some_and(|now| now.starttime == s.starttime)
        .then_some(fd)
}

/// Ending the processes left, while still reaping orphans and passing on
/// signals.
pub struct Ending<'a> {
    /// Whom.
    pub scope: Scope,
    /// The command's group (see [`Scope::anyone_left`]).
    pub group: u32,
    /// The command while it may still run: its status is the library's, never
    /// reaped here.
    pub command: Option<u32>,
    /// Signals keep arriving meanwhile.
    pub signals: &'a SignalFd,
    /// Where decisions are told.
    pub log: Log,
}

impl Ending<'_> {
    /// SIGTERM to everyone left, then SIGKILL to whoever is still there after
    /// `grace`. Returns once nobody is left (or SIGKILL did not help within a
    /// few seconds: a process stuck in the kernel).
    pub fn end(&self, grace: Duration) {
        if !self.scope.anyone_left(self.group) {
            return;
        }
        let n = self.scope.signal_all(libc::SIGTERM, self.group);
        self.log.decision(format_args!(
            "SIGTERM to the {n} process(es) left; SIGKILL after {grace:?}"
        ));
        if self.wait_gone(Some(Instant::now() + grace)) {
            return;
        }
        let n = self.scope.signal_all(libc::SIGKILL, self.group);
        self.log.decision(format_args!(
            "escalation: SIGKILL to {n} process(es) left after the grace"
        ));
        let deadline = Instant::now() + KILL_WAIT;
        while !self.wait_gone(Some(deadline.min(Instant::now() + RESCAN))) {
            if Instant::now() >= deadline {
                self.log.notice(format_args!(
                    "processes left even after SIGKILL; giving up on them"
                ));
                return;
            }
            self.scope.signal_all(libc::SIGKILL, self.group);
        }
    }

    /// Waits until nobody is left or `deadline` passes (true: nobody left).
    /// Orphans are reaped as they end; a signal received meanwhile is sent on
    /// to everyone left (a second Ctrl-C reaches them too), except the
    /// job-control ones.
    pub fn wait_gone(&self, deadline: Option<Instant>) -> bool {
        loop {
            self.reap();
            if !self.scope.anyone_left(self.group) {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let left = deadline.map_or(RESCAN, |d| (d - now).min(RESCAN));
            let pidfds: Vec<OwnedFd> = self
                .scope
                .living()
                .iter()
                .take(MAX_POLLED)
                .filter_map(open_checked)
                .map(OwnedFd::from)
                .collect();
            let mut fds = vec![self.signals.as_fd()];
            fds.extend(pidfds.iter().map(|fd| fd.as_fd()));
            let _ = poll::readable(&fds, Some(left));
            while let Ok(Some(got)) = self.signals.read() {
                // Our own SIGPIPE (stderr's reader is gone) is not sent on.
                if got.signo == libc::SIGCHLD
                    || super::signals::is_job_control(got.signo)
                    || super::signals::is_own(&got)
                {
                    continue;
                }
                let n = self.scope.signal_all(got.signo, self.group);
                self.log.decision(format_args!(
                    "got {} from pid {}; sent to the {n} process(es) left",
                    super::signals::name(got.signo),
                    got.pid
                ));
            }
        }
    }

    fn reap(&self) {
        reap::orphans(self.command, &self.log);
    }
}
