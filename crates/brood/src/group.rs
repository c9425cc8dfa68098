//! A child's process group after its leader has ended: who of it still
//! lives, waiting until nobody does, and reaping the members that became
//! our own children.
//!
//! Two facts of the kernel carry this module. A process group's id stays
//! reserved while any process (a zombie included) has it as its group, so
//! the number can be given out again only once the group is empty; and
//! `kill(-pgid, 0)` counts zombies as members. So "is anyone left?" is
//! answered from `/proc` (members whose state is not `Z`), and members that
//! were re-parented to us — this process is a subreaper, or PID 1 — are
//! reaped here: nobody else would, and each would keep the group "alive".

use crate::sys::procfs::{ProcfsError, Stat};
use crate::sys::{self, pidfd, procfs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How often to ask again where `/proc` cannot tell us (it shows another pid
/// namespace than ours): `kill(-pgid, 0)`, zombies included.
const BLIND_TICK: Duration = Duration::from_millis(5);

/// The processes of group `pgid` as `/proc` shows them now, zombies
/// included: each member's stat, and an `Err` for each process whose stat
/// could not be read (it may or may not be a member). `Err` as a whole when
/// `/proc` cannot be listed. One walk of `/proc` that stops, usage and the
/// group's end all read.
pub(crate) fn members(pgid: u32) -> Result<Vec<Result<Stat, ProcfsError>>, ProcfsError> {
    members_of_any(&[pgid])
}

/// As [`members`], for the members of any of the groups `pgids` (one walk
/// for them all: a pool's workers stop together).
pub(crate) fn members_of_any(pgids: &[u32]) -> Result<Vec<Result<Stat, ProcfsError>>, ProcfsError> {
    let mut found = Vec::new();
    for pid in procfs::pids()? {
        match procfs::stat(pid) {
            Ok(Some(s)) if s.pgrp.is_some_and(|g| pgids.contains(&g)) => found.push(Ok(s)),
            Ok(_) => {}
            Err(e) => found.push(Err(e)),
        }
    }
    Ok(found)
}

/// The members of group `pgid` that have not ended, after reaping those
/// that ended as our own children (`brood_child` says which pids are brood's
/// registered children: those are left to their own waits). `None` when
/// `/proc` does not show our pid namespace.
fn living_members(pgid: u32, brood_child: &dyn Fn(u32) -> bool) -> Option<Vec<u32>> {
    let me = std::process::id();
    if procfs::stat_self().ok()?.pid != me {
        return None;
    }
    let mut living = Vec::new();
    for s in members(pgid).ok()?.into_iter().flatten() {
        if !s.state.has_ended() {
            living.push(s.pid);
        } else if s.ppid == me && !brood_child(s.pid) {
            // An orphan of the group, given to us as subreaper: ours to reap.
            sys::reap::reap_ended_own(s.pid);
        }
    }
    Some(living)
}

/// Waits until no member of group `pgid` is alive (zombies do not count; the
/// ones that are ours are reaped) or `deadline` passes; true if the group
/// ended. Woken by the members' pidfds, so it returns within a scan of
/// `/proc` of the last member's end.
pub(crate) fn wait_gone(pgid: u32, deadline: Instant, brood_child: &dyn Fn(u32) -> bool) -> bool {
    loop {
        if !sys::pgrp::group_exists(pgid) {
            return true;
        }
        let Some(living) = living_members(pgid, brood_child) else {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(BLIND_TICK);
            continue;
        };
        if living.is_empty() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        // A pidfd per member, checked after opening: a pid that ended and
        // was reused between the scan and the open is not waited for.
        let fds: Vec<_> = living
            .into_iter()
            .filter_map(|pid| {
                let fd = pidfd::open(pid).ok()?;
                let same = procfs::stat(pid)
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.pgrp == Some(pgid));
                same.then_some(fd)
            })
            .collect();
        if fds.is_empty() {
            continue;
        }
        let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
        // Any member's end (or a new member forked meanwhile, found by the
        // next scan once a watched one ends) sends us round again.
        let _ = pidfd::wait_any(&borrowed, Some(left));
    }
}

/// Whether group `pgid`, whose leader brood has reaped, is known to be gone
/// for good. A process now holding the leader's pid proves it: the kernel
/// gives a group's number out again only once the group is empty, so that
/// process (and any group it leads) is somebody else's.
pub(crate) fn leader_pid_reused(pgid: u32) -> bool {
    sys::pid_exists(pgid)
}
