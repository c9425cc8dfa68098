//! The child's stdout and stderr while brood waits for it to be ready, and
//! after: one thread per stream copies it on to where it was going (our own
//! stream, or a new pipe whose read end the caller gets), keeps the last
//! [`TAIL`] bytes of both for an error, and looks for the line that says
//! "ready".

use crate::sys::pipe;
use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// How much of the output an error keeps.
pub(crate) const TAIL: usize = 4096;

/// A line longer than this is looked at by its last part only.
const MAX_LINE: usize = 64 * 1024;

/// Where a stream goes on.
pub(crate) enum Sink {
    /// Our own stdout (1) or stderr (2): the stream was inherited.
    Ours(RawFd),
    /// The write end of the pipe the caller reads: the stream was piped.
    Pipe(OwnedFd),
}

#[derive(Default)]
struct State {
    tail: VecDeque<u8>,
    matched: bool,
    running: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Written when the line is seen, so that a `poll` wakes.
    wake: OwnedFd,
}

/// The relays of one child.
pub(crate) struct Output {
    shared: Arc<Shared>,
    woken: OwnedFd,
}

impl Output {
    pub(crate) fn new() -> std::io::Result<Output> {
        let (woken, wake) = pipe::wake_pipe()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            wake,
        });
        Ok(Output { shared, woken })
    }

    /// Readable once the line was seen.
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.woken.as_fd()
    }

    pub(crate) fn matched(&self) -> bool {
        pipe::drain(self.woken.as_fd());
        self.shared.lock().matched
    }

    /// Copies `source` to `sink` until its end, on a thread of its own;
    /// with `pattern`, a line containing it marks the child ready.
    pub(crate) fn relay(
        &self,
        source: OwnedFd,
        sink: Sink,
        pattern: Option<String>,
    ) -> std::io::Result<()> {
        let shared = Arc::clone(&self.shared);
        shared.lock().running += 1;
        let started = std::thread::Builder::new()
            .name("brood-output".into())
            .spawn(move || {
                copy(&shared, source, sink, pattern);
                shared.lock().running -= 1;
                shared.changed.notify_all();
            });
        if let Err(e) = started {
            self.shared.lock().running -= 1;
            return Err(e);
        }
        Ok(())
    }

    /// The tail, once the streams have ended or at `deadline` (a descendant
    /// that outlived the child may hold them open).
    pub(crate) fn tail_by(&self, deadline: Instant) -> String {
        let mut st = self.shared.lock();
        while st.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let bytes: Vec<u8> = st.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn copy(shared: &Shared, source: OwnedFd, sink: Sink, pattern: Option<String>) {
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match pipe::read(source.as_fd(), &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let seen = pattern
            .as_deref()
            .is_some_and(|p| find_line(&mut line, chunk, p.as_bytes()));
        {
            let mut st = shared.lock();
            st.tail.extend(chunk);
            let over = st.tail.len().saturating_sub(TAIL);
            st.tail.drain(..over);
            if seen && !st.matched {
                st.matched = true;
                let _ = pipe::write_some(shared.wake.as_fd(), b"!");
            }
        }
        match &sink {
            Sink::Ours(fd) => {
                // Our own stream may be closed: the child's output is then
                // dropped, as it would have been.
                let _ = pipe::write_all(pipe::borrow_std(*fd), chunk);
            }
            Sink::Pipe(fd) => {
                if pipe::write_all(fd.as_fd(), chunk).is_err() {
                    // The reader is gone: so is the child's pipe, as
                    // without the relay (it gets EPIPE).
                    return;
                }
            }
        }
    }
}

/// Adds `chunk` to the current `line`; true if a line that ended in it
/// contains `pattern`.
fn find_line(line: &mut Vec<u8>, chunk: &[u8], pattern: &[u8]) -> bool {
    let mut seen = false;
    for piece in chunk.split_inclusive(|&b| b == b'\n') {
        line.extend_from_slice(piece);
        if line.len() > MAX_LINE {
            line.drain(..line.len() - MAX_LINE);
        }
        if piece.ends_with(b"\n") {
            seen |= line.windows(pattern.len().max(1)).any(|w| w == pattern);
            line.clear();
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::find_line;

    #[test]
    fn a_line_is_matched_once_it_ends_even_across_chunks() {
        let mut line = Vec::new();
        assert!(!find_line(&mut line, b"loading\nlist", b"listening"));
        assert!(!find_line(&mut line, b"ening on 80", b"listening"));
        assert!(find_line(&mut line, b"80\nmore", b"listening"));
        assert!(!find_line(&mut line, b"\n", b"listening"));
    }
}
