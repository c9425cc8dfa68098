//! [`Child::usage`]: what a child's whole tree uses — CPU time, resident
//! memory now and at its peak, how many processes — from its cgroup with
//! [`Tree::Cgroup`], summed from `/proc` otherwise.

use crate::child::Child;
use crate::error::Result;
use crate::policy::Tree;
use crate::sys::{cgroup, usage};
use std::time::Duration;

/// Where a [`Usage`]'s figures come from, which says how exact they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Counted {
    /// The child's cgroup ([`Tree::Cgroup`]): CPU time from `cpu.stat`
    /// counts every process that ever ran in it, reaped or not, however it
    /// left the process group; memory from `memory.current`/`memory.peak`
    /// where the memory controller is enabled, else summed from `/proc` as
    /// for a group.
    Cgroup,
    /// The child's process group ([`Tree::Group`], [`Tree::Session`]),
    /// summed from `/proc` over its members now: each one's CPU time plus
    /// that of the children it waited for. A member that ended and was
    /// reaped by a process outside the group (an orphan reaped by init) is
    /// lost, and so is one that left the group.
    Group,
    /// The child alone ([`Tree::Own`]): its CPU time plus its waited-for
    /// children's, its memory.
    Process,
}

/// How much the tasks of a cgroup waited for one resource (the kernel's
/// pressure stall information): `some` is the share of time at least one
/// task was stalled, `full` the share when all non-idle tasks were at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    /// At least one task stalled.
    pub some: StallLine,
    /// Every non-idle task stalled at once (`None` where the kernel does
    /// not report it).
    pub full: Option<StallLine>,
}

/// The share of time stalled, in percent, averaged over the last 10 s, 60 s
/// and 300 s, and the total time stalled since the cgroup was made.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StallLine {
    /// Percent of the last 10 s.
    pub avg10: f64,
    /// Percent of the last 60 s.
    pub avg60: f64,
    /// Percent of the last 300 s.
    pub avg300: f64,
    /// Time stalled in all.
    pub total: Duration,
}

impl From<usage::RawStall> for StallLine {
    fn from(r: usage::RawStall) -> StallLine {
        StallLine {
            avg10: r.avg10,
            avg60: r.avg60,
            avg300: r.avg300,
            total: r.total,
        }
    }
}

/// The pressure figures of a cgroup ([`Tree::Cgroup`] only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pressure {
    /// Waiting for a CPU (`cpu.pressure`).
    pub cpu: Stall,
    /// Waiting for memory: reclaim, swap-in, refaults (`memory.pressure`).
    pub memory: Stall,
    /// Waiting for I/O (`io.pressure`).
    pub io: Stall,
}

/// What a child's tree has used (see [`Child::usage`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Usage {
    /// CPU time in user mode, the tree's processes together.
    pub user: Duration,
    /// CPU time in the kernel on their behalf.
    pub system: Duration,
    /// Resident memory now, in bytes: the sum of the living members'
    /// `VmRSS` (shared pages count once per process), or the cgroup's
    /// `memory.current` (page cache included) when it is counted.
    pub rss: u64,
    /// Resident memory at its peak, in bytes: the sum of the living
    /// members' own peaks (`VmHWM`) — more than the tree ever held at one
    /// moment if their peaks did not coincide, and without members that
    /// ended — or the cgroup's `memory.peak` when it is counted (exact).
    pub peak_rss: u64,
    /// Processes in the tree now (zombies not counted).
    pub processes: usize,
    /// Where the figures come from.
    pub counted: Counted,
    /// With [`Tree::Cgroup`], what its tasks waited for (`None` without a
    /// cgroup, or where the kernel keeps no pressure figures).
    pub pressure: Option<Pressure>,
}

impl Child {
    /// What the child's whole tree has used so far (see [`Usage`] and
    /// [`Counted`] for what each figure means and how exact it is). Once
    /// the child has ended, only what is left of its tree is counted (with
    /// a cgroup, the CPU time of every process that ran in it, until the
    /// cgroup is removed).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Ready, Tree};
    /// use std::time::Duration;
    /// let child = Command::new("sh")
    ///     .args(["-c", "sleep 30 & sleep 30 & echo up; wait"])
    ///     .tree(Tree::Group)
    ///     .spawn_ready(Ready::Stdout("up".into()), Duration::from_secs(10))?;
    /// let usage = child.child().usage()?;
    /// assert_eq!(usage.processes, 3);
    /// assert!(usage.rss > 0 && usage.peak_rss >= usage.rss);
    /// child.kill()?;
    /// child.wait()?;
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn usage(&self) -> Result<Usage> {
        let pid = self.pid();
        let cgroup_dir = match self.policy().tree {
            Tree::Cgroup => crate::cgroups::dir(pid),
            _ => None,
        };
        if let Some(dir) = cgroup_dir {
            let members = cgroup::members(&dir);
            let mut u = sum(members.iter().copied(), Counted::Cgroup);
            if let Some((user, system)) = usage::cgroup_cpu(&dir) {
                (u.user, u.system) = (user, system);
            }
            if let Some((current, peak)) = usage::cgroup_memory(&dir) {
                (u.rss, u.peak_rss) = (current, peak);
            }
            let stall = |name| {
                usage::cgroup_pressure(&dir, name).map(|(some, full)| Stall {
                    some: some.into(),
                    full: full.map(Into::into),
                })
            };
            u.pressure = match (stall("cpu"), stall("memory"), stall("io")) {
                (Some(cpu), Some(memory), Some(io)) => Some(Pressure { cpu, memory, io }),
                _ => None,
            };
            return Ok(u);
        }
        Ok(match self.policy().tree {
            Tree::Own => sum([pid].into_iter(), Counted::Process),
            _ => {
                let members = crate::group::members(pid).map_err(|e| {
                    crate::error::Error::io("reading /proc", std::io::Error::other(e))
                })?;
                let pids = members.into_iter().flatten().map(|s| s.pid);
                sum(pids, Counted::Group)
            }
        })
    }
}

/// The figures of `pids` added up.
fn sum(pids: impl Iterator<Item = u32>, counted: Counted) -> Usage {
    let mut u = Usage {
        user: Duration::ZERO,
        system: Duration::ZERO,
        rss: 0,
        peak_rss: 0,
        processes: 0,
        counted,
        pressure: None,
    };
    for pid in pids {
        let Some(p) = usage::process(pid) else {
            continue;
        };
        u.user += p.user + p.children_user;
        u.system += p.system + p.children_system;
        u.rss += p.rss;
        u.peak_rss += p.peak_rss;
        // A zombie runs no more: its CPU time counts, not the process.
        if !p.zombie {
            u.processes += 1;
        }
    }
    u
}
