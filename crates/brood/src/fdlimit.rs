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

use crate::sys::rlimit;
use std::io;
use std::sync::Mutex;

/// The soft limit before brood raised it (`None`: brood has not).
static ORIGINAL: Mutex<Option<u64>> = Mutex::new(None);

/// The soft limit a new child should start with, if brood raised this
/// process's: the one the program had.
pub(crate) fn for_children() -> Option<u64> {
    *ORIGINAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises the soft limit to the hard one; false if it already was there.
pub(crate) fn make_room() -> bool {
    let mut original = ORIGINAL.lock().unwrap_or_else(|e| e.into_inner());
    match rlimit::raise_nofile() {
        Ok((soft, hard)) if soft < hard => {
            original.get_or_insert(soft);
            true
        }
        _ => false,
    }
}

/// Runs `f`; if it fails with `EMFILE`, raises the soft limit (once) and runs
/// it again.
pub(crate) fn with_room<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match f() {
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) && make_room() => f(),
        other => other,
    }
}

/// The error for `e` while `step`: [`Error::DescriptorLimit`] when it is
/// `EMFILE` (the hard limit, since [`with_room`] raised the soft one), else
/// [`Error::Io`] naming the step.
///
/// [`Error::DescriptorLimit`]: crate::Error::DescriptorLimit
/// [`Error::Io`]: crate::Error::Io
pub(crate) fn error(step: &'static str, e: io::Error) -> crate::Error {
    if e.raw_os_error() == Some(libc::EMFILE) {
        crate::Error::DescriptorLimit {
            step,
            limit: rlimit::nofile().1,
        }
    } else {
        crate::Error::io(step, e)
    }
}

/// The soft limit to restore in a child (see [`for_children`]), and the hard.
pub(crate) fn child_limit() -> Option<(u64, u64)> {
    for_children().map(|soft| (soft, rlimit::nofile().1))
}
