//! A pool worker's loop over the items of one chunk ([`run_chunk`]), and when
//! it sends their results ([`Pace`]). Generic code called from each task's
//! runner (`worker::RunTask`, `state::RunWithState`), below both.

use super::batch;
use super::progress::Progress;
use crate::process::child::{Catcher, catching};
use crate::wire::frame;
use serde::{Serialize, de::DeserializeOwned};
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// When a worker sends its results: when the batch is big, or older than
/// `flush_after`; or each at once, for items with a timeout (the pool's,
/// a call's or a task's: the pool counts an item's time from the previous
/// result, and asks the item it thinks is running to stop). The age is read
/// on the coarse clock (`sys::clock`) after every item: a few nanoseconds,
/// where `Instant::now` was a sixth of a tiny item's cost. So a batch may
/// wait up to one tick (1–4 ms) past `flush_after`; what a worker that dies
/// had not sent runs again.
#[derive(Clone, Copy)]
pub(super) struct Pace {
    flush_after_ns: u64,
    since: u64,
    /// The chunk running now asks for each result at once.
    prompt: bool,
}

impl Pace {
    /// Bytes of results that go out without waiting for the chunk's end.
    const BIG: usize = 64 << 10;
    /// Results held at a chunk's end that go out even though the next
    /// chunk is here.
    pub(super) const ENOUGH: usize = 256;

    pub(super) fn new(flush_after: Duration) -> Pace {
        Pace {
            flush_after_ns: u64::try_from(flush_after.as_nanos()).unwrap_or(u64::MAX),
            since: crate::sys::clock::coarse_nanos(),
            prompt: flush_after.is_zero(),
        }
    }

    /// Each result of the chunk about to run goes out at once, or not.
    pub(super) fn prompt(self, prompt: bool) -> Pace {
        Pace { prompt, ..self }
    }

    /// The batch was just sent.
    pub(super) fn flushed(self) -> Pace {
        Pace {
            since: crate::sys::clock::coarse_nanos(),
            ..self
        }
    }
}

/// The answer to an item the pool handed to another worker (see `steal.rs`).
const HANDED_AWAY: &str = "handed to another worker";

/// Runs the items of a chunk (`[u32 len][bytes]` each) with `one`, which
/// decodes an item, calls the function (under the catcher, so that a panic
/// becomes its outcome) and puts its outcome into the batch;
/// counts each item in the progress page, and sends the batch whenever it is
/// big or has waited long enough (a slow item's result goes out at once,
/// small ones travel together). Generic, so that the loop over tiny items is
/// one inlined body: a call through the trampoline and a thread-local
/// lookup per item cost more than the function itself. 0 when every item
/// ran; 1 if the pool is gone; 2 if the items were cut short.
pub(super) fn run_chunk(
    items: &[u8],
    sock: BorrowedFd<'_>,
    mut one: impl FnMut(&[u8], &mut batch::Batch, &mut Catcher),
) -> i32 {
    let Some(progress) = PAGE.with(|p| p.get()) else {
        return 1;
    };
    let mut pace = PACE
        .with(|p| p.get())
        .unwrap_or_else(|| Pace::new(Duration::ZERO));
    let code = catching(|catcher| {
        batch::with(|batch| {
            let (mut seq, _) = progress.read();
            let mut items = items;
            while !items.is_empty() {
                let Some((item, rest)) = frame::split_item(items) else {
                    return 2;
                };
                items = rest;
                seq += 1;
                progress.started(seq);
                if progress.handed_away(seq) {
                    // Another worker runs it; the pool throws this away.
                    batch.push_failure(HANDED_AWAY);
                } else {
                    one(item, batch, catcher);
                }
                progress.finished(seq);
                let now = crate::sys::clock::coarse_nanos();
                let old = now.saturating_sub(pace.since) >= pace.flush_after_ns;
                if pace.prompt || old || batch.len() >= Pace::BIG {
                    progress.record_usage();
                    if !batch.flush(sock) {
                        return 1;
                    }
                    pace.since = now;
                }
            }
            0
        })
    });
    // `worker_main` sends what is left at the chunk's end.
    PACE.with(|p| p.set(Some(pace)));
    code
}

/// One item of a chunk, for `run_chunk`'s `one`: decodes it, calls `f`
/// under the catcher, and puts the outcome into the batch.
#[inline]
pub(super) fn run_item<A, R>(
    item: &[u8],
    batch: &mut batch::Batch,
    catcher: &mut Catcher,
    f: impl FnOnce(A) -> R,
) where
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    match frame::decode_value::<A>(item) {
        Ok(a) => batch.push_outcome(catcher.catch(move || f(a))),
        Err(e) => batch.push_failure(&format!("cannot decode the argument: {e}")),
    }
}

/// This worker's progress page, for its whole life.
pub(super) fn set_page(page: &'static Progress) {
    PAGE.with(|p| p.set(Some(page)));
}

/// This worker's progress page (`None` outside a pool worker).
pub(super) fn page() -> Option<&'static Progress> {
    PAGE.with(|p| p.get())
}

/// Sets how this worker paces its results.
pub(super) fn set_pace(pace: Pace) {
    PACE.with(|p| p.set(Some(pace)));
}

/// Changes how this worker paces its results (once it was set).
pub(super) fn update_pace(f: impl FnOnce(Pace) -> Pace) {
    PACE.with(|p| p.set(p.get().map(f)));
}

thread_local! {
    /// This worker's progress page (set in a worker only).
    static PAGE: std::cell::Cell<Option<&'static Progress>> = const { std::cell::Cell::new(None) };
    /// When this worker last sent its results (set in a worker only).
    static PACE: std::cell::Cell<Option<Pace>> = const { std::cell::Cell::new(None) };
}
