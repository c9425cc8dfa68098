//! One `map`: [`MapUnordered`], the iterator that drives the pool's event loop.
//!
//! Each turn, run only when no finished result is waiting to be yielded: hand
//! out chunks, write them without blocking, then one `poll(2)` over every
//! worker's socket and pidfd, with the nearest task deadline as its timeout;
//! read results, bury a worker whose pidfd fired (its running item fails, the
//! rest go back in line), kill a worker past its deadline, and refill empty
//! slots while work remains. Nothing waits on a guess: a death wakes the poll.

use super::death::Cause;
use super::items::Run;
use super::lease::Lease;
use super::run::{parse, timespec};
use super::shared;
use super::steal;
use super::{Config, TaskError};
use crate::sys::interrupt::InterruptWatch;
use crate::{Error, Result};
use rustix::event::{PollFd, PollFlags};
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

#[cfg(feature = "tokio")]
mod stream;

/// The owner slot of the wake descriptor among a turn's events.
const WAKE: usize = usize::MAX;
/// The owner slot of the Ctrl-C descriptor.
const INTERRUPT: usize = usize::MAX - 1;

/// What one turn of the loop did.
enum Turn {
    /// Something happened (or may have): look for results.
    Moved,
    /// Nothing was ready; the nearest task deadline, if any.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Idle(Option<Instant>),
}

/// The results of [`Pool::map_unordered`](super::Pool::map_unordered), as they
/// finish: `(index in the input, result)`. Holds the pool for its lifetime.
pub struct MapUnordered<'a, R> {
    inner: Lease<'a>,
    cfg: &'a Config,
    pub(super) run: Run<'a>,
    /// Where a stream waits on the reactor when no worker has news.
    #[cfg(feature = "tokio")]
    waiting: Option<stream::Waiting>,
    /// Also wakes the loop when readable (new submitted tasks).
    wake: Option<BorrowedFd<'a>>,
    /// Ctrl-C, watched while a thread waits in the loop (not for a stream:
    /// an async program handles Ctrl-C on its runtime).
    interrupt: Option<InterruptWatch>,
    interrupted: bool,
    _r: PhantomData<fn() -> R>,
}

// A map may move to another thread (and be polled from any worker of a
// multi-threaded runtime).
const _: fn() = || {
    fn send<T: Send>() {}
    send::<MapUnordered<'static, Vec<u8>>>();
};

impl<R> std::fmt::Debug for MapUnordered<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapUnordered")
            .field("left", &self.run.left())
            .field("yielded", &self.run.yielded)
            .finish()
    }
}

impl<'a, R: DeserializeOwned + 'static> MapUnordered<'a, R> {
    /// Starts `run` on the pool's state.
    pub(super) fn new(mut inner: Lease<'a>, cfg: &'a Config, mut run: Run<'a>) -> Result<Self> {
        if inner.closed {
            return Err(Error::PoolClosed);
        }
        run.refill(run.plan.chunk);
        // Shared data of earlier maps that we no longer hold: the workers
        // let go of it too. What their items took is learnt afresh: this
        // map's may be longer.
        for w in inner.slots.iter_mut().flatten() {
            w.item_ns = 0;
            let forget = w.forgotten();
            if !forget.is_empty() {
                shared::push_share(&mut w.out, &mut w.attach, forget, &[]);
            }
        }
        // Workers that ended while the pool was idle (killed from outside)
        // are replaced before they are given work.
        for slot in 0..inner.slots.len() {
            let dead = inner.slots[slot].as_ref().is_some_and(|w| {
                w.handle
                    .child()
                    .pidfd()
                    .is_none_or(|fd| crate::sys::pidfd::has_exited(fd).unwrap_or(true))
            });
            if dead {
                inner.bury(slot, &mut run, Cause::Exited);
            }
        }
        if !run.pending.is_empty()
            && inner.live() < cfg.size
            && let Err(e) = inner.fill(cfg)
            && inner.live() == 0
        {
            return Err(e);
        }
        Ok(MapUnordered {
            inner,
            cfg,
            run,
            #[cfg(feature = "tokio")]
            waiting: None,
            wake: None,
            interrupt: None,
            interrupted: false,
            _r: PhantomData,
        })
    }

    /// One turn of the loop: hand out work, write, wait for any event, handle it.
    /// With `block` false it does not wait: `Idle(next deadline)` when nothing
    /// was ready, so that an async caller can wait on the reactor instead.
    fn step(&mut self, block: bool) -> Turn {
        let (inner, run) = (&mut *self.inner, &mut self.run);
        // Enough items for every worker's two chunks, pulled only now: the
        // input is read as fast as the workers take it, no faster.
        let holds: usize = inner.slots.iter().flatten().map(|w| run.depth_for(w)).sum();
        run.refill(holds + run.plan.chunk);
        if run.done() {
            // A source of submitted tasks ended just now.
            return Turn::Moved;
        }
        // A chunk to every worker first, then more to each: a few slow items
        // spread over the workers rather than queue behind one.
        for w in inner.slots.iter_mut().flatten() {
            run.dispatch(w, run.plan.chunk);
        }
        for w in inner.slots.iter_mut().flatten() {
            let depth = run.depth_for(w);
            run.dispatch(w, depth);
        }
        // Nothing left to hand out and a worker idle: the items queued behind
        // a stuck one go to it (and the others).
        let now = Instant::now();
        let mut wake = steal::steal(&mut inner.slots, &inner.board, run, now);
        if !run.pending.is_empty() {
            for w in inner.slots.iter_mut().flatten() {
                let depth = run.depth_for(w);
                run.dispatch(w, depth);
            }
        }
        for w in inner.slots.iter_mut().flatten() {
            w.flush();
        }
        let mut fds = Vec::new();
        let mut owners = Vec::new();
        for (slot, w) in inner.slots.iter().enumerate() {
            let Some(w) = w else { continue };
            let mut flags = PollFlags::IN;
            if !w.out.is_empty() {
                flags |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&w.sock, flags));
            owners.push((slot, false));
            if let Some(fd) = w.handle.child().pidfd() {
                fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
                owners.push((slot, true));
            }
            if let Some(front) = w.inflight.front() {
                let soft = run.soft_timeout_of(front).filter(|_| !w.front_cancelled());
                let hard = run.deadline_of(front, w.since, &inner.board, now);
                let soft = soft.map(|t| inner.board.due(w.since, t, now));
                for at in [hard, soft].into_iter().flatten() {
                    wake = Some(wake.map_or(at, |x| x.min(at)));
                }
            }
        }
        let workers = fds.len();
        if let Some(fd) = self.wake {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            owners.push((WAKE, false));
        }
        if let Some(fd) = self.interrupt.as_ref().and_then(InterruptWatch::fd) {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            owners.push((INTERRUPT, false));
        }
        if workers == 0 {
            drop(fds);
            // The dead are replaced before a map starts only if it has items
            // then: a lazy source (submitted tasks) pulls its first ones in
            // this turn, so start workers for them now.
            if !self.run.pending.is_empty() && inner.fill(self.cfg).is_ok() && inner.live() > 0 {
                return Turn::Moved;
            }
            // No worker at all, and none could be started: fail what is left
            // rather than wait for nothing.
            self.run.fail_pending("no pool worker could be started");
            return Turn::Moved;
        }
        let ts = if block {
            wake.map(|at| timespec(at.saturating_duration_since(now)))
        } else {
            Some(timespec(Duration::ZERO))
        };
        let events: Vec<(usize, bool, bool)> = match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(_) => fds
                .iter()
                .zip(&owners)
                .filter(|(f, _)| !f.revents().is_empty())
                .map(|(f, &(slot, pidfd))| {
                    let r = f.revents();
                    let readable = r.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
                    (slot, pidfd, readable)
                })
                .collect(),
            Err(rustix::io::Errno::INTR) => Vec::new(),
            Err(e) => {
                // poll(2) itself failing (ENOMEM) would repeat forever: give up
                // on this map rather than spin.
                drop(fds);
                self.abandon(&format!("poll(2) failed: {e}"));
                return Turn::Moved;
            }
        };
        drop(fds);
        let mut moved = !events.is_empty();
        for (slot, pidfd, readable) in events {
            if slot == INTERRUPT {
                continue;
            }
            if slot == WAKE {
                if let Some(fd) = self.wake {
                    crate::sys::pipe::drain(fd);
                }
                continue;
            }
            let Some(w) = inner.slots[slot].as_mut() else {
                continue;
            };
            if pidfd {
                inner.bury(slot, run, Cause::Exited);
            } else if readable {
                let eof = w.read_some();
                let parsed = parse(w, run);
                // The worker wrote what it used before it sent these.
                inner.board.add_usage(w.take_usage());
                if !parsed {
                    inner.bury(slot, run, Cause::Broken);
                } else if eof {
                    inner.bury(slot, run, Cause::Exited);
                }
            }
        }
        let now = Instant::now();
        for slot in 0..inner.slots.len() {
            let Some(w) = inner.slots[slot].as_mut() else {
                continue;
            };
            let Some(front) = w.inflight.front() else {
                continue;
            };
            let board = &inner.board;
            if run
                .deadline_of(front, w.since, board, now)
                .is_some_and(|at| now >= at)
            {
                moved = true;
                inner.bury(slot, run, Cause::Timeout);
            } else if run
                .soft_timeout_of(front)
                .is_some_and(|t| now >= board.due(w.since, t, now))
            {
                moved |= w.cancel_front();
            }
        }
        // A dead worker is replaced while the map runs, even when what it
        // held went to other workers (see `steal.rs`).
        if !run.done()
            && inner.live() < self.cfg.size
            && let Err(e) = inner.fill(self.cfg)
            && inner.live() == 0
        {
            self.run
                .fail_pending(&format!("no pool worker could be started: {e}"));
        }
        if moved || block {
            Turn::Moved
        } else {
            Turn::Idle(wake)
        }
    }

    /// Ends the map: workers still running its items are killed, and every
    /// item without a result fails with `reason`.
    fn abandon(&mut self, reason: &str) {
        self.kill_busy();
        self.run.fail_pending(reason);
    }

    /// Wakes the loop whenever `fd` is readable (and drains it).
    pub(super) fn wake_on(&mut self, fd: BorrowedFd<'a>) {
        self.wake = Some(fd);
    }

    /// Ends the map now (the remote seam's withdrawn chunk): workers running
    /// its items are killed, and the items without a result fail.
    pub(super) fn cancel(&mut self, reason: &str) {
        self.abandon(reason);
    }

    /// Withdraws submitted task `idx` (see `Run::expire`).
    pub(super) fn expire(&mut self, idx: usize) {
        self.run.expire(idx);
    }

    /// Every item has been yielded.
    pub(super) fn finished(&self) -> bool {
        self.run.done()
    }

    /// One turn of the loop, waiting for something to happen (or Ctrl-C).
    pub(super) fn turn(&mut self) {
        if self.interrupt.is_none() {
            self.interrupt = InterruptWatch::new().ok();
        }
        self.step(true);
        if self.interrupt.as_ref().is_some_and(InterruptWatch::fired) {
            self.interrupt_now();
        }
    }

    /// Ctrl-C: the workers running this call's items are killed (the pool
    /// replaces them at its next call), and the call yields nothing more.
    fn interrupt_now(&mut self) {
        if let Some(w) = &self.interrupt {
            w.drain();
        }
        self.interrupted = true;
        self.kill_busy();
        self.run.pending.clear();
        self.run.finished.clear();
    }

    /// The next finished result, undecoded: its bytes, and the shared data
    /// the map received (a result may name some), if one is waiting.
    pub(super) fn pop_raw(&mut self) -> Option<(usize, shared::Raw)> {
        let inbox = &self.run.inbox;
        let (idx, value) = self.run.finished.pop_owned()?;
        let value = value.map(|bytes| (bytes, inbox.clone()));
        self.run.yielded += 1;
        Some((idx, value))
    }

    /// Hands every finished result, undecoded, to `take` (the remote seam's
    /// chunks, which send them on as bytes); how many.
    pub(super) fn drain_outcomes(
        &mut self,
        take: impl FnMut(usize, std::result::Result<&[u8], TaskError>),
    ) -> usize {
        let n = self.run.finished.drain(take);
        self.run.yielded += n;
        n
    }

    /// The next finished result, decoded, if one is waiting.
    fn pop_ready(&mut self) -> Option<(usize, std::result::Result<R, TaskError>)> {
        self.pop_ready_with(|idx, value| (idx, value))
    }

    /// The next finished result, decoded and handed to `take`, if one is
    /// waiting: `take` may put it where it belongs (`Pool::map`'s slot) with
    /// no move through the iterator's layers.
    #[inline]
    fn pop_ready_with<T>(
        &mut self,
        take: impl FnOnce(usize, std::result::Result<R, TaskError>) -> T,
    ) -> Option<T> {
        let inbox = &mut self.run.inbox;
        let mut failed = false;
        let out = self.run.finished.pop(|idx, outcome| {
            let value = outcome.and_then(|bytes| shared::decode_result(bytes, inbox));
            failed = value.is_err();
            take(idx, value)
        })?;
        self.run.yielded += 1;
        self.run.taken(failed);
        Some(out)
    }

    /// Hands out the first chunks without waiting for anything, so that the
    /// workers start while the caller gets ready for the results.
    pub(super) fn kick(&mut self) {
        self.step(false);
    }

    /// Hands every result to `sink` as it comes, in the order they finish;
    /// false if Ctrl-C ended the call first.
    pub(super) fn for_each_result(
        &mut self,
        mut sink: impl FnMut(usize, std::result::Result<R, TaskError>),
    ) -> bool {
        loop {
            if self.interrupted {
                return false;
            }
            if self.run.plan.progress.is_some() {
                // The callback hears of each result as it is taken.
                while self.pop_ready_with(&mut sink).is_some() {}
            } else {
                let inbox = &mut self.run.inbox;
                let n = (self.run.finished).drain(|idx, outcome| {
                    sink(idx, outcome.and_then(|b| shared::decode_result(b, inbox)))
                });
                self.run.yielded += n;
            }
            if self.run.done() {
                return true;
            }
            self.turn();
        }
    }
}

impl<R: DeserializeOwned + 'static> Iterator for MapUnordered<'_, R> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.interrupted {
                return None;
            }
            if let Some(item) = self.pop_ready() {
                return Some(item);
            }
            if self.run.done() {
                return None;
            }
            self.turn();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.run.left() {
            Some(left) => (left, Some(left)),
            None => (self.run.pulled() - self.run.yielded, None),
        }
    }
}

impl<R: DeserializeOwned + 'static> ExactSizeIterator for MapUnordered<'_, R> {}

impl<R> MapUnordered<'_, R> {
    /// Whether Ctrl-C ended the call early (see
    /// [`Error::Interrupted`](crate::Error::Interrupted)): the iterator then
    /// ends without the remaining results.
    pub fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Kills (and waits for) every worker still holding items of this map;
    /// the items it held go back in line.
    fn kill_busy(&mut self) {
        for slot in 0..self.inner.slots.len() {
            let busy = self.inner.slots[slot]
                .as_ref()
                .is_some_and(|w| !w.inflight.is_empty() || !w.inbuf.is_empty());
            if busy && let Some(mut w) = self.inner.slots[slot].take() {
                self.inner.publish();
                self.inner.board.add_usage(w.take_usage());
                let _ = w.handle.kill();
                let _ = w.handle.child().wait_timeout(Duration::from_secs(5));
                self.run.pending.append(std::mem::take(&mut w.inflight));
            }
        }
    }
}

impl<R> Drop for MapUnordered<'_, R> {
    /// Abandoned before the end: a worker still running items of this map would
    /// send their results into the next one, so it is killed (and replaced at
    /// the next `map`).
    fn drop(&mut self) {
        self.kill_busy();
    }
}
