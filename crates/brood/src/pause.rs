//! [`Child::suspend`] and [`Child::resume`]: pausing a child's whole tree —
//! its cgroup frozen with [`Tree::Cgroup`], its process group stopped with
//! SIGSTOP otherwise, the child alone with [`Tree::Own`].

use crate::child::Child;
use crate::error::{Error, Result};
use crate::policy::Tree;
use crate::signal::Signal;
use crate::sys::{cgroup, procfs};
use std::time::{Duration, Instant};

/// How long `suspend` waits for every member to stop (a process in an
/// uninterruptible sleep stops only when it leaves it).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// How often `/proc` is read again while members are still stopping (a
/// stop is not announced on any descriptor).
const STOP_TICK: Duration = Duration::from_micros(200);

impl Child {
    /// Pauses the child's tree and returns once every member is paused:
    ///
    /// - [`Tree::Cgroup`]: writes `cgroup.freeze` and waits until
    ///   `cgroup.events` says `frozen 1`. Atomic: a process forked meanwhile,
    ///   or that left the process group, is frozen too. Frozen processes show
    ///   state `S` in `/proc`, and take no signal but SIGKILL until thawed.
    /// - [`Tree::Group`] / [`Tree::Session`]: SIGSTOP to the process group,
    ///   then waits until `/proc` shows every member stopped (`T`). A member
    ///   that moved to another group is not reached.
    /// - [`Tree::Own`]: SIGSTOP to the child alone, then waits for its `T`.
    ///
    /// [`wait`](Child::wait) and [`kill`](Child::kill) keep working on a
    /// paused child; SIGTERM (so [`terminate`](Child::terminate)) is held
    /// until [`resume`](Child::resume), as for any stopped process. The
    /// timeouts of waits on it — [`wait_timeout`](Child::wait_timeout),
    /// [`terminate_timeout`](Child::terminate_timeout)'s grace,
    /// `Popen::communicate`'s — are the caller's time and run on while it
    /// is paused; a pool's task timeouts do not (see
    /// [`Pool::suspend`](crate::Pool::suspend)).
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Command, Tree};
    /// let child = Command::new("sleep").arg("30").tree(Tree::Group).spawn()?;
    /// child.child().suspend()?;
    /// let state = brood::os::procfs::stat(child.pid())?.unwrap().state;
    /// assert_eq!(state.as_char(), 'T');
    /// child.child().resume()?;
    /// child.kill()?;
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn suspend(&self) -> Result<()> {
        suspend_all(std::slice::from_ref(self))
    }

    /// Resumes a tree paused by [`suspend`](Child::suspend): thaws its
    /// cgroup (waiting until `cgroup.events` says `frozen 0`), or sends
    /// SIGCONT to its group or to it alone.
    pub fn resume(&self) -> Result<()> {
        let pid = self.pid();
        match self.policy().tree {
            Tree::Cgroup => {
                let deadline = Instant::now() + STOP_WAIT;
                match crate::cgroups::freeze(pid, false, deadline) {
                    Some(done) => done.map_err(|e| Error::os("thawing the child's cgroup", pid, e)),
                    None => self.signal_tree(Signal::CONT),
                }
            }
            Tree::Group | Tree::Session => self.signal_tree(Signal::CONT),
            Tree::Own => self.send_signal(Signal::CONT),
        }
    }

    /// Sends the stop (or starts the freeze) without waiting for it.
    fn begin_stop(&self) -> Result<Stopping> {
        let pid = self.pid();
        let tree = self.policy().tree;
        if tree == Tree::Cgroup
            && let Some(dir) = crate::cgroups::dir(pid)
        {
            return cgroup::freeze(&dir, true)
                .map(|()| Stopping::Cgroup(dir))
                .map_err(|e| Error::os("freezing the child's cgroup", pid, e));
        }
        // Without its cgroup (reaped) what is left of a cgroup tree is its group.
        if tree == Tree::Own {
            self.send_signal(Signal::STOP)?;
            Ok(Stopping::Own)
        } else {
            self.signal_tree(Signal::STOP)?;
            Ok(Stopping::Group)
        }
    }

    /// Waits until the stop begun by [`begin_stop`](Child::begin_stop) took.
    fn finish_stop(&self, how: &Stopping, deadline: Instant) -> Result<()> {
        let pid = self.pid();
        match how {
            Stopping::Cgroup(dir) => match cgroup::wait_frozen(dir, true, deadline) {
                Ok(true) => Ok(()),
                Ok(false) => Err(Error::os(
                    "freezing the child's cgroup",
                    pid,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "cgroup.events did not change in time",
                    ),
                )),
                Err(e) => Err(Error::os("freezing the child's cgroup", pid, e)),
            },
            Stopping::Group => wait_stopped(pid, deadline, || groups_stopped(&[pid])),
            Stopping::Own => wait_stopped(pid, deadline, || Some(stopped(pid))),
        }
    }
}

/// How a child's tree is being stopped.
enum Stopping {
    /// Its cgroup is freezing.
    Cgroup(std::path::PathBuf),
    /// SIGSTOP went to its process group.
    Group,
    /// SIGSTOP went to it alone.
    Own,
}

/// Pauses the trees of `children` together, as [`Child::suspend`] does one:
/// every stop is sent first, then each is waited for, so that the stops
/// overlap (a pool's workers stop in about the time one takes). Returns
/// once every tree is paused; the first error, if any, after trying all.
pub(crate) fn suspend_all(children: &[Child]) -> Result<()> {
    let deadline = Instant::now() + STOP_WAIT;
    let mut first_err = None;
    let begun: Vec<(&Child, Stopping)> = children
        .iter()
        .filter_map(|c| {
            c.begin_stop()
                .map_err(|e| first_err.get_or_insert(e))
                .ok()
                .map(|s| (c, s))
        })
        .collect();
    // The groups are read from `/proc` together: one walk per look, not one
    // per group.
    let groups: Vec<u32> = begun
        .iter()
        .filter(|(_, how)| matches!(how, Stopping::Group))
        .map(|(c, _)| c.pid())
        .collect();
    if let Some(&first) = groups.first()
        && let Err(e) = wait_stopped(first, deadline, || groups_stopped(&groups))
    {
        first_err.get_or_insert(e);
    }
    for (c, how) in &begun {
        if matches!(how, Stopping::Group) {
            continue;
        }
        if let Err(e) = c.finish_stop(how, deadline) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Waits until `done` says yes (`None`: cannot tell, give up waiting).
fn wait_stopped(pid: u32, deadline: Instant, done: impl Fn() -> Option<bool>) -> Result<()> {
    loop {
        match done() {
            Some(true) | None => return Ok(()),
            Some(false) => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::os(
                "suspend: waiting for the tree to stop",
                pid,
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        std::thread::sleep(STOP_TICK);
    }
}

/// Stopped, or ended (an ended process runs no more either). A read that
/// fails (as one may while the process is in `execve`) is not an answer.
fn stopped(pid: u32) -> bool {
    match procfs::stat(pid) {
        Ok(Some(s)) => s.state.as_char() == 'T' || s.state.has_ended(),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Whether every member of the groups `pgids` is stopped or ended; `None`
/// when `/proc` cannot be read.
fn groups_stopped(pgids: &[u32]) -> Option<bool> {
    let members = crate::group::members_of_any(pgids).ok()?;
    // A process that could not be read may be a member still running.
    Some(members.iter().all(|m| {
        m.as_ref()
            .is_ok_and(|s| s.state.as_char() == 'T' || s.state.has_ended())
    }))
}
