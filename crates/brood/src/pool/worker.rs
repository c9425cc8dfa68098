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
//! **Channel.** The worker's argument (a [`Boot`]) names an abstract Unix socket
//! that the pool listens on and carries a random token. The worker connects and
//! sends the token; the pool accepts only a connection whose kernel-checked peer
//! pid (`SO_PEERCRED`) is the worker it started and whose token matches. A socket
//! reached by connecting works alike for a forked, a re-executed and a
//! fork-server child, which inherited descriptors do not.
//!
//! **Frames.**
//! - pool → worker: `[u32 len][payload]`, where the payload is a postcard
//!   [`TaskHead`] followed by `count` items, each `[u32 len][postcard bytes]`.
//!   `len == 0` means "quit": the worker returns. (A forked worker inherits the
//!   pool's end of its siblings' sockets, so end-of-file alone cannot be relied
//!   on to stop a worker; the quit frame can.)
//! - worker → pool: one frame per item, `[u32 len][u8 tag][payload]` with
//!   `len` counting the tag, sent in batches: at the end of each chunk, and
//!   before that whenever the batch is older than [`Boot::flush_after_us`] (so
//!   a slow item's result goes out as soon as it is done). One write per item
//!   would cost more than a tiny function itself. Which item a dying worker was
//!   running is not read from the results but from its progress counters (see
//!   `progress.rs`).

use super::progress::Progress;
use crate::process::child::panic_message;
use crate::process::crossing::{self, FnRef, Trampoline};
use crate::sys::socket::send_with_fds;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::cell::RefCell;
use std::io::Read;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Result tag: the function returned; the payload is the postcard result.
pub(super) const TAG_OK: u8 = 0;
/// Result tag: the function panicked; the payload is the message (UTF-8).
pub(super) const TAG_PANIC: u8 = 1;
/// Result tag: the item could not be run (argument or result did not
/// (de)code, the function could not be found); the payload is the reason.
pub(super) const TAG_FAILED: u8 = 2;

/// What a worker starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Boot {
    /// The abstract socket name (without the leading NUL).
    pub(super) addr: Vec<u8>,
    /// Proves to the pool that this connection is the worker it started.
    pub(super) token: u64,
    /// Send the batch of results once it is this old (0: after every item).
    pub(super) flush_after_us: u64,
}

/// The head of a task frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TaskHead {
    pub(super) func: FnRef,
    pub(super) count: u32,
}

/// A function reference resolved in this process: the trampoline and the
/// function's address, or why not.
type Resolved = Result<(Trampoline, usize), String>;

/// The worker: connect, then run task frames until told to quit. A worker
/// whose pool is gone (connection closed or reset) returns too.
pub(super) fn worker_main(boot: Boot) {
    use std::os::linux::net::SocketAddrExt;
    let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(&boot.addr) else {
        return;
    };
    let Ok(mut sock) = UnixStream::connect_addr(&addr) else {
        return;
    };
    let Ok((progress, page)) = Progress::create() else {
        return;
    };
    let hello = boot.token.to_le_bytes();
    if send_with_fds(sock.as_fd(), &hello, &[page.as_fd()]).is_err() {
        return;
    }
    drop(page);
    let flush_after = Duration::from_micros(boot.flush_after_us);
    // One function per map: resolve it once, not per frame.
    let mut last: Option<(FnRef, Resolved)> = None;
    let mut frame = Vec::new();
    let mut seq = 0u64;
    loop {
        let mut len = [0u8; 4];
        if sock.read_exact(&mut len).is_err() {
            return;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 {
            return;
        }
        frame.clear();
        frame.resize(len, 0);
        if sock.read_exact(&mut frame).is_err() {
            return;
        }
        let Ok((head, mut rest)) = postcard::take_from_bytes::<TaskHead>(&frame) else {
            // Cannot even tell how many items came: the pool sees the worker
            // end and fails the items it sent.
            return;
        };
        let resolved = match &last {
            Some((r, res)) if *r == head.func => res.clone(),
            _ => {
                let res = crossing::resolve(&head.func);
                last = Some((head.func, res.clone()));
                res
            }
        };
        let mut flushed = Instant::now();
        for k in 0..head.count {
            let Some((item, tail)) = split_item(rest) else {
                return;
            };
            rest = tail;
            progress.started(seq + 1);
            match &resolved {
                Ok((tramp, func)) => {
                    tramp(*func, item.to_vec(), -1);
                }
                Err(e) => push_result(TAG_FAILED, e.as_bytes()),
            }
            seq += 1;
            progress.finished(seq);
            // Send the batch at the end of the chunk, when it is big, or when
            // it has waited long enough: a slow item's result goes out at once,
            // small ones travel together.
            let now = Instant::now();
            let big = OUT.with(|o| o.borrow().len() >= 64 << 10);
            if k + 1 == head.count || big || now.duration_since(flushed) >= flush_after {
                if !flush(&sock) {
                    return;
                }
                flushed = now;
            }
        }
    }
}

thread_local! {
    /// Result frames not yet sent (see `worker_main`).
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends one result frame to the batch.
fn push_result(tag: u8, payload: &[u8]) {
    let (tag, payload) = match u32::try_from(payload.len() + 1) {
        Ok(_) => (tag, payload),
        Err(_) => (TAG_FAILED, &b"the result is larger than 4 GiB"[..]),
    };
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        o.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
        o.push(tag);
        o.extend_from_slice(payload);
    });
}

/// Sends the batch; false if the pool is gone.
fn flush(sock: &UnixStream) -> bool {
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        let ok = crate::sys::pipe::write_all(sock.as_fd(), &o).is_ok();
        o.clear();
        ok
    })
}

/// `[u32 len][bytes]` off the front of `buf`.
pub(super) fn split_item(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let rest = &buf[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// One per `(A, R)`: runs one item in the worker and adds its result frame to
/// the batch (the descriptor argument is unused).
/// Returns 0. Its signature is `crossing`'s
/// [`Trampoline`], so that it crosses a re-execution the same way a
/// [`Process`](crate::Process) function does.
pub(super) fn task<A, R>(func: usize, arg: Vec<u8>, _out: RawFd) -> i32
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    // SAFETY: `func` was resolved by `crossing::resolve` from an offset that the
    // pool computed for a `fn(A) -> R` together with this very trampoline
    // instance (`Pool::map::<A, R>` builds both), in a process running the same
    // executable file; see `crossing` for why the address names the same
    // function here.
    let f = unsafe { std::mem::transmute::<*const (), fn(A) -> R>(func as *const ()) };
    let (tag, payload) = match postcard::from_bytes::<A>(&arg) {
        Err(e) => (TAG_FAILED, format!("cannot decode the argument: {e}")),
        Ok(a) => match panic::catch_unwind(AssertUnwindSafe(move || f(a))) {
            Ok(r) => match push_value(&r) {
                Ok(()) => return 0,
                Err(e) => (TAG_FAILED, format!("cannot encode the result: {e}")),
            },
            Err(p) => (TAG_PANIC, panic_message(p.as_ref())),
        },
    };
    push_result(tag, payload.as_bytes());
    0
}

/// Encodes a result straight into the batch as a `TAG_OK` frame (no buffer of
/// its own: that allocation was a visible cost per tiny item).
fn push_value<R: Serialize>(r: &R) -> Result<(), String> {
    OUT.with(|o| {
        let mut o = o.borrow_mut();
        let start = o.len();
        o.extend_from_slice(&[0, 0, 0, 0, TAG_OK]);
        let encoded = postcard::to_extend(r, super::run::Append(&mut o)).map(drop);
        let len = o.len() - start - 4;
        match (encoded, u32::try_from(len)) {
            (Ok(()), Ok(len)) => {
                o[start..start + 4].copy_from_slice(&len.to_le_bytes());
                Ok(())
            }
            (encoded, _) => {
                o.truncate(start);
                Err(match encoded {
                    Err(e) => e.to_string(),
                    Ok(()) => "the result is larger than 4 GiB".into(),
                })
            }
        }
    })
}

/// The function reference a task frame carries for `f`.
pub(super) fn fn_ref<A, R>(f: fn(A) -> R) -> Result<FnRef, String>
where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    crossing::fn_ref(task::<A, R>, f as usize)
}
