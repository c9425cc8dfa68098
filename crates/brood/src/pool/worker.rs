//! The worker's side of a [`Pool`](super::Pool), and the wire format both
//! sides share.
//!
//! A worker is an ordinary brood [`Process`](crate::Process) running
//! [`worker_main`], which is not generic: a pool's workers exist before anyone
//! knows which functions they will run. Each task frame names its function the
//! way a [`Process`](crate::Process) request does (`crossing::FnRef`: an offset
//! in the executable, with a per-`(A, R)` trampoline), so one worker serves
//! `map`s of any types, under every start method.
//!
//! **Channel.** Each worker's channel is one end of a `socketpair(SOCK_STREAM)`
//! that the pool made for it and handed down to it alone: inherited by a
//! forked worker, attached with `SCM_RIGHTS` to the request of a re-executed or
//! fork-server one. It has no name, so no other local process can connect to
//! it, flood it or feed it (an abstract socket, which brood once used, is
//! listed in `/proc/net/unix` and carries no permissions). The worker's first
//! message is its hello: the token from its [`Boot`], with its progress page
//! attached.
//!
//! **Frames** (the `wire` module's): pool → worker, a `Task` frame (a
//! [`TaskHead`] and `count` items) or `Quit`; worker → pool, one `Value`,
//! `Panic` or `Failed` frame per item, sent in batches: at the end of each
//! chunk, and before that whenever the batch is older than
//! [`Boot::flush_after_us`] (so a slow item's result goes out as soon as it is
//! done). One write per item would cost more than a tiny function itself.
//! Which item a dying worker was running is not read from the results but from
//! its progress counters (see `progress.rs`).

use super::batch;
use super::chunk::{self, Pace, run_chunk};
use super::progress::Progress;
use super::shared::{self, Inbox};
use crate::sys::image::{self, FnRef, Resolved};
use crate::sys::socket::send_with_fds;
use crate::wire::frame::{self, FrameKind};
use crate::wire::{Boot, TaskHead};
use serde::{Serialize, de::DeserializeOwned};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A function reference resolved in this process, or why it cannot be.
type Lookup = Result<Resolved, String>;

/// The worker: say hello, then run task frames until told to quit. A worker
/// whose pool is gone (connection closed or reset) returns too.
pub(super) fn worker_main(boot: Boot) {
    let Some(sock) = crate::process::child::take_handed_down() else {
        return;
    };
    let sock = UnixStream::from(sock);
    let Ok((progress, page)) = crate::fdlimit::with_room(Progress::create) else {
        return;
    };
    // The initializer and the tasks get the program's soft descriptor limit.
    crate::fdlimit::give_back();
    // For the worker's whole life, and readable by its tasks.
    let progress: &'static Progress = Box::leak(Box::new(progress));
    chunk::set_page(progress);
    let hello = boot.token.to_le_bytes();
    // The initializer runs before the hello, so that a failing one stops the
    // pool's start with its message (sent after the token, without the page).
    if let Some(init) = &boot.init
        && let Err(why) = super::state::initialize(init)
    {
        let mut failed = Vec::new();
        batch::push_failure_into(&mut failed, &why);
        if send_with_fds(sock.as_fd(), &hello, &[]).is_ok() {
            let _ = crate::sys::pipe::write_all(sock.as_fd(), &failed);
        }
        return;
    }
    progress.start_counting();
    if send_with_fds(sock.as_fd(), &hello, &[page.as_fd()]).is_err() {
        return;
    }
    drop(page);
    let flush_after = Duration::from_micros(boot.flush_after_us);
    chunk::set_pace(Pace::new(flush_after));
    // One function per map: resolve it once, not per frame.
    let mut last: Option<(FnRef, Lookup)> = None;
    let mut incoming = Incoming::default();
    // Results, and chunks, held since the last send at a chunk's end.
    let mut held = 0usize;
    let mut held_chunks = 0usize;
    // The shared data the pool sent, by id.
    let mut inbox = Inbox::new();
    loop {
        let (kind, frame) = match incoming.next_frame(sock.as_fd()) {
            Ok(f) => f,
            // The pool is gone, or sent garbage: nothing sensible to run.
            Err(_) => return,
        };
        if kind == FrameKind::Share {
            // A region that cannot be mapped fails the items that name it
            // (they do not decode), not the worker.
            shared::receive_share(&frame, &mut incoming.fds, &mut inbox);
            continue;
        }
        if kind != FrameKind::Task {
            // Quit (or anything else: stop rather than guess), with the
            // results still held sent first.
            progress.record_usage();
            batch::flush(sock.as_fd());
            return;
        }
        let Ok((head, items)) = postcard::take_from_bytes::<TaskHead>(&frame) else {
            // Cannot even tell how many items came: the pool sees the worker
            // end and fails the items it sent.
            return;
        };
        let resolved = match &last {
            Some((r, res)) if *r == head.func => res.clone(),
            _ => {
                let res = image::resolve(&head.func).map_err(|e| e.to_string());
                last = Some((head.func, res.clone()));
                res
            }
        };
        // The items run in the function's own runner (`RunTask`), which
        // sends the batch when it is big or old; here it may go at the end
        // of the chunk (small chunks share a write, yet the pool hears of
        // them in time to hand out more: see below).
        let prompt = head.prompt || flush_after.is_zero();
        chunk::update_pace(|pace| pace.prompt(prompt));
        let ran = match &resolved {
            Ok(resolved) => shared::resolving(&mut inbox, || {
                resolved.run(Cow::Borrowed(items), Some(sock.as_fd()))
            }),
            Err(e) => run_chunk(items, sock.as_fd(), |_, batch, _| batch.push_failure(e)),
        };
        if ran != 0 {
            // The pool is gone, or the frame was cut: nothing sensible to run.
            return;
        }
        held += head.count as usize;
        held_chunks += 1;
        // Once the chunks still queued are no more than those held, the
        // pool hears of them, so that it hands out more before this worker
        // runs out (with one-item chunks, half of what it holds).
        if prompt || held >= Pace::ENOUGH || incoming.queued() <= held_chunks {
            progress.record_usage();
            if !batch::flush(sock.as_fd()) {
                return;
            }
            held = 0;
            held_chunks = 0;
            chunk::update_pace(Pace::flushed);
        }
    }
}

/// Whether the pool asked the task now running to stop: its per-call soft
/// timeout ([`CallOptions::soft_timeout`](crate::CallOptions::soft_timeout))
/// passed. A long task checks it now and then and returns early (billiard's
/// `SoftTimeLimitExceeded`, as a flag); the hard timeout, if any, still
/// kills the worker later. Always `false` outside a pool worker.
///
/// ```
/// # brood::init();
/// use brood::{CallOptions, Pool};
/// use std::time::Duration;
/// fn patient(limit: u64) -> u64 {
///     let mut n = 0;
///     while n < limit && !brood::task_cancelled() {
///         n += 1;
///         std::thread::sleep(Duration::from_millis(1));
///     }
///     n
/// }
/// let pool = Pool::new(1)?;
/// let opts = CallOptions::new().soft_timeout(Duration::from_millis(50));
/// let n = pool.with(opts).map(patient, [1_000_000])?[0].clone().unwrap();
/// assert!(n < 1_000_000, "stopped early");
/// assert!(!brood::task_cancelled());
/// # Ok::<(), brood::Error>(())
/// ```
pub fn task_cancelled() -> bool {
    chunk::page().is_some_and(Progress::cancelled)
}

/// Frames from the pool, and the descriptors that came with them.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    pos: usize,
    fds: VecDeque<OwnedFd>,
}

impl Incoming {
    /// How many whole frames are here.
    fn queued(&self) -> usize {
        let mut rest = &self.buf[self.pos..];
        let mut n = 0;
        while let Ok(Some((_, _, used))) = frame::split_frame(rest) {
            rest = &rest[used..];
            n += 1;
        }
        n
    }

    /// The next whole frame (waiting for it).
    fn next_frame(&mut self, sock: BorrowedFd<'_>) -> std::io::Result<(FrameKind, Vec<u8>)> {
        loop {
            if let Some((kind, payload, used)) = frame::split_frame(&self.buf[self.pos..])? {
                let payload = payload.to_vec();
                self.pos += used;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok((kind, payload));
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            match shared::recv_into(sock, &mut self.buf, &mut self.fds, 64 << 10) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs one pool task in the worker and adds its result frame to the batch.
pub(super) struct RunTask;

impl<A, R> image::Runner<fn(A) -> R> for RunTask
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    /// Runs a whole chunk: `arg` holds its items, `out` is the pool's socket.
    fn run(f: fn(A) -> R, arg: Cow<'_, [u8]>, out: Option<BorrowedFd<'_>>) -> i32 {
        let Some(sock) = out else { return 1 };
        run_chunk(&arg, sock, |item, batch, catcher| {
            chunk::run_item(item, batch, catcher, f)
        })
    }
}

/// The function reference a task frame carries for `f`.
pub(super) fn fn_ref<A, R>(f: fn(A) -> R) -> Result<FnRef, image::CrossingError>
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    image::fn_ref::<fn(A) -> R, RunTask>(f)
}
