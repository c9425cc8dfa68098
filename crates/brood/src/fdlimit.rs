//! The limit on open descriptors (`RLIMIT_NOFILE`), and how brood lives with it.
//!
//! Every child costs its parent descriptors (a pidfd, a result pipe), and the
//! usual soft limit is 1,024 — kept low for programs that still use
//! `select(2)`, whose sets end at 1,024 — while the hard limit is far higher.
//! brood raises the soft limit to the hard one the first time one of its own
//! allocations hits `EMFILE` (never before, so a program that does not need
//! more never sees its limit change), as the Go runtime does at start, and
//! gives every child it makes the soft limit the program started with. At
//! the hard limit, the start that needs a descriptor fails with
//! [`Error::DescriptorLimit`](crate::Error::DescriptorLimit); the others go on.
//!
//! Every allocation a start makes goes through [`with_room`] (or [`retry`]):
//! pipes, socketpairs, a forked child's `pidfd_open` (the child, unreaped,
//! keeps its pid meanwhile), `clone(CLONE_PIDFD)` (which made no child when
//! it found no room), the reaper's epoll set. Another thread whose attempt
//! failed just before the raise tries again too.

use crate::sys::rlimit;
use std::io;
use std::sync::Mutex;

/// The soft limit before brood raised it (`None`: brood has not).
static ORIGINAL: Mutex<Option<u64>> = Mutex::new(None);

/// The soft limit a new child should start with: the program's own — the one
/// it had before brood raised it, else the current one. Read under the lock a
/// raise holds, so that a child made while another thread raises the limit
/// still gets the program's.
pub(crate) fn for_children() -> u64 {
    let original = ORIGINAL.lock().unwrap_or_else(|e| e.into_inner());
    original.unwrap_or_else(|| rlimit::nofile().0)
}

/// Raises the soft limit to the hard one. True if a new attempt may find
/// room: brood raised the limit now, or did before (perhaps on another
/// thread, after this one's attempt failed).
pub(crate) fn make_room() -> bool {
    let mut original = ORIGINAL.lock().unwrap_or_else(|e| e.into_inner());
    match rlimit::raise_nofile() {
        Ok((soft, hard)) if soft < hard => {
            original.get_or_insert(soft);
            true
        }
        Ok(_) => original.is_some(),
        Err(_) => false,
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
