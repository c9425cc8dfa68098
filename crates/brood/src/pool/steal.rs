//! Work stealing: while a worker is stuck on a long item and another is
//! idle, the items the stuck one holds but has not begun go to the idle one.
//!
//! Items travel in chunks and each worker holds a few ahead, so the items
//! queued behind a hung (or merely long) item used to wait for as long as it
//! ran — up to its timeout, or for ever — while another worker sat idle. They
//! are already on their way to the stuck worker (in its socket, or read into
//! its buffer), so they cannot be called back. Instead the pool writes into
//! the worker's progress page the range of its item numbers handed away
//! (`Progress::hand_away`); the worker reads it
//! before each item and answers each of those with a placeholder instead of
//! running it, and the pool throws those answers away (`Worker::discard`).
//! Which items have begun, the worker's own count in the same page says.
//! Should the worker begin one of them in the instant between the pool's
//! reading of its count and its writing of the range, that item runs on both
//! workers and the answer of the stuck one is thrown away: every item still
//! gets exactly one result.
//!
//! A worker is stuck once its current item has run [`STUCK_AFTER`] and twice
//! its usual item time (so that items of even length are not passed back and
//! forth). A worker that handed items away is given nothing new until it has
//! answered them all.

use super::board::Board;
use super::conn::Worker;
use super::items::Run;
use super::line::Line;
use std::time::{Duration, Instant};

/// How long the current item must have run before the items behind it move
/// (at least; see [`stuck_at`]).
pub(super) const STUCK_AFTER: Duration = Duration::from_millis(10);

/// How many of the items `w` holds it has not begun (they are at the back).
fn unbegun(w: &Worker) -> usize {
    let (started, _) = w.progress.read();
    let begun = started.saturating_sub(w.received);
    (w.inflight.len() as u64).saturating_sub(begun) as usize
}

/// When the current item of `w`, begun at `begun`, makes it stuck: its
/// run time (the pool's paused time not counted: see `board.rs`) passed.
fn stuck_at(w: &Worker, begun: Instant, board: &Board, now: Instant) -> Instant {
    let limit = STUCK_AFTER.max(Duration::from_nanos(w.item_ns.saturating_mul(2)));
    board.due(begun, limit, now)
}

/// Takes from `w` the items it holds and has not begun: they are fenced off
/// in its progress page, and their answers will be thrown away.
fn hand_away(w: &mut Worker) -> Line {
    let (started, _) = w.progress.read();
    let begun = started.saturating_sub(w.received);
    if begun >= w.inflight.len() as u64 {
        return Line::new();
    }
    let upto = w.received + w.inflight.len() as u64;
    w.progress.hand_away(started, upto);
    let kept = w.inflight.split_front(begun as usize);
    let taken = std::mem::replace(&mut w.inflight, kept);
    w.discard += taken.len();
    if !w.quitting {
        w.assigned = w.assigned.saturating_sub(taken.len());
    }
    taken
}

/// When nothing waits to be handed out and a worker is idle: the unbegun
/// items of every stuck worker go back in line (for the idle ones). Returns
/// when to look again: the moment a worker holding unbegun items would be
/// stuck, if any.
pub(super) fn steal(
    slots: &mut [Option<Worker>],
    board: &Board,
    run: &mut Run<'_>,
    now: Instant,
) -> Option<Instant> {
    if !run.pending.is_empty() || !slots.iter().flatten().any(Worker::idle) {
        return None;
    }
    let mut next: Option<Instant> = None;
    for w in slots.iter_mut().flatten() {
        if w.discard > 0 || unbegun(w) == 0 {
            continue;
        }
        let Some(front) = w.inflight.front() else {
            continue;
        };
        let at = stuck_at(w, run.reruns.started_at(front, w.since), board, now);
        if now < at {
            next = Some(next.map_or(at, |n| n.min(at)));
            continue;
        }
        let taken = hand_away(w);
        run.pending.append(taken);
    }
    next
}
