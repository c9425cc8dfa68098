//! `os.fork`, made safe where it can be: [`fork_with`] runs a closure in a forked
//! child and ends the child with its result, so the child can never fall through
//! into the caller's code (claim F3). [`fork`] keeps Python's shape for those who
//! want it.

use crate::child::WaitSource;
use crate::globals::globals;
use crate::policy::{Kind, Lifecycle, Policy, Tree};
use crate::sys::{self, fork::Forked};
use crate::{Child, Error, Result};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// In the child, the child's own children get their `OnExit` applied and Rust's
    /// stdout/stderr are flushed before `_exit`; the parent's `atexit` handlers do
    /// not run there. After a fork in a multi-threaded parent, `f` must not need a
    /// lock another thread held at that moment (stdout's included): brood warns
    /// once when threads other than its own exist.
    pub fn fork_with<F>(&self, f: F) -> Result<Child>
    where
        F: FnOnce() -> i32 + Send,
    {
        let policy = self.policy();
        let go = move || -> Result<Child> {
            // SAFETY: the child side never returns: it runs `f` and `_exit`s.
            match unsafe { fork_raw(&policy)? } {
                (Forked::Child, _) => {
                    let code = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
                    crate::exit::leave_forked_child(code)
                }
                (Forked::Parent(_), child) => Ok(child.expect("parent side has a child")),
            }
        };
        globals()
            .spawner
            .run_for(&policy, go)
            .map_err(Error::Fork)?
    }

    /// Python's `os.fork()`: returns twice, [`Fork::Child`] in the child and
    /// [`Fork::Parent`] in the parent.
    ///
    /// # Safety
    /// The child is a copy of a possibly multi-threaded process with only the
    /// calling thread: until it execs or exits it may only do what is safe after
    /// `fork(2)` (no lock another thread may have held). It should end with
    /// [`crate::exit`] or [`crate::exit_now`], or it will run the caller's code
    /// after the fork a second time (claim F3).
    ///
    /// With [`OnParentDeath::Signal`](crate::OnParentDeath::Signal) this must be called on the main thread: the
    /// kernel ties the signal to the creating *thread*, and a raw fork cannot move
    /// to brood's spawner thread (use [`ForkBuilder::fork_with`] instead).
    pub unsafe fn fork(&self) -> Result<Fork> {
        let policy = self.policy();
        if policy.death_signal().is_some() && !sys::fork::is_main_thread() {
            return Err(Error::ForkOffMainThread {
                tid: sys::fork::gettid(),
                pid: sys::getpid(),
            });
        }
        // SAFETY: the caller accepted fork's contract.
        match unsafe { fork_raw(&policy)? } {
            (Forked::Child, _) => Ok(Fork::Child),
            (Forked::Parent(_), child) => Ok(Fork::Parent(child.expect("parent side has a child"))),
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
pub unsafe fn fork() -> Result<Fork> {
    // SAFETY: forwarded contract.
    unsafe { ForkBuilder::new().fork() }
}

/// Forks and applies `policy` on both sides. In the child returns
/// `(Forked::Child, None)` after arming; in the parent the adopted child.
///
/// # Safety
/// As `fork(2)`; see [`ForkBuilder::fork`].
pub(crate) unsafe fn fork_raw(policy: &Policy) -> Result<(Forked, Option<Child>)> {
    warn_about_foreign_threads();
    let parent = sys::getpid();
    // Signals stay blocked across the fork: in the child until it has reset the
    // handlers it must not keep (see `arm_child`), so none of them can run there
    // first; pending ones are delivered once the mask is restored.
    let mask = sys::sigmask::block_all();
    // SAFETY: forwarded contract.
    let forked = unsafe { sys::fork::fork() };
    match forked {
        Ok(Forked::Child) => {
            if let Err((step, e)) = arm_child(policy, parent) {
                // Raw write: after fork in a threaded parent, stderr's lock may
                // be held.
                let msg = format!("brood: {step} failed in the child: {e}\n");
                // SAFETY: writing a valid buffer to fd 2.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                sys::fork::exit_now(127)
            }
            mask.restore();
            Ok((Forked::Child, None))
        }
        Ok(Forked::Parent(pid)) => {
            mask.restore();
            if policy.tree == Tree::Group {
                // Both sides set the group, so a signal to the group cannot
                // arrive before it exists whichever runs first. EACCES/ESRCH once
                // the child has exec'd or ended: harmless.
                let _ = sys::pgrp::setpgid(pid, pid);
            }
            Ok((Forked::Parent(pid), Some(adopt_forked(pid, policy)?)))
        }
        Err(e) => {
            mask.restore();
            Err(Error::Fork(e))
        }
    }
}

/// Takes hold of a child just forked. Between `fork` returning and
/// `pidfd_open`, foreign code may reap it (`waitpid(-1)`, or the kernel with
/// SIGCHLD ignored): then it is `ReapedElsewhere` from the start. And if the pid
/// was reaped *and* reused in that window, the pidfd names a process that is not
/// our child, which `waitid(WNOWAIT)` detects without reaping anything.
fn adopt_forked(pid: u32, policy: &Policy) -> Result<Child> {
    let fd = match sys::pidfd::open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Child::gone(pid, *policy)),
        Err(e) => return Err(Error::os("pidfd_open", pid, e)),
    };
    match sys::pidfd::is_own_child(std::os::fd::AsFd::as_fd(&fd)) {
        Ok(true) => Child::adopt(pid, fd, *policy, WaitSource::Own),
        Ok(false) => Ok(Child::gone(pid, *policy)),
        Err(e) => Err(Error::os("waitid(WNOWAIT)", pid, e)),
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
) -> std::result::Result<(), (&'static str, std::io::Error)> {
    crate::signals::reset_in_child();
    match policy.tree {
        Tree::Own => {}
        Tree::Group => sys::pgrp::setpgid(0, 0).map_err(|e| ("setpgid", e))?,
        Tree::Session => sys::pgrp::setsid().map_err(|e| ("setsid", e))?,
    }
    if let Some(sig) = policy.death_signal() {
        sys::prctl::set_parent_death_signal(sig.as_raw())
            .map_err(|e| ("prctl(PR_SET_PDEATHSIG)", e))?;
        // The parent may have died between fork and prctl: then no signal will
        // ever come, and we are already re-parented. Deliver it ourselves.
        if sys::getppid() != parent {
            // SAFETY: signalling ourselves.
            unsafe { libc::kill(libc::getpid(), sig.as_raw()) };
        }
    }
    Ok(())
}

/// Warns once per process when a fork happens while threads other than brood's
/// own exist: the child gets only the forking thread, and any lock another thread
/// held stays locked there forever.
fn warn_about_foreign_threads() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    // Counting threads reads /proc/self/stat (~10 µs, a twentieth of a fork);
    // the warning is advice, so look at most once per 100 ms.
    static LAST_LOOK_MS: AtomicU64 = AtomicU64::new(0);
    if WARNED.load(Ordering::Relaxed) {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = LAST_LOOK_MS.load(Ordering::Relaxed);
    if now_ms.saturating_sub(last) < 100
        || LAST_LOOK_MS
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        || std::env::var_os("BROOD_NO_FORK_WARNING").is_some()
    {
        return;
    }
    let ours = globals().own_threads.load(Ordering::Relaxed);
    let Ok(total) = sys::fork::thread_count() else {
        return;
    };
    if total > 1 + ours && !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "brood: warning: fork() with {} other thread(s) running (pid {}); the child gets only \
             the calling thread, and a lock another thread held stays locked there. Prefer \
             StartMethod::ForkServer or Spawn. (Set BROOD_NO_FORK_WARNING to silence.)",
            total - 1 - ours,
            sys::getpid()
        );
    }
}
