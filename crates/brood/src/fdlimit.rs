//! The limit on open descriptors (`RLIMIT_NOFILE`), and how brood lives with it.
//!
//! Every child costs its parent descriptors (a pidfd, a result pipe), and the
//! usual soft limit is 1,024 — kept low for programs that still use
//! `select(2)`, whose sets end at 1,024 — while the hard limit is far higher.
//! brood raises the soft limit to the hard one the first time one of its own
//! allocations hits `EMFILE` (never before, so a program that does not need
//! more never sees its limit change), as the Go runtime does at start, and
//! gives every child it makes the program's own soft limit. At
//! the hard limit, the start that needs a descriptor fails with
//! [`Error::DescriptorLimit`](crate::Error::DescriptorLimit); the others go on.
//!
//! Every allocation a start makes goes through [`with_room`] (or [`retry`]):
//! pipes, socketpairs, a forked child's `pidfd_open` (the child, unreaped,
//! keeps its pid meanwhile), `clone(CLONE_PIDFD)` (which made no child when
//! it found no room), the reaper's epoll set. Another thread whose attempt
//! failed just before the raise tries again too.
//!
//! **In a child.** brood's own set-up in a child it starts (reading the
//! request, the pool worker's channel and progress page) must not fail
//! because the program's soft limit is tight: a re-executed child raises it
//! first thing in [`init`](crate::init), a fork-server child keeps the
//! server's raised one, and [`give_back`] sets the program's soft limit again
//! just before the child's function (or a pool's initializer) runs.
//!
//! **The program's limit.** brood always raises the soft limit to the hard
//! one, so a soft limit below the hard is the program's own: one the program
//! set after brood's raise replaces the remembered one. A program that sets
//! its soft limit to exactly the hard one after brood raised it cannot be
//! told from brood's raise, and its children get the limit it had before.
//!
//! The state is two atomics, no lock: [`give_back`] and [`hold`] run in
//! forked children, where a lock another thread of the parent held at the
//! fork would never be released.

use crate::sys::rlimit;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// No soft limit remembered.
const NONE: u64 = u64::MAX;

/// The program's soft limit, from before brood raised it (`NONE`: brood has
/// not raised it, or gave it back).
static ORIGINAL: AtomicU64 = AtomicU64::new(NONE);

/// The soft limit brood's raise set (the hard limit at that moment).
static RAISED_TO: AtomicU64 = AtomicU64::new(NONE);

/// The program's soft limit, given the current one: the remembered one while
/// brood's raise stands, else the current (the program set it since).
fn programs(current: u64) -> u64 {
    let original = ORIGINAL.load(Ordering::Acquire);
    if original != NONE && current == RAISED_TO.load(Ordering::Acquire) {
        original
    } else {
        current
    }
}

/// The soft limit a new child should start with: the program's own (see the
/// module doc).
pub(crate) fn for_children() -> u64 {
    programs(rlimit::nofile().0)
}

/// Raises the soft limit to the hard one. True if a new attempt may find
/// room: brood raised the limit now, or did before (perhaps on another
/// thread, after this one's attempt failed).
pub(crate) fn make_room() -> bool {
    let (soft, hard) = rlimit::nofile();
    if soft >= hard {
        return ORIGINAL.load(Ordering::Acquire) != NONE;
    }
    // Remembered before the raise: a thread that reads the limit meanwhile
    // sees the program's soft limit either way (see `programs`).
    RAISED_TO.store(hard, Ordering::Release);
    ORIGINAL.store(soft, Ordering::Release);
    rlimit::raise_nofile().is_ok()
}

/// In a fork-server child: `soft` is the client's soft limit, to be set by
/// [`give_back`] once brood's set-up is done (the server's raised limit
/// stands meanwhile). No lock and no allocation.
pub(crate) fn hold(soft: u64) {
    RAISED_TO.store(rlimit::nofile().0, Ordering::Release);
    ORIGINAL.store(soft, Ordering::Release);
}

/// The child's own limit was set by its policy: nothing to give back.
pub(crate) fn forget() {
    ORIGINAL.store(NONE, Ordering::Release);
}

/// In a child, just before its function runs: sets the program's soft limit
/// again if brood raised it for its set-up and nothing set another since.
/// No lock and no allocation.
pub(crate) fn give_back() {
    let original = ORIGINAL.swap(NONE, Ordering::AcqRel);
    if original != NONE && rlimit::nofile().0 == RAISED_TO.load(Ordering::Acquire) {
        let _ = rlimit::restore_nofile(original);
    }
}

/// Whether `e` is `EMFILE`: this process has no descriptor left.
pub(crate) fn is_emfile(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMFILE)
}

/// Runs `f`; if it fails for want of a descriptor (`emfile` says so of its
/// error), makes room (see [`make_room`]) and runs it once more.
pub(crate) fn retry<T, E>(
    mut f: impl FnMut() -> Result<T, E>,
    emfile: impl Fn(&E) -> bool,
) -> Result<T, E> {
    match f() {
        Err(e) if emfile(&e) && make_room() => f(),
        other => other,
    }
}

/// Runs `f`; if it fails with `EMFILE`, raises the soft limit and runs it
/// again.
pub(crate) fn with_room<T>(f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    retry(f, is_emfile)
}

/// The error for `e` while `step`: [`Error::DescriptorLimit`] when it is
/// `EMFILE` (the hard limit, since [`with_room`] raised the soft one), else
/// [`Error::Io`] naming the step.
///
/// [`Error::DescriptorLimit`]: crate::Error::DescriptorLimit
/// [`Error::Io`]: crate::Error::Io
pub(crate) fn error(step: &'static str, e: io::Error) -> crate::Error {
    limit_or(step, e, |e| crate::Error::io(step, e))
}

/// [`Error::DescriptorLimit`](crate::Error::DescriptorLimit) when `e` is
/// `EMFILE`, else `otherwise(e)`.
pub(crate) fn limit_or(
    step: &'static str,
    e: io::Error,
    otherwise: impl FnOnce(io::Error) -> crate::Error,
) -> crate::Error {
    if is_emfile(&e) {
        crate::Error::DescriptorLimit {
            step,
            limit: rlimit::nofile().1,
        }
    } else {
        otherwise(e)
    }
}

/// The soft limit for a new exec'd child (see [`for_children`]), and the
/// hard, which it never passes.
pub(crate) fn child_limit() -> (u64, u64) {
    let soft = for_children();
    let hard = rlimit::nofile().1;
    (soft.min(hard), hard)
}
