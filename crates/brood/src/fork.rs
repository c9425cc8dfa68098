//! `os.fork`, made safe where it can be: [`fork_with`] runs a closure in a forked
//! child and ends the child with its result, so the child can never fall through
//! into the caller's code (claim F3). [`fork`] keeps Python's shape for those who
//! want it.

use crate::child::WaitSource;
use crate::policy::{Kind, Lifecycle, Policy, Tree};
use crate::sys::{self, fork::Forked};
use crate::{Child, Error, Result};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::forkflush as stdio;

/// Which side of [`fork`] the caller is on.
#[derive(Debug)]
pub enum Fork {
    /// In the new child.
    Child,
    /// In the parent, with a handle on the child.
    Parent(Child),
}

/// Options for a forked child: its policies. Starts with Python's `os.fork`
/// behaviour ([`Kind::Fork`]: detach at exit, survive the parent).
///
/// ```
/// # brood::init();
/// use brood::{ForkBuilder, OnParentDeath, Signal};
/// let child = ForkBuilder::new()
///     .on_parent_death(OnParentDeath::Signal(Signal::KILL))
///     .fork_with(|| 7)?;
/// assert_eq!(child.wait()?.code(), Some(7));
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ForkBuilder {
    lifecycle: Lifecycle,
}

impl Default for ForkBuilder {
    fn default() -> Self {
        ForkBuilder::new()
    }
}

impl ForkBuilder {
    /// Python's defaults for `os.fork`.
    pub fn new() -> ForkBuilder {
        ForkBuilder {
            lifecycle: Lifecycle::new(Kind::Fork),
        }
    }

    crate::policy::lifecycle_methods! {
        on_exit {
            /// ```no_run
            /// # brood::init();
            /// let child = brood::ForkBuilder::new().on_exit(brood::OnExit::Wait).fork_with(|| 0)?;
            /// brood::exit(0); // waits for `child` first
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        on_parent_death {}
        tree {
            /// ```
            /// # brood::init();
            /// let child = brood::ForkBuilder::new()
            ///     .tree(brood::Tree::Group)
            ///     .fork_with(|| 0)?;
            /// assert!(child.wait()?.success());
            /// # Ok::<(), brood::Error>(())
            /// ```
        }
        on_drop {}
        set_policy {}
        policy {
            /// ```
            /// use brood::{ForkBuilder, Kind, Policy};
            /// assert_eq!(ForkBuilder::new().policy(), Policy::for_kind(Kind::Fork));
            /// ```
        }
    }

    /// Forks; the child runs `f` and exits with the code it returns (101, with the
    /// panic message on stderr, if `f` panics). Returns the child in the parent.
    ///
    /// Before forking, Rust's stdout and stderr are flushed here in the parent
    /// (as CPython does), so text still in their buffers is written once, not once
    /// more by the child's copy — unless stdout cannot take them without
    /// blocking (a full pipe nobody reads, a stopped terminal): then the fork
    /// does not wait, the text stays for the parent's next flush, and the
    /// child does not flush its copy (so what `f` prints without a newline is
    /// not written). In the child, the child's own children get their
    /// `OnExit` applied before `_exit`; the parent's `atexit` handlers do not run
    /// there.
    ///
    /// **Threads.** The child has only the forking thread; a lock another thread
    /// held at the fork stays locked there forever. brood's own part never waits
    /// on one: when other threads exist, the parent flushes stdout and stderr from
    /// a helper thread for at most 50 ms (another thread may hold their lock
    /// for good), and the child does *not* flush them on its way out, since their
    /// lock may be one of those. So in a child forked while other threads ran,
    /// end what `f` prints with a newline (stdout is line-buffered) or flush it
    /// in `f`; `f` itself must not need a lock another thread held (stdout's
    /// included). brood warns once when threads other than its own exist.
    pub fn fork_with<F>(&self, f: F) -> Result<Child>
    where
        F: FnOnce() -> i32 + Send,
    {
        crate::shutdown::refuse_if_begun()?;
        let policy = self.policy();
        let go = move || {
            fork_running(&policy, move || {
                let code = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
                crate::exit::leave_forked_child(code)
            })
        };
        crate::spawner::run_for(&policy, go).map_err(Error::Fork)?
    }

    /// Python's `os.fork()`: returns twice, [`Fork::Child`] in the child and
    /// [`Fork::Parent`] in the parent. stdout and stderr are flushed first, as
    /// for [`fork_with`](ForkBuilder::fork_with).
    ///
    /// # Safety
    /// The child is a copy of a possibly multi-threaded process with only the
    /// calling thread: until it execs or exits it may only do what is safe after
    /// `fork(2)` (no lock another thread may have held). It should end with
    /// [`crate::exit`] or [`crate::exit_now`], or it will run the caller's code
    /// after the fork a second time (claim F3).
    ///
    /// With [`OnParentDeath::Signal`](crate::OnParentDeath::Signal) this must be
    /// called on the main thread: the kernel ties the signal to the creating
    /// *thread*, and a raw fork cannot move to brood's spawner thread (use
    /// [`ForkBuilder::fork_with`] instead); elsewhere it is
    /// [`Error::ForkOffMainThread`].
    #[allow(unsafe_code)] // the public unsafe API (Python's shape); see its contract
    pub unsafe fn fork(&self) -> Result<Fork> {
        let policy = self.policy();
        if policy.death_signal().is_some() && !sys::fork::is_main_thread() {
            return Err(Error::ForkOffMainThread {
                tid: sys::fork::gettid(),
                pid: sys::getpid(),
            });
        }
        let (ready, cgroup) = before_fork(&policy)?;
        let parent = sys::getpid();
        let mask = sys::sigmask::block_all();
        // SAFETY: the caller accepted fork's contract.
        match unsafe { sys::fork::fork() } {
            Ok(Forked::Child) => {
                in_child(ready, &policy, parent);
                mask.restore();
                Ok(Fork::Child)
            }
            Ok(Forked::Parent(pid)) => {
                mask.restore();
                crate::cgroups::started(Some(pid), cgroup);
                Ok(Fork::Parent(in_parent(pid, &policy)?))
            }
            Err(e) => {
                mask.restore();
                crate::cgroups::started(None, cgroup);
                Err(Error::fork("fork", e))
            }
        }
    }
}

/// Forks a child with brood's defaults for `os.fork` and runs `f` in it; see
/// [`ForkBuilder::fork_with`].
///
/// ```
/// # brood::init();
/// let child = brood::fork_with(|| {
///     // only the child runs this, and it cannot fall through
///     3
/// })?;
/// assert_eq!(child.wait()?.code(), Some(3));
/// # Ok::<(), brood::Error>(())
/// ```
pub fn fork_with<F>(f: F) -> Result<Child>
where
    F: FnOnce() -> i32 + Send,
{
    ForkBuilder::new().fork_with(f)
}

/// Python's `os.fork()` with brood's defaults; see [`ForkBuilder::fork`].
///
/// # Safety
/// As for [`ForkBuilder::fork`].
///
/// ```
/// # brood::init();
/// match unsafe { brood::fork()? } {
///     brood::Fork::Child => brood::exit_now(5),
///     brood::Fork::Parent(child) => assert_eq!(child.wait()?.code(), Some(5)),
/// }
/// # Ok::<(), brood::Error>(())
/// ```
#[allow(unsafe_code)] // the public unsafe API (Python's shape); see its contract
pub unsafe fn fork() -> Result<Fork> {
    // SAFETY: forwarded contract.
    unsafe { ForkBuilder::new().fork() }
}

/// Forks a child that arms `policy` and then runs `child`, which ends the child
/// (it cannot return). Returns the adopted child in the parent.
pub(crate) fn fork_running(policy: &Policy, child: impl FnOnce() -> Infallible) -> Result<Child> {
    let (ready, cgroup) = before_fork(policy)?;
    let parent = sys::getpid();
    // Signals stay blocked across the fork: in the child until it has reset the
    // handlers it must not keep (see `arm_child`), so none of them can run there
    // first; pending ones are delivered once the mask is restored.
    let mask = sys::sigmask::block_all();
    let forked = sys::fork::fork_then(|| {
        in_child(ready, policy, parent);
        mask.restore();
        child()
    });
    mask.restore();
    crate::cgroups::started(forked.as_ref().ok().copied(), cgroup);
    in_parent(forked.map_err(|e| Error::fork("fork", e))?, policy)
}

/// The child's side of a fork, before any of the caller's code: arms the
/// policy, or reports the failed step on stderr and exits with 127. No
/// allocation and no lock on either path: after a fork in a threaded parent the
/// allocator's or stderr's lock may be held by a thread the child does not have.
fn in_child(ready: Ready, policy: &Policy, parent: u32) {
    stdio::child_may_flush(ready.stdio_free);
    let _ = sys::rlimit::restore_nofile(ready.nofile);
    if let Err((step, e)) = arm_child(policy, parent, ready.joins) {
        let mut buf = stdio::StackText::<160>::new();
        let _ = writeln!(
            buf,
            "brood: {step} failed in the child (os error {})",
            e.raw_os_error().unwrap_or(0)
        );
        sys::pipe::write_all_raw(2, buf.as_bytes());
        sys::fork::exit_now(127)
    }
}

/// The parent's side of a fork: the group (for `Tree::Group`) and adoption.
fn in_parent(pid: u32, policy: &Policy) -> Result<Child> {
    if matches!(policy.tree, Tree::Group | Tree::Cgroup) {
        // Both sides set the group, so a signal to the group cannot arrive
        // before it exists whichever runs first. EACCES/ESRCH once the child
        // has exec'd or ended: harmless.
        let _ = sys::pgrp::setpgid(pid, pid);
    }
    adopt_forked(pid, policy)
}

/// What the parent made ready for the child just before forking.
#[derive(Copy, Clone)]
struct Ready {
    /// No other thread could hold std's stdout or stderr lock at the fork.
    stdio_free: bool,
    /// The program's own soft descriptor limit, which the child takes back
    /// if brood raised ours (see `fdlimit`); read here, since the child may
    /// not take a lock.
    nofile: u64,
    /// What the child joins before anything of its own runs.
    joins: Joins,
}

/// What a new child joins before anything of its own runs: its cgroup
/// (`cgroup.procs`, see `cgroups`) and the keeper of its group (see
/// `deathwatch`), as descriptor numbers it inherited.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Joins {
    pub(crate) cgroup: Option<std::os::fd::RawFd>,
    pub(crate) keeper: Option<std::os::fd::RawFd>,
}

/// In the parent, just before a fork: make everything the child may read ready,
/// so that the child never waits on a lock or a one-time initialisation that
/// a thread it does not have was in the middle of.
///
/// - Rust's stdout and stderr are flushed (see [`stdio::flush_before_fork`]).
/// - Every lazily initialised value brood's code reads after a fork in the
///   child is initialised here: a `OnceLock` that another thread is
///   initialising at the fork stays "being initialised" in the child forever,
///   and the child's `get_or_init` would wait for it forever. `get_or_init`
///   here instead waits for that thread to finish (a first call per process;
///   afterwards an atomic load each). The values: std's stdout and stderr
///   handles; `/dev/null` (a `Process` child's stdin); the executable's layout
///   (a fork-started pool worker resolves the functions it is sent); the
///   `atexit` hook (a child starting children of its own); and whether `init`
///   ran (a child starting a `Process`).
///
/// With `Tree::Cgroup` it also makes the child's cgroup, returned so that it
/// lives on in the parent (the child joins it through `Ready`).
fn before_fork(policy: &Policy) -> Result<(Ready, Option<crate::cgroups::Prepared>)> {
    crate::child::ready_to_reap()?;
    let cgroup = crate::cgroups::prepare(policy)?;
    let keeper = crate::deathwatch::registration(policy).map_err(|e| {
        Error::io(
            "starting the keeper that signals the tree at parent death",
            e,
        )
    })?;
    let _ = sys::pipe::dev_null();
    crate::sys::image::warm();
    crate::exit::ensure_hooked();
    crate::runtime::init_skipped();
    let foreign = foreign_threads();
    warn_about_foreign_threads(foreign);
    let ready = Ready {
        stdio_free: stdio::flush_before_fork(foreign == Some(0)),
        nofile: crate::fdlimit::for_children(),
        joins: Joins {
            cgroup: cgroup.as_ref().map(crate::cgroups::Prepared::procs_fd),
            keeper,
        },
    };
    Ok((ready, cgroup))
}

/// Takes hold of a child just forked. Between `fork` returning and
/// `pidfd_open`, foreign code may reap it (`waitpid(-1)`, or the kernel with
/// SIGCHLD ignored): then it is `ReapedElsewhere` from the start. And if the pid
/// was reaped *and* reused in that window, the pidfd names a process that is not
/// our child, which `waitid(WNOWAIT)` detects without reaping anything.
///
/// If brood cannot take hold of it (no descriptor left for the pidfd or the
/// reaper's epoll set), the child is killed and reaped before the error is
/// returned: nobody else would ever wait for it. It is still our unreaped
/// child, so its pid cannot have been reused.
fn adopt_forked(pid: u32, policy: &Policy) -> Result<Child> {
    let abandon = |e: Error| {
        let _ = sys::reap::kill_and_reap_own(pid);
        e
    };
    let fd = match crate::fdlimit::with_room(|| sys::pidfd::open(pid)) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Child::gone(pid, *policy)),
        Err(e) => {
            let e = crate::fdlimit::limit_or("pidfd_open", e, |e| Error::os("pidfd_open", pid, e));
            return Err(abandon(e));
        }
    };
    match sys::pidfd::is_own_child(std::os::fd::AsFd::as_fd(&fd)) {
        Ok(true) => crate::exit::adopt(pid, fd, *policy, WaitSource::Own).map_err(abandon),
        Ok(false) => Ok(Child::gone(pid, *policy)),
        Err(e) => Err(abandon(Error::os("waitid(WNOWAIT)", pid, e))),
    }
}

/// In a freshly forked child, before any of the caller's code: give back the
/// signals `graceful` took over, make the group or session, arm the parent-death
/// signal, and if the parent already died while we were starting, act on it now.
/// Only async-signal-safe calls. On failure, returns the step and the kernel's
/// answer.
pub(crate) fn arm_child(
    policy: &Policy,
    parent: u32,
    joins: Joins,
) -> std::result::Result<(), (&'static str, std::io::Error)> {
    crate::signals::reset_in_child();
    sys::interrupt::reset_in_child();
    if let Some(fd) = joins.cgroup {
        sys::cgroup::join(fd).map_err(|e| ("joining the child's cgroup", e))?;
    }
    match policy.tree {
        Tree::Own => {}
        Tree::Group | Tree::Cgroup => sys::pgrp::setpgid(0, 0).map_err(|e| ("setpgid", e))?,
        Tree::Session => sys::pgrp::setsid().map_err(|e| ("setsid", e))?,
    }
    // The group exists: register it with the keeper before the death signal
    // is armed and checked (see `deathwatch`).
    if let (Some(fd), Some(sig)) = (joins.keeper, policy.death_signal()) {
        let rec = sys::keeper::record(sys::getpid(), sig.as_raw());
        sys::keeper::register(fd, &rec).map_err(|e| ("registering with the keeper", e))?;
    }
    let limits = policy.limits.for_child();
    limits.apply()?;
    if limits.sets_open_files() {
        // The policy's descriptor limit is the child's: nothing to give back.
        crate::fdlimit::forget();
    }
    if let Some(sig) = policy.death_signal() {
        sys::prctl::set_parent_death_signal(sig.as_raw())
            .map_err(|e| ("prctl(PR_SET_PDEATHSIG)", e))?;
        // The parent may have died between fork and prctl: then no signal will
        // ever come, and we are already re-parented. Deliver it ourselves.
        if sys::getppid() != parent {
            sys::signal::raise_in_self(sig.as_raw());
        }
    }
    Ok(())
}

/// How many threads other than the caller and brood's own this process has
/// (`None` if `/proc/self/stat` cannot be read: then assume some).
fn foreign_threads() -> Option<usize> {
    let ours = crate::runtime::own_threads();
    let total = sys::fork::thread_count().ok()?;
    Some(total.saturating_sub(1 + ours))
}

/// Warns once per process when a fork happens while threads other than brood's
/// own exist: the child gets only the forking thread, and any lock another thread
/// held stays locked there forever.
fn warn_about_foreign_threads(foreign: Option<usize>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(others) = foreign.filter(|&n| n > 0) else {
        return;
    };
    if WARNED.load(Ordering::Relaxed) || std::env::var_os("BROOD_NO_FORK_WARNING").is_some() {
        return;
    }
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "brood: warning: fork() with {others} other thread(s) running (pid {}); the child gets \
             only the calling thread, and a lock another thread held stays locked there. Prefer \
             StartMethod::ForkServer or Spawn. (Set BROOD_NO_FORK_WARNING to silence.)",
            sys::getpid()
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::runtime::test_gate::{ARMED, ENTERED, OPEN};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Is thread `tid` of this process blocked in `futex(2)` (waiting on a lock
    /// or a one-time initialisation)? `/proc/self/task/<tid>/syscall` starts with
    /// the number of the system call it sleeps in.
    fn in_futex(tid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
            .is_ok_and(|s| s.split_whitespace().next() == Some(&libc::SYS_futex.to_string()))
    }

    /// Another thread sits inside a brood `get_or_init` (whether `init` ran) at
    /// the moment of a fork: the child, which reads that value when it starts a
    /// `Process`, must not wait forever for a thread it does not have. The fork
    /// waits for the initialisation instead, and the child finds it done.
    #[test]
    fn fork_while_another_thread_initialises_a_lazy_value() {
        ARMED.store(true, Ordering::Release);
        let initialiser = std::thread::spawn(crate::runtime::init_skipped);
        while !ENTERED.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Open the gate once this thread is blocked (waiting for the
        // initialisation) or has forked, whichever comes first.
        let forker = crate::sys::fork::gettid();
        let forked = Arc::new(AtomicBool::new(false));
        let opener = {
            let forked = Arc::clone(&forked);
            std::thread::spawn(move || {
                while !forked.load(Ordering::Acquire) && !in_futex(forker) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                OPEN.store(true, Ordering::Release);
            })
        };
        let child = crate::fork_with(|| i32::from(crate::runtime::init_skipped())).unwrap();
        forked.store(true, Ordering::Release);
        let status = child.wait_timeout(Duration::from_secs(5)).unwrap();
        if status.is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        opener.join().unwrap();
        initialiser.join().unwrap();
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "the child waited for a OnceLock another thread was initialising at the fork"
        );
    }
}
