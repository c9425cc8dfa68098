//! A worker's batch of result frames: filled as its tasks finish, sent in
//! one write (see `worker.rs` for when), with the descriptors of the shared
//! data that results name. Consecutive successes share one `Values` frame
//! (a panic, a failure or shared data closes it), so that a tiny result
//! costs its bytes and a 4-byte length, not a 16-byte header of its own.
//! A result of [`MAPPED`] bytes or more goes in a `Mapped` frame instead:
//! its bytes in a sealed `memfd` sent beside the frame, which the pool maps
//! and decodes from, so they are not copied through the socket, a read
//! buffer and the pool's arena on the way.

use super::shared::{self, Attached};
use crate::sys::shm::Region;
use crate::wire::PanicReport;
use crate::wire::frame::{self, FrameKind};
use crate::wire::numbers;
use serde::Serialize;
use std::cell::RefCell;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

/// The encoded size from which a result crosses in a `memfd` (below it, the
/// socket's copies cost less than making, filling and mapping one).
pub(super) const MAPPED: usize = 1 << 20;

/// Result frames not yet sent (see `worker_main`).
pub(super) struct Batch {
    buf: Vec<u8>,
    /// The descriptors of shared data that go with `buf`.
    attach: Attached,
    /// Where the `Values` frame at the end of `buf` starts, while results
    /// may still join it.
    open: Option<usize>,
    /// Bytes of results waiting in `memfd`s (`Mapped` frames), counted as
    /// waiting so that they leave as soon as small results of that size
    /// would.
    mapped: usize,
}

thread_local! {
    static OUT: RefCell<Batch> = const {
        RefCell::new(Batch { buf: Vec::new(), attach: Attached::new(), open: None, mapped: 0 })
    };
}

/// Runs `f` on the batch (once per chunk, not per item: see
/// `chunk::run_chunk`).
pub(super) fn with<T>(f: impl FnOnce(&mut Batch) -> T) -> T {
    OUT.with(|o| f(&mut o.borrow_mut()))
}

/// Sends the batch; false if the pool is gone.
pub(super) fn flush(sock: BorrowedFd<'_>) -> bool {
    with(|b| b.flush(sock))
}

impl Batch {
    /// Bytes waiting.
    pub(super) fn len(&self) -> usize {
        self.buf.len() + self.mapped
    }

    /// Sends what waits; false if the pool is gone.
    pub(super) fn flush(&mut self, sock: BorrowedFd<'_>) -> bool {
        let ok = shared::send_out(sock, &self.buf, &mut 0, &mut self.attach).is_ok();
        self.buf.clear();
        self.attach.clear();
        self.open = None;
        self.mapped = 0;
        ok
    }

    /// Appends a `Failed` frame with `reason`.
    pub(super) fn push_failure(&mut self, reason: &str) {
        self.open = None;
        push_failure_into(&mut self.buf, reason);
    }

    /// Appends a task's result (or its panic): encoded straight into the
    /// batch (no buffer of its own: that allocation was a visible cost per
    /// tiny item).
    pub(super) fn push_outcome<R: Serialize + 'static>(&mut self, outcome: Result<R, PanicReport>) {
        match outcome {
            Ok(r) => self.push_value(&r),
            Err(report) => {
                self.open = None;
                let _ = frame::append_frame(&mut self.buf, FrameKind::Panic, &report);
            }
        }
    }

    /// Adds a result to the open `Values` frame (opening one if needed).
    fn push_value<R: Serialize + 'static>(&mut self, r: &R) {
        let open = match self.open {
            Some(start) => start,
            None => frame::begin_frame(&mut self.buf, FrameKind::Values),
        };
        let item = self.buf.len();
        // A big byte vector or string goes straight into its memfd (postcard
        // writes it as its length and its bytes), not through the buffer.
        if let Some(bytes) = numbers::as_bytes(r).filter(|b| b.len() >= MAPPED)
            && let Ok(region) = Region::copy_of(&[&numbers::length_head(bytes.len()), bytes])
        {
            self.push_region(open, item, region);
            return;
        }
        // append_encoded_item takes back what it wrote when it fails.
        let (encoded, named) = shared::crossing(|| frame::append_encoded_item(&mut self.buf, r));
        if let Err(e) = encoded {
            self.close(open);
            push_failure_into(
                &mut self.buf,
                &format!("cannot encode the result: {}", frame::encode_error(&e)),
            );
            return;
        }
        if !named.is_empty() {
            // The shared data goes first, so that the pool has it when it
            // decodes the value (the item is a handle: small): the value
            // leaves the open frame and follows the share in one of its own.
            let value = self.buf.split_off(item + 4);
            self.buf.truncate(item);
            self.close(open);
            shared::push_share(&mut self.buf, &mut self.attach, Vec::new(), &named);
            let start = frame::begin_frame(&mut self.buf, FrameKind::Values);
            frame::append_item(&mut self.buf, &value);
            frame::end_frame(&mut self.buf, start);
            self.open = Some(start);
            return;
        }
        // Without a memfd (out of descriptors, say), it stays in the buffer.
        if self.buf.len() - item - 4 >= MAPPED
            && let Ok(region) = Region::copy_of(&[&self.buf[item + 4..]])
        {
            self.push_region(open, item, region);
            return;
        }
        frame::end_frame(&mut self.buf, open);
        self.open = Some(open);
    }

    /// Puts the result encoded at `item` (the last of the `Values` frame
    /// begun at `open`) in a `Mapped` frame of its own, its bytes now in
    /// `region`.
    #[cold]
    fn push_region(&mut self, open: usize, item: usize, region: Region) {
        self.mapped += region.bytes().len();
        let len = region.bytes().len() as u64;
        self.buf.truncate(item);
        self.close(open);
        let at = self.buf.len();
        let start = frame::begin_frame(&mut self.buf, FrameKind::Mapped);
        self.buf.extend_from_slice(&len.to_le_bytes());
        frame::end_frame(&mut self.buf, start);
        self.attach.push_back((at, vec![Arc::new(region)]));
        // The encoding buffer may have grown as big as the result: give it
        // back rather than keep it for the worker's life.
        self.buf.shrink_to(MAPPED);
    }

    /// Ends the `Values` frame begun at `open` (dropping it if it holds no
    /// result): what comes next is another frame.
    fn close(&mut self, open: usize) {
        if self.buf.len() == open + frame::HEADER {
            self.buf.truncate(open);
        } else {
            frame::end_frame(&mut self.buf, open);
        }
        self.open = None;
    }
}

/// Appends a `Failed` frame with `reason` to `buf`.
pub(super) fn push_failure_into(buf: &mut Vec<u8>, reason: &str) {
    let _ = frame::append_frame(buf, FrameKind::Failed, reason);
}
