//! [`Tree::Cgroup`](crate::Tree::Cgroup): each such child in a cgroup v2 of its
//! own, under a directory brood made (`brood-<pid>` inside this process's
//! cgroup). The child joins it itself before it runs anything (the clone
//! child before `execve`, a forked child before the function, a fork-server
//! child given the descriptor with its request), so every process it ever
//! starts is inside; `kill` is one write to `cgroup.kill`, which no `setsid`,
//! double fork or fork racing the kill escapes. The cgroup is removed when
//! the child has been reaped and the cgroup is empty.
//!
//! A cgroup can only be removed once it is empty, so one that a `Survive`
//! child still runs in outlives brood's process, whether it exits or is
//! SIGKILLed, and nobody is left to remove it when the child ends. The next
//! brood process to make its directory in the same cgroup removes what such
//! a dead process left: every empty cgroup in a `brood-<pid>` beside its own
//! whose owner is gone, then the directory. Each brood process holds a
//! `flock` on its own directory while it lives, so a directory whose lock is
//! free is a dead one's — whatever pid namespace either process is in, where
//! the pid in its name would say nothing.
//!
//! [`containment`] says what is in effect on this machine, and why.

use crate::policy::{Policy, Tree};
use crate::sys::cgroup;
use crate::sys::forklocal::ForkLocal;
use crate::{Error, Result};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

/// What containment this machine gives brood's children, as found.
///
/// ```
/// let c = brood::containment();
/// if c.cgroups {
///     // Tree::Cgroup works here: its cgroups go under this directory.
///     assert!(c.brood_dir.as_ref().unwrap().ends_with(format!("brood-{}", std::process::id())));
/// } else {
///     println!("no Tree::Cgroup here: {}", c.why);
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Containment {
    /// Whether [`Tree::Cgroup`](crate::Tree::Cgroup) can be used.
    pub cgroups: bool,
    /// Where cgroup v2 is mounted.
    pub mount: Option<PathBuf>,
    /// This process's cgroup (its path inside the hierarchy).
    pub own: Option<String>,
    /// The directory brood creates its cgroups in.
    pub brood_dir: Option<PathBuf>,
    /// Whether `cgroup.kill` exists (Linux 5.14): kill is one write.
    pub cgroup_kill: bool,
    /// The controllers available to brood's cgroups (`memory`, `pids`,
    /// `cpu`…: those this process's cgroup enables for its children; none
    /// where they are bound to a v1 hierarchy). [`Limits`](crate::Limits)'
    /// cgroup limits need them.
    pub controllers: Vec<String>,
    /// Why, in a sentence.
    pub why: String,
}

/// Finds out what containment brood can give its children here (without
/// creating anything).
pub fn containment() -> Containment {
    let mount = cgroup::mount();
    let own = cgroup::own();
    let mut c = Containment {
        cgroups: false,
        mount: mount.clone(),
        own: own.clone(),
        brood_dir: None,
        cgroup_kill: false,
        controllers: Vec::new(),
        why: String::new(),
    };
    let (Some(mount), Some(own)) = (mount, own) else {
        c.why = "no cgroup v2 hierarchy is mounted (no cgroup2 in /proc/self/mountinfo)".into();
        return c;
    };
    let here = mount.join(own.trim_start_matches('/'));
    // What brood's directory, a child of our cgroup, gets: the controllers
    // our cgroup enables for its children.
    c.controllers = std::fs::read_to_string(here.join("cgroup.subtree_control"))
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    // Non-root cgroups have cgroup.kill from Linux 5.14.
    c.cgroup_kill = kernel_at_least(5, 14);
    c.brood_dir = Some(here.join(format!("brood-{}", crate::sys::getpid())));
    let writable = rustix::fs::access(&here, rustix::fs::Access::WRITE_OK).is_ok();
    if !writable {
        c.why = format!(
            "this process may not create cgroups in its own cgroup {} (not root, and not delegated to this user)",
            here.display()
        );
        return c;
    }
    c.cgroups = true;
    c.why = format!(
        "cgroup v2 at {}; brood's cgroups go in {}",
        mount.display(),
        c.brood_dir
            .as_ref()
            .map_or(String::new(), |d| d.display().to_string())
    );
    c
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return false;
    };
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0)) >= (major, minor)
}

#[derive(Default)]
struct State {
    /// `brood-<pid>`, once made.
    base: Option<PathBuf>,
    /// Our lock on `base`, held while we live.
    lock: Option<cgroup::DirLock>,
    next: u64,
    /// Each child's cgroup, by pid.
    children: HashMap<u32, PathBuf>,
}

/// This process's cgroups (a forked child makes its own `brood-<pid>`).
static STATE: ForkLocal<Mutex<State>> = ForkLocal::new(|| Mutex::new(State::default()));

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.get().lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes `controller` available to the cgroups inside brood's `base`
/// (`+controller` in its `cgroup.subtree_control`), if `base` has it.
fn enable(base: &std::path::Path, controller: &str) -> Result<()> {
    let have = cgroup::controllers(base);
    if !have.iter().any(|c| c == controller) {
        return Err(Error::CgroupUnavailable {
            reason: format!(
                "the {controller} controller is not available to brood's cgroups in {} (it has: {})",
                base.display(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(" ")
                }
            ),
        });
    }
    let control = base.join("cgroup.subtree_control");
    let on = std::fs::read_to_string(&control).unwrap_or_default();
    if on.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    std::fs::write(&control, format!("+{controller}"))
        .map_err(|e| Error::io(format!("enabling {controller} in {}", control.display()), e))
}

/// A cgroup made for a child about to start, and its `cgroup.procs` for the
/// child to join.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) dir: PathBuf,
    pub(crate) procs: OwnedFd,
}

/// For a [`Tree::Cgroup`] child: a new cgroup, or why there cannot be one.
pub(crate) fn prepare(policy: &Policy) -> Result<Option<Prepared>> {
    let files = policy.limits.cgroup_files();
    if policy.tree != Tree::Cgroup {
        if let Some((controller, _, _)) = files.first() {
            return Err(Error::CgroupUnavailable {
                reason: format!("a {controller} limit needs Tree::Cgroup"),
            });
        }
        return Ok(None);
    }
    let mut st = state();
    if st.base.is_none() {
        let c = containment();
        let (true, Some(dir)) = (c.cgroups, c.brood_dir) else {
            return Err(Error::CgroupUnavailable { reason: c.why });
        };
        if let Some(here) = dir.parent() {
            remove_what_the_dead_left(here);
        }
        st.lock = Some(make_base(&dir)?);
        st.base = Some(dir);
    }
    let base = st.base.clone().unwrap_or_default();
    drop(st);
    // The controllers the limits need, enabled for brood's own directory
    // (never for the machine's: one brood may only use what it was given).
    for (controller, _, _) in &files {
        if let Err(e) = enable(&base, controller) {
            // No child made it in: brood's directory goes again if it is
            // empty (at exit nobody may sweep it: that hook comes with a
            // child).
            if std::fs::remove_dir(&base).is_ok() {
                let mut st = state();
                st.base = None;
                st.lock = None;
            }
            return Err(e);
        }
    }
    let dir = make_child_cgroup(&base, policy)?;
    for (_, file, value) in &files {
        if let Err(e) = std::fs::write(dir.join(file), value) {
            let _ = std::fs::remove_dir(&dir);
            return Err(Error::io(
                format!("writing {value} to {}/{file}", dir.display()),
                e,
            ));
        }
    }
    match cgroup::procs_for_joining(&dir) {
        Ok(procs) => Ok(Some(Prepared { dir, procs })),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(Error::io(
                format!("opening {}/cgroup.procs", dir.display()),
                e,
            ))
        }
    }
}

impl Prepared {
    /// The number of `cgroup.procs`, for the child to join with.
    pub(crate) fn procs_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.procs)
    }
}

/// The child `pid` runs in `prepared`'s cgroup (or, if `pid` is `None`, the
/// start failed and the cgroup goes). Nothing to do without a cgroup.
pub(crate) fn started(pid: Option<u32>, prepared: Option<Prepared>) {
    let Some(Prepared { dir, procs }) = prepared else {
        return;
    };
    drop(procs);
    match pid {
        Some(pid) => {
            state().children.insert(pid, dir);
        }
        None => {
            remove(dir);
            // As in `prepare`: an empty directory of brood's goes too.
            let mut st = state();
            if st.children.is_empty()
                && let Some(base) = &st.base
                && std::fs::remove_dir(base).is_ok()
            {
                st.base = None;
                st.lock = None;
            }
        }
    }
}

/// Sends `sig` to every process in child `pid`'s cgroup; `None` if it has none.
pub(crate) fn signal(pid: u32, sig: i32) -> Option<std::io::Result<()>> {
    let dir = state().children.get(&pid).cloned()?;
    if sig == libc::SIGKILL && cgroup::has_kill(&dir) {
        return Some(cgroup::kill(&dir));
    }
    // Without cgroup.kill, or for another signal: every member as listed now
    // (a process forked meanwhile may be missed; SIGKILL uses cgroup.kill).
    for member in cgroup::members(&dir) {
        cgroup::kill_member(member, sig);
    }
    Some(Ok(()))
}

/// Freezes (`on`) or thaws child `pid`'s cgroup and waits, up to
/// `deadline`, until the kernel says it is done; `None` if it has none.
pub(crate) fn freeze(
    pid: u32,
    on: bool,
    deadline: std::time::Instant,
) -> Option<std::io::Result<()>> {
    let dir = state().children.get(&pid).cloned()?;
    Some(cgroup::freeze(&dir, on).and_then(|()| {
        if cgroup::wait_frozen(&dir, on, deadline)? {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "cgroup.events did not change in time",
            ))
        }
    }))
}

/// Child `pid`'s cgroup directory, if it has one.
pub(crate) fn dir(pid: u32) -> Option<PathBuf> {
    state().children.get(&pid).cloned()
}

/// Whether child `pid`'s cgroup still has processes in it.
pub(crate) fn populated(pid: u32) -> bool {
    state()
        .children
        .get(&pid)
        .is_some_and(|dir| cgroup::populated(dir))
}

/// Child `pid` was reaped (or its stragglers killed): its cgroup goes if it
/// is empty; one that still has members stays known, so that a later kill
/// still reaches them, and goes at a later call or at exit.
pub(crate) fn forget(pid: u32) {
    let Some(dir) = state().children.get(&pid).cloned() else {
        return;
    };
    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
        state().children.remove(&pid);
    }
}

/// At exit: every cgroup of brood's that is empty goes, and `brood-<pid>`
/// with them when nothing is left in it.
pub(crate) fn sweep() {
    let Some(st) = STATE.existing() else {
        return;
    };
    let mut st = st.lock().unwrap_or_else(|e| e.into_inner());
    st.children
        .retain(|_, dir| std::fs::remove_dir(&*dir).is_err() && dir.exists());
    if let Some(base) = &st.base {
        remove_empty(base);
    }
}

/// Makes the next child cgroup in `base`, named so that the keeper knows
/// which to signal at our death, and how.
fn make_child_cgroup(base: &std::path::Path, policy: &Policy) -> Result<PathBuf> {
    let death_signal = policy.death_signal().map(|s| s.as_raw());
    loop {
        let n = {
            let mut st = state();
            st.next += 1;
            st.next
        };
        let dir = base.join(crate::sys::keeper::cgroup_name(n, death_signal));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // A dead process with our pid left one of this name, still in use
            // (or not yet removed): take the next number.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
}

/// Makes `brood-<pid>` (it may exist already: a pid used again) and takes
/// its lock.
fn make_base(dir: &std::path::Path) -> Result<cgroup::DirLock> {
    cgroup::DirLock::make_own(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Removes the empty cgroups in one of brood's directories, then the
/// directory if nothing is left in it; a populated cgroup stays, and keeps
/// the directory.
fn remove_empty(base: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            // The kernel's files refuse `rmdir`; the cgroups in there are
            // all brood's.
            let _ = std::fs::remove_dir(e.path());
        }
    }
    let _ = std::fs::remove_dir(base);
}

/// Removes, in `here` (our cgroup), what brood processes that are gone left
/// behind: only `brood-<pid>` directories, only what is empty in them, and
/// only while holding their lock, which their owner held for its life.
fn remove_what_the_dead_left(here: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(here) else {
        return;
    };
    for e in entries.flatten() {
        if !is_brood_dir(&e.file_name().to_string_lossy()) {
            continue;
        }
        let path = e.path();
        if let Some(_held) = cgroup::DirLock::take_abandoned(&path) {
            remove_empty(&path);
        }
    }
}

/// Whether `name` is of the form `brood-<pid>`, as brood names its own.
fn is_brood_dir(name: &str) -> bool {
    name.strip_prefix("brood-")
        .and_then(|digits| {
            let all = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            all.then(|| digits.parse::<u32>().ok())?
        })
        .is_some_and(|pid| pid > 0)
}

fn remove(dir: PathBuf) {
    let _ = std::fs::remove_dir(&dir);
}

#[cfg(test)]
mod tests {
    use super::is_brood_dir;

    #[test]
    fn only_brood_pid_directories_are_brood_dirs() {
        assert!(is_brood_dir("brood-42"));
        assert!(is_brood_dir("brood-1"));
        for other in [
            "brood-",
            "brood-0",
            "brood-4x",
            "brood--4",
            "brood-+4",
            "brood-99999999999",
            "xbrood-4",
            "system.slice",
            "c1",
        ] {
            assert!(!is_brood_dir(other), "{other}");
        }
    }
}
