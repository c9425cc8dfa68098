//! A worker as the pool sees it: its handle, its channel and what travels
//! on it, the items it holds, its progress page.

use super::line::Line;
use super::progress::Progress;
use super::shared::{self, Attached};
use crate::Handle;
use crate::sys::shm::Region;
use crate::wire::frame::{self, FrameKind};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Weak;
use std::time::Instant;

/// The most result bytes read from one worker per turn of the loop, so that
/// one chatty worker cannot keep the pool from the others.
const READ_BUDGET: usize = 1 << 20;
/// The most read in one call.
const CHUNK: usize = 64 << 10;

/// A worker, as the pool sees it.
pub(super) struct Worker {
    pub(super) handle: Handle<()>,
    pub(super) sock: UnixStream,
    /// Result bytes read but not yet parsed.
    pub(super) inbuf: Vec<u8>,
    /// Task bytes not yet written (the socket is non-blocking, so that the pool
    /// never blocks on a worker that is busy writing results to it).
    pub(super) out: Vec<u8>,
    out_pos: usize,
    /// Descriptors of shared data that go with bytes of `out`.
    pub(super) attach: Attached,
    /// Descriptors received with its results, not yet taken by a `Share`
    /// frame.
    pub(super) fds: VecDeque<OwnedFd>,
    /// The shared data this worker has mapped, by id: kept while we hold it,
    /// forgotten (told so) once we do not.
    pub(super) sent: HashMap<u64, Weak<Region>>,
    /// Items sent and not yet answered, in the order the worker runs them.
    pub(super) inflight: Line,
    /// When the front item started, as far as the pool can tell: the arrival
    /// of the last result, or the hand-out to an idle worker. Exact with a task
    /// timeout, under which workers send each result at once.
    pub(super) since: Instant,
    /// About how long one of its items takes, in ns (0: not known yet):
    /// the time between batches of results over their number, smoothed.
    pub(super) item_ns: u64,
    /// Items ever given to this worker (for `max_tasks_per_child`).
    pub(super) assigned: usize,
    /// Told to quit (retiring, or the pool is closing).
    pub(super) quitting: bool,
    /// Results received over the worker's life.
    pub(super) received: u64,
    /// Answers still to come, after those of `inflight`, for items handed
    /// away to another worker (see `steal.rs`): thrown away. The worker gets
    /// nothing new until they came.
    pub(super) discard: usize,
    /// The worker's own count of items started and finished.
    pub(super) progress: Progress,
    /// The number (in the worker's count) of the last item asked to stop.
    cancelled: u64,
    /// Its CPU time (user, system, ns) already counted in the pool's usage.
    pub(super) spent: [u64; 2],
}

impl Worker {
    /// A worker that said hello on `sock`, with its progress page.
    pub(super) fn new(handle: Handle<()>, sock: UnixStream, progress: Progress) -> Worker {
        Worker {
            handle,
            sock,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            attach: Attached::new(),
            fds: VecDeque::new(),
            sent: HashMap::new(),
            inflight: Line::new(),
            since: Instant::now(),
            item_ns: 0,
            assigned: 0,
            quitting: false,
            received: 0,
            discard: 0,
            progress,
            cancelled: 0,
            spent: [0, 0],
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.handle.pid()
    }

    /// Holds nothing and owes nothing: ready for work.
    pub(super) fn idle(&self) -> bool {
        self.inflight.is_empty() && self.discard == 0 && !self.quitting
    }

    /// Writes what it can of `out` without blocking. A worker that went away
    /// is noticed through its pidfd, so write errors only stop the writing.
    pub(super) fn flush(&mut self) {
        // MSG_NOSIGNAL (in send_out): a dead worker must give EPIPE, not kill
        // us with SIGPIPE (a program may have restored its default action).
        let sent = shared::send_out(
            self.sock.as_fd(),
            &self.out,
            &mut self.out_pos,
            &mut self.attach,
        );
        if let Ok(false) = sent {
            return;
        }
        self.out.clear();
        self.out_pos = 0;
        self.attach.clear();
    }

    /// Whether the item at the front of the line was asked to stop.
    pub(super) fn front_cancelled(&self) -> bool {
        self.cancelled == self.received + 1
    }

    /// Asks the item at the front of the line (the one running, or about to:
    /// number `received + 1` in the worker's count) to stop; false if it was
    /// already asked.
    pub(super) fn cancel_front(&mut self) -> bool {
        if self.front_cancelled() {
            return false;
        }
        self.cancelled = self.received + 1;
        self.progress.cancel(self.cancelled);
        true
    }

    /// Shared data this worker holds that we no longer do.
    pub(super) fn forgotten(&mut self) -> Vec<u64> {
        let gone: Vec<u64> = self
            .sent
            .iter()
            .filter(|(_, w)| w.strong_count() == 0)
            .map(|(&id, _)| id)
            .collect();
        for id in &gone {
            self.sent.remove(id);
        }
        gone
    }

    /// Reads what is there, up to [`READ_BUDGET`] (the rest waits for the
    /// next turn); true at end of file (or a reset connection).
    pub(super) fn read_some(&mut self) -> bool {
        let mut read = 0;
        while read < READ_BUDGET {
            match shared::recv_into(self.sock.as_fd(), &mut self.inbuf, &mut self.fds, CHUNK) {
                Ok(0) => return true,
                // A short read took what there was: the next poll says if
                // more came (one recvmsg saved per wake-up).
                Ok(n) if n < CHUNK => return false,
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        false
    }

    pub(super) fn push_quit(&mut self) {
        let start = frame::begin_frame(&mut self.out, FrameKind::Quit);
        frame::end_frame(&mut self.out, start);
        self.quitting = true;
    }
}
