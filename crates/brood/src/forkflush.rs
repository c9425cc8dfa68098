//! Rust's stdout and stderr across a fork: flushed in the parent before it,
//! never waited on in the child.
//!
//! A forked child has a copy of stdout's buffer: text the parent wrote without a
//! newline is in it, and would be written a second time when the child flushes.
//! So the parent flushes first (CPython does the same). But std guards each
//! stream with a lock, and the child has only the forking thread: if another
//! thread held the lock at the fork, it is held for good in the child, and a
//! flush there never returns. So:
//!
//! - With no thread but the caller and brood's own (which never print), nobody
//!   can hold the locks: the parent flushes inline, and the child may flush on
//!   its way out — if stdout can take the buffered text without blocking
//!   (stdout's buffer holds at most a partial line of 1 KiB, and `POLLOUT` on
//!   a pipe means 4 KiB of room). When it cannot (a full pipe nobody reads, a
//!   stopped terminal), the parent keeps its buffer for its own next flush
//!   and the child never flushes its copy: a start never blocks on the
//!   caller's stdout.
//! - With other threads, one may hold a lock for good: the parent flushes from a
//!   helper thread and waits for it at most [`FLUSH_WAIT`] (a helper stuck on a
//!   lock is left to finish when the lock is released, and no second one is
//!   started meanwhile); the child never flushes. Whatever `f` printed without a
//!   newline (stdout is line-buffered) is then lost, which the docs of
//!   `fork_with` say; a hang would be worse.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the parent waits for a helper thread's flush.
const FLUSH_WAIT: Duration = Duration::from_millis(50);

/// Set in each forked child: whether its exit may flush (no other thread could
/// hold the streams' locks at the fork).
static CHILD_MAY_FLUSH: AtomicBool = AtomicBool::new(false);

/// A helper's flush has not returned yet (it may wait on a lock for good).
static FLUSHER_BUSY: AtomicBool = AtomicBool::new(false);

/// Flushes Rust's stdout and stderr before a fork; `alone` when no thread but the
/// caller and brood's own exists. Returns whether the child may flush them.
pub(super) fn flush_before_fork(alone: bool) -> bool {
    // Initialises the handles (one-time cells of std) here, in the parent.
    let (out, err) = (std::io::stdout(), std::io::stderr());
    if alone {
        if !crate::sys::pipe::writable_now(1) {
            return false;
        }
        let _ = out.lock().flush();
        let _ = err.lock().flush();
        return true;
    }
    if FLUSHER_BUSY.swap(true, Ordering::AcqRel) {
        return false;
    }
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let flusher = std::thread::Builder::new()
        .name("brood-flush".into())
        .spawn(move || {
            flush_both();
            FLUSHER_BUSY.store(false, Ordering::Release);
            let _ = done_tx.send(());
        });
    match flusher {
        Ok(_) => drop(done_rx.recv_timeout(FLUSH_WAIT)),
        Err(_) => FLUSHER_BUSY.store(false, Ordering::Release),
    }
    false
}

fn flush_both() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// In a freshly forked child: remember what the parent found.
pub(super) fn child_may_flush(free: bool) {
    CHILD_MAY_FLUSH.store(free, Ordering::Relaxed);
}

/// How a forked child leaves: flush Rust's stdout and stderr only if no other
/// thread could hold their locks at the fork.
pub(crate) fn flush_in_forked_child() {
    if CHILD_MAY_FLUSH.load(Ordering::Relaxed) {
        flush_both();
    }
}

/// Text formatted into a fixed stack buffer (truncated when it does not fit):
/// `write!` without an allocation, for a forked child's last words.
pub(super) struct StackText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    pub(super) fn new() -> Self {
        StackText {
            buf: [0; N],
            len: 0,
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> std::fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = N - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::StackText;
    use std::fmt::Write;

    #[test]
    fn stack_text_formats_and_truncates() {
        let mut t = StackText::<16>::new();
        write!(t, "setsid (os error {})", 1).unwrap();
        assert_eq!(t.as_bytes(), b"setsid (os error");
        let mut t = StackText::<64>::new();
        writeln!(t, "dup2 {}", 9).unwrap();
        assert_eq!(t.as_bytes(), b"dup2 9\n");
    }
}
