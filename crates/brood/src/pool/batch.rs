//! A worker's batch of result frames: filled as its tasks finish, sent in
//! one write (see `worker.rs` for when), with the descriptors of the shared
//! data that results name.

use super::shared::{self, Attached};
use crate::wire::PanicReport;
use crate::wire::frame::{self, FrameKind};
use serde::Serialize;
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

thread_local! {
    /// Result frames not yet sent (see `worker_main`), and the descriptors of
    /// shared data that go with them.
    static OUT: RefCell<(Vec<u8>, Attached)> = const { RefCell::new((Vec::new(), Attached::new())) };
}

/// Bytes waiting in the batch.
pub(super) fn len() -> usize {
    OUT.with(|o| o.borrow().0.len())
}

/// Appends a `Failed` frame with `reason` to the batch.
pub(super) fn push_failure(reason: &str) {
    OUT.with(|o| push_failure_into(&mut o.borrow_mut().0, reason));
}

/// Sends the batch; false if the pool is gone.
pub(super) fn flush(sock: &UnixStream) -> bool {
    OUT.with(|o| {
        let (buf, attach) = &mut *o.borrow_mut();
        let ok = shared::send_out(sock.as_fd(), buf, &mut 0, attach).is_ok();
        buf.clear();
        attach.clear();
        ok
    })
}

/// Appends a task's result (or its panic) to the batch: encoded straight into
/// it (no buffer of its own: that allocation was a visible cost per tiny item).
pub(super) fn push_outcome<R: Serialize>(outcome: Result<R, PanicReport>) {
    OUT.with(|o| {
        let (o, attach) = &mut *o.borrow_mut();
        match outcome {
            Ok(r) => {
                let start = o.len();
                // append_frame takes back what it wrote when it fails.
                let (encoded, named) =
                    shared::crossing(|| frame::append_frame(o, FrameKind::Value, &r));
                if let Err(e) = encoded {
                    o.truncate(start);
                    push_failure_into(
                        o,
                        &format!("cannot encode the result: {}", frame::encode_error(&e)),
                    );
                } else if !named.is_empty() {
                    // The shared data goes first, so that the pool has it
                    // when it decodes the value (the frame is a handle: small).
                    let value = o.split_off(start);
                    shared::push_share(o, attach, Vec::new(), &named);
                    o.extend_from_slice(&value);
                }
            }
            Err(report) => {
                let _ = frame::append_frame(o, FrameKind::Panic, &report);
            }
        }
    })
}

/// Appends a `Failed` frame with `reason` to `buf`.
pub(super) fn push_failure_into(buf: &mut Vec<u8>, reason: &str) {
    let _ = frame::append_frame(buf, FrameKind::Failed, reason);
}
