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
//!   `fork_with` say; a hang would be worse. The helper must never hold
//!   stdout's lock at the fork, or the child's first `println!` waits for a
//!   thread it does not have, for ever: so it is not started when stdout
//!   cannot take the buffered text now (a helper blocked in `write` on a full
//!   pipe held the lock through the fork, and the child hung even after the
//!   pipe drained), and one that has not begun by the end of the wait is
//!   called off.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How long the parent waits for a helper thread's flush.
const FLUSH_WAIT: Duration = Duration::from_millis(50);

/// Set in each forked child: whether its exit may flush (no other thread could
/// hold the streams' locks at the fork).
static CHILD_MAY_FLUSH: AtomicBool = AtomicBool::new(false);

/// The helper of the last flush: 0 when none is pending or running, else
/// its ticket `t` as `2t` (started, not begun: the parent may call it off)
/// or `2t + 1` (flushing: it may wait on a lock for good).
static FLUSHER: AtomicU64 = AtomicU64::new(0);

/// Tickets for helpers, so that one called off never takes a later one's turn.
static TICKETS: AtomicU64 = AtomicU64::new(1);

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
    if !crate::sys::pipe::writable_now(1) {
        return false;
    }
    let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
    let (pending, running) = (2 * ticket, 2 * ticket + 1);
    if FLUSHER
        .compare_exchange(0, pending, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // The last helper is still at it.
        return false;
    }
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let flusher = std::thread::Builder::new()
        .name("brood-flush".into())
        .spawn(move || {
            let begun = FLUSHER
                .compare_exchange(pending, running, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if begun {
                flush_both();
                FLUSHER.store(0, Ordering::Release);
                let _ = done_tx.send(());
            }
        });
    match flusher {
        Ok(_) => {
            if done_rx.recv_timeout(FLUSH_WAIT).is_err() {
                // Not begun yet: called off, so that it cannot take the
                // lock during the fork. (Begun: it waits on a lock another
                // thread holds, which is that thread's hold at the fork.)
                let _ = FLUSHER.compare_exchange(pending, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
        Err(_) => FLUSHER.store(0, Ordering::Release),
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
