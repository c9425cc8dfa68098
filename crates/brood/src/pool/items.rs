//! One map's items and results: [`Run`].
//!
//! Arguments and results live in two arenas rather than one allocation each
//! (for tiny items the allocator was a measurable part of a map). The items
//! come from a [`Source`]: all at once for `map` (its input is a finite
//! collection, and the result is an `ExactSizeIterator`), or lazily for
//! `imap`, which pulls from the caller's iterator only as workers need items.
//! Either way the arena holds only a *window* of items — from the oldest one
//! without a result to the newest pulled — so that mapping ten million lazy
//! items keeps a few thousand in memory (the window is bounded, so a slow
//! item at its front stops the pulling rather than letting the rest pile up).

use super::TaskError;
use super::board::Board;
use super::conn::Worker;
use super::line::Line;
use super::ready::Finished;
use super::reruns::Reruns;
use super::shared::{self, Inbox, Sharing};
use crate::sys::image::FnRef;
use crate::sys::shm::Region;
use crate::wire::TaskHead;
use crate::wire::frame::{self, FrameKind};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fewest items a worker holds while more wait (see `Run::dispatch`).
const MIN_INFLIGHT: usize = 8;
/// The most items a worker holds, for items too short to balance.
const MAX_INFLIGHT: usize = 64;
/// How much work, in ns, a worker holds ahead when its items are short.
const AHEAD_NS: u64 = 1_000_000;

/// A result as it came: its encoded bytes, or why there are none.
pub(super) type Outcome<'b> = std::result::Result<&'b [u8], TaskError>;

/// What a [`Source`] gave.
pub(super) enum Pulled {
    /// An item, encoded onto the arena (or why it could not be), what it
    /// asks for of its own (a submitted task: its function, timeouts), and
    /// the shared data it names.
    Item(std::result::Result<(), String>, Option<Own>, Vec<Sharing>),
    /// None yet: more may come later (submitted tasks).
    Wait,
    /// The input is exhausted.
    End,
}

/// Pulls the next item and encodes it onto the arena. Its argument says
/// whether every item pulled so far has been yielded (a source of submitted
/// tasks ends there rather than wait).
pub(super) type Source<'s> = Box<dyn FnMut(&mut Vec<u8>, bool) -> Pulled + Send + 's>;

/// One `map`'s items and results.
pub(super) struct Run<'s> {
    /// What the map is asked for (its `chunk` may be set once the items
    /// are counted).
    pub(super) plan: Plan,
    /// Pulled all at once: the arena lives as long as the map, and no
    /// window is kept.
    eager: bool,
    /// The items of the window, encoded one after the other as a task frame
    /// carries them (`[u32 len][bytes]`), so that a chunk of consecutive
    /// items leaves in one copy; `origin` is the offset of `args[0]` in the
    /// map's whole stream of arguments.
    args: Vec<u8>,
    origin: usize,
    /// Where each item of the window starts in the stream (it ends where the
    /// next starts; an item that could not be encoded has no bytes), and
    /// (unless eager: its window never moves) whether it has its result,
    /// for items `base..base + starts.len()`.
    starts: VecDeque<usize>,
    answered: VecDeque<bool>,
    base: usize,
    /// Items pulled so far (the next item's index).
    pulled: usize,
    /// Where further items come from; `None` once exhausted.
    source: Option<Source<'s>>,
    /// Set when no worker can run anything: items pulled from now on fail
    /// with this at once.
    broken: Option<String>,
    /// Items with a function or timeouts of their own (submitted tasks).
    own: HashMap<usize, Own>,
    /// Failed items taken so far (for the progress callback).
    failed: usize,
    pub(super) pending: Line,
    /// Results that came and wait to be yielded.
    pub(super) finished: Finished,
    pub(super) yielded: usize,
    /// The shared data each item of the window names (most name none).
    shares: HashMap<usize, Vec<Sharing>>,
    /// Shared data the workers' results named, for decoding them.
    pub(super) inbox: Inbox,
    /// Items whose result died with their worker, running again.
    pub(super) reruns: Reruns,
}

/// What a map is asked for, besides its items.
pub(super) struct Plan {
    pub(super) func: FnRef,
    pub(super) chunk: usize,
    /// Items pulled ahead of their results, at most.
    pub(super) window: usize,
    pub(super) timeout: Option<Duration>,
    pub(super) soft_timeout: Option<Duration>,
    pub(super) progress: Option<ProgressFn>,
    pub(super) max_tasks: Option<usize>,
    pub(super) max_memory: Option<u64>,
    /// A worker may hold more of short items (see [`Run::depth_for`]): not
    /// for submitted tasks, whose lengths need not resemble each other.
    pub(super) deepen: bool,
}

impl Plan {
    /// A map of `func` in chunks of `chunk` under the pool's `cfg` and a
    /// call's `opts` (the call's timeout before the pool's); no bound on
    /// what is pulled ahead unless the caller sets `window`.
    pub(super) fn of(
        cfg: &super::Config,
        opts: &super::CallOptions,
        func: FnRef,
        chunk: usize,
    ) -> Plan {
        Plan {
            func,
            chunk,
            window: usize::MAX,
            timeout: opts.timeout.or(cfg.timeout),
            soft_timeout: opts.soft_timeout,
            progress: opts.progress.clone(),
            max_tasks: cfg.max_tasks,
            max_memory: cfg.max_memory,
            deepen: true,
        }
    }
}

/// A call's progress callback.
pub(super) type ProgressFn = std::sync::Arc<dyn Fn(super::MapProgress) + Send + Sync>;

/// What an item of its own asks for (a submitted task): its function and
/// timeouts, where they are not the map's.
#[derive(Clone, Copy, Default)]
pub(super) struct Own {
    pub(super) func: Option<FnRef>,
    pub(super) timeout: Option<Duration>,
    pub(super) soft_timeout: Option<Duration>,
}

impl<'s> Run<'s> {
    /// A map over `items`, every one encoded now (for `map`: the input is a
    /// finite collection, and its length is the result's).
    pub(super) fn eager<A: serde::Serialize + 'static>(
        plan: Plan,
        items: impl IntoIterator<Item = A>,
    ) -> Run<'s> {
        let mut run = Run::empty(plan, None, true);
        let items = items.into_iter();
        // Grown once, not by doubling (each doubling copied and faulted in
        // the whole queue again).
        let n = items.size_hint().0;
        run.starts.reserve(n);
        run.args.reserve(5 * n);
        for item in items {
            // Straight in, not through a `Source` (a fifth of a tiny map).
            let start = frame::begin_item(&mut run.args);
            let (encoded, named) = encode_into(&item, &mut run.args);
            run.take_item(start, encoded, None, named);
        }
        run
    }

    /// [`Run::eager`] over arguments encoded already (the remote seam's
    /// chunks: each is a value's bytes as `frame::encode_value` made them).
    /// Every item may name any of `named` (the chunk's shared data): each
    /// worker gets each once, before the first item it runs.
    pub(super) fn eager_encoded<'b>(
        plan: Plan,
        args: impl ExactSizeIterator<Item = &'b [u8]>,
        bytes: usize,
        named: &[Sharing],
    ) -> Run<'s> {
        let mut run = Run::empty(plan, None, true);
        // Grown once (see `Run::eager`): `bytes` of arguments, and a length
        // word each.
        run.starts.reserve(args.len());
        run.args.reserve(bytes + 4 * args.len());
        for arg in args {
            let start = frame::begin_item(&mut run.args);
            run.args.extend_from_slice(arg);
            run.take_item(start, Ok(()), None, named.to_vec());
        }
        run
    }

    /// A map that pulls from `source` only as workers need items.
    pub(super) fn lazy(plan: Plan, source: Source<'s>) -> Run<'s> {
        Run::empty(plan, Some(source), false)
    }

    fn empty(mut plan: Plan, source: Option<Source<'s>>, eager: bool) -> Run<'s> {
        plan.chunk = plan.chunk.max(1);
        plan.window = plan.window.max(1);
        Run {
            plan,
            eager,
            args: Vec::new(),
            origin: 0,
            starts: VecDeque::new(),
            answered: VecDeque::new(),
            base: 0,
            pulled: 0,
            source,
            broken: None,
            pending: Line::new(),
            finished: Finished::new(),
            yielded: 0,
            shares: HashMap::new(),
            inbox: Inbox::new(),
            own: HashMap::new(),
            failed: 0,
            reruns: Reruns::default(),
        }
    }

    /// Every item has been yielded.
    pub(super) fn done(&self) -> bool {
        self.source.is_none() && self.yielded >= self.pulled
    }

    /// Items pulled so far.
    pub(super) fn pulled(&self) -> usize {
        self.pulled
    }

    /// Items still to be yielded, when the input's end is known.
    pub(super) fn left(&self) -> Option<usize> {
        self.source.is_none().then(|| self.pulled - self.yielded)
    }

    /// Pulls items until `want` wait to be handed out, the window is full or
    /// the input ends.
    pub(super) fn refill(&mut self, want: usize) {
        while self.pending.len() < want && self.starts.len() < self.plan.window {
            let Some(mut source) = self.source.take() else {
                return;
            };
            let idle = self.pulled == self.yielded;
            match self.pull_with(|arena| source(arena, idle)) {
                Pulled::Item(..) => self.source = Some(source),
                Pulled::Wait => {
                    self.source = Some(source);
                    return;
                }
                Pulled::End => return,
            }
        }
    }

    /// Takes one item from `next` into the window; what `next` gave (its
    /// item's outcome taken in).
    fn pull_with(&mut self, next: impl FnOnce(&mut Vec<u8>) -> Pulled) -> Pulled {
        let start = frame::begin_item(&mut self.args);
        match next(&mut self.args) {
            Pulled::Item(encoded, own, named) => {
                self.take_item(start, encoded, own, named);
                Pulled::Item(Ok(()), None, Vec::new())
            }
            other => {
                self.args.truncate(start);
                other
            }
        }
    }

    /// Takes in the item just encoded after `start`: its place, what it
    /// asks for of its own, the shared data it names; or its failure.
    #[inline]
    fn take_item(
        &mut self,
        start: usize,
        encoded: std::result::Result<(), String>,
        own: Option<Own>,
        named: Vec<Sharing>,
    ) {
        let idx = self.pulled;
        if !named.is_empty() {
            self.shares.insert(idx, named);
        }
        if let Some(own) = own {
            self.own.insert(idx, own);
        }
        let encoded = encoded.and_then(|()| {
            frame::end_item(&mut self.args, start)
                .ok_or_else(|| "the argument is larger than 4 GiB".to_string())
        });
        self.pulled += 1;
        self.starts.push_back(self.origin + start);
        if !self.eager {
            self.answered.push_back(false);
        }
        match encoded {
            Ok(()) => match &self.broken {
                None => self.pending.push_back(idx),
                Some(reason) => {
                    let reason = reason.clone();
                    self.finish(idx, Err(TaskError::Failed { reason }));
                }
            },
            Err(reason) => {
                self.args.truncate(start);
                self.finish(idx, Err(TaskError::Failed { reason }));
            }
        }
    }

    /// Records an item's outcome; the window moves past answered items.
    pub(super) fn finish(&mut self, idx: usize, outcome: Outcome<'_>) {
        self.finished.push_one(idx, outcome);
        self.answered(idx);
    }

    /// Records item `idx`'s result, whose bytes came in a `memfd` (mapped:
    /// decoded from there, not copied).
    pub(super) fn finish_mapped(&mut self, idx: usize, region: Region) {
        self.finished.push_mapped(idx, region);
        self.answered(idx);
    }

    /// Records the results of items `first..first + count`: `bytes` holds
    /// them one after the other (`[u32 len][bytes]` each, checked).
    pub(super) fn finish_run(&mut self, first: usize, count: usize, bytes: &[u8]) {
        self.finished.push_run(first, count, bytes);
        // Nothing else to note per item in the common case: an eager map
        // with no shared data and no submitted tasks.
        if !self.eager || !self.shares.is_empty() || !self.own.is_empty() || !self.reruns.is_empty()
        {
            for idx in first..first + count {
                self.answered(idx);
            }
        }
    }

    /// Item `idx` has its result: what it named is let go, and the window
    /// moves past answered items.
    fn answered(&mut self, idx: usize) {
        if !self.shares.is_empty() {
            self.shares.remove(&idx);
        }
        if !self.own.is_empty() {
            self.own.remove(&idx);
        }
        self.reruns.answered(idx);
        if self.eager {
            return;
        }
        if let Some(a) = idx
            .checked_sub(self.base)
            .and_then(|i| self.answered.get_mut(i))
        {
            *a = true;
        }
        while self.answered.front() == Some(&true) {
            self.answered.pop_front();
            self.starts.pop_front();
            self.base += 1;
        }
        // The arena drops what lies before the window (all of it when the
        // window is empty; otherwise once that is most of it, so that the
        // copying stays linear).
        let keep_from = self
            .starts
            .front()
            .map_or(self.origin + self.args.len(), |&s| s);
        let dead = keep_from - self.origin;
        if dead == self.args.len() || (dead > 64 << 10 && dead > self.args.len() / 2) {
            self.args.drain(..dead);
            self.origin = keep_from;
        }
    }

    /// No worker can run anything: what waits fails with `reason`, and so
    /// does every item pulled later.
    pub(super) fn fail_pending(&mut self, reason: &str) {
        self.broken = Some(reason.to_string());
        while let Some(idx) = self.pending.pop_front() {
            self.finish(
                idx,
                Err(TaskError::Failed {
                    reason: reason.to_string(),
                }),
            );
        }
        // Some items past those, so that the map moves on (a little at a
        // time: the input may be endless).
        self.refill(self.plan.chunk);
    }

    /// The task-frame items `run` of the window, as they lie in the arena
    /// (`[u32 len][bytes]` each, one after the other).
    fn items(&self, run: std::ops::Range<usize>) -> &[u8] {
        let at = |idx: usize| {
            self.starts
                .get(idx - self.base)
                .map_or(self.args.len(), |&s| s - self.origin)
        };
        &self.args[at(run.start)..at(run.end)]
    }

    /// The encoded argument of item `idx` (of the window).
    #[cfg(test)]
    fn arg(&self, idx: usize) -> &[u8] {
        &self.items(idx..idx + 1)[4..]
    }

    /// The function item `idx` runs with.
    fn func_of(&self, idx: usize) -> FnRef {
        self.own
            .get(&idx)
            .and_then(|o| o.func)
            .unwrap_or(self.plan.func)
    }

    /// The hard timeout of item `idx`.
    /// Item `idx` (a submitted task, with its own settings) is withdrawn:
    /// its timeout becomes zero, so that the worker running it, or the one
    /// that takes it next, is killed as for any timeout.
    pub(super) fn expire(&mut self, idx: usize) {
        if let Some(own) = self.own.get_mut(&idx) {
            own.timeout = Some(Duration::ZERO);
        }
    }

    pub(super) fn timeout_of(&self, idx: usize) -> Option<Duration> {
        self.own
            .get(&idx)
            .and_then(|o| o.timeout)
            .or(self.plan.timeout)
    }

    /// The soft timeout of item `idx`.
    pub(super) fn soft_timeout_of(&self, idx: usize) -> Option<Duration> {
        self.own
            .get(&idx)
            .and_then(|o| o.soft_timeout)
            .or(self.plan.soft_timeout)
    }

    /// When the hard timeout of item `idx`, whose current run began at
    /// `since`, runs out (`now` once it has): counted from its first start
    /// (see `reruns.rs`), without the time the pool was paused (`board.rs`).
    #[inline]
    pub(super) fn deadline_of(
        &self,
        idx: usize,
        since: Instant,
        board: &Board,
        now: Instant,
    ) -> Option<Instant> {
        let t = self.timeout_of(idx)?;
        Some(board.due(self.reruns.started_at(idx, since), t, now))
    }

    /// Whether the worker should send each result of the next `n` pending
    /// items at once: any of them has a timeout or a soft one (the pool
    /// counts an item's time from the previous result), or runs again after
    /// its result was lost (a loss then charges that item alone).
    fn prompt(&self, n: usize) -> bool {
        if self.plan.timeout.is_some() || self.plan.soft_timeout.is_some() {
            return true;
        }
        if !self.reruns.is_empty() && self.pending.iter().take(n).any(|i| self.reruns.contains(i)) {
            return true;
        }
        !self.own.is_empty()
            && self.pending.iter().take(n).any(|i| {
                self.own
                    .get(&i)
                    .is_some_and(|o| o.timeout.is_some() || o.soft_timeout.is_some())
            })
    }

    /// An item's result was taken: the progress callback hears of it.
    #[inline]
    pub(super) fn taken(&mut self, failed: bool) {
        let Some(f) = &self.plan.progress else {
            return;
        };
        self.failed += usize::from(failed);
        f(super::MapProgress {
            done: self.yielded,
            failed: self.failed,
            total: self.left().map(|left| left + self.yielded),
        });
    }

    /// The items a worker holds while more wait: two chunks, and with small
    /// chunks a few more items, so that each worker has the next one at hand
    /// however short its items, and its results for several chunks travel in
    /// one write. Under a memory limit only the two chunks: a worker past
    /// it finishes what it holds before it retires.
    pub(super) fn depth(&self) -> usize {
        if self.plan.max_memory.is_some() {
            2 * self.plan.chunk
        } else {
            (2 * self.plan.chunk).max(MIN_INFLIGHT)
        }
    }

    /// [`Run::depth`] for worker `w`: deeper, up to about a millisecond of
    /// its items, when they are known to be short — a round trip per few
    /// items was most of the cost of a map of tiny items in small chunks,
    /// and a millisecond of work is too little to be worth balancing.
    pub(super) fn depth_for(&self, w: &Worker) -> usize {
        let base = self.depth();
        if !self.plan.deepen || self.plan.max_memory.is_some() || w.item_ns == 0 {
            return base;
        }
        let ahead = usize::try_from(AHEAD_NS / w.item_ns.max(1)).unwrap_or(usize::MAX);
        base.max(ahead.min(MAX_INFLIGHT))
    }

    /// Sends `w` the shared data that the next `n` pending items name and
    /// that it does not have yet (before the task frame that needs it).
    fn share(&self, w: &mut Worker, n: usize) {
        if self.shares.is_empty() {
            return;
        }
        let mut new: Vec<Sharing> = Vec::new();
        for idx in self.pending.iter().take(n) {
            for s in self.shares.get(&idx).into_iter().flatten() {
                if let std::collections::hash_map::Entry::Vacant(e) = w.sent.entry(s.id) {
                    e.insert(Arc::downgrade(&s.region));
                    new.push(s.clone());
                }
            }
        }
        if !new.is_empty() {
            let forget = w.forgotten();
            shared::push_share(&mut w.out, &mut w.attach, forget, &new);
        }
    }

    /// Gives a worker chunks until it holds `depth` items (see
    /// [`Run::depth`]), within its `max_tasks_per_child`; a worker that
    /// reached it is told to quit.
    pub(super) fn dispatch(&mut self, w: &mut Worker, depth: usize) {
        if w.quitting || w.discard > 0 {
            return;
        }
        while w.inflight.len() < depth && !self.pending.is_empty() {
            let mut n = self.plan.chunk.min(self.pending.len());
            if let Some(max) = self.plan.max_tasks {
                n = n.min(max.saturating_sub(w.assigned));
            }
            // One function per task frame.
            let Some(front) = self.pending.front() else {
                break;
            };
            let func = self.func_of(front);
            if !self.own.is_empty() {
                n = self
                    .pending
                    .iter()
                    .take(n)
                    .take_while(|&i| self.func_of(i) == func)
                    .count();
            }
            if n == 0 {
                break;
            }
            self.share(w, n);
            let head = TaskHead {
                func,
                count: n as u32,
                prompt: self.prompt(n),
            };
            let start = frame::begin_frame(&mut w.out, FrameKind::Task);
            if frame::encode_onto(&mut w.out, &head).is_err() {
                unreachable!("a TaskHead always encodes into a Vec")
            }
            if w.inflight.is_empty() {
                w.since = Instant::now();
            }
            // Consecutive items leave the arena in one copy.
            let mut left = n;
            while let Some(run) = self.pending.take_run(left) {
                left -= run.len();
                w.out.extend_from_slice(self.items(run.clone()));
                w.inflight.push_back_run(run);
            }
            frame::end_frame(&mut w.out, start);
            w.assigned += n;
        }
        if self.plan.max_tasks.is_some_and(|max| w.assigned >= max) {
            w.push_quit();
        }
    }
}

/// A source over a whole collection, encoding each item with postcard.
pub(super) fn encoding<'s, A, I>(items: I) -> Source<'s>
where
    A: serde::Serialize + 'static,
    I: Iterator<Item = A> + Send + 's,
{
    let mut items = items;
    Box::new(move |arena: &mut Vec<u8>, _| match items.next() {
        Some(item) => {
            let (encoded, named) = encode_into(&item, arena);
            Pulled::Item(encoded, None, named)
        }
        None => Pulled::End,
    })
}

/// Appends `item`'s encoding to the arena, as a crossing: whether it could
/// be encoded, and the shared data it names.
#[inline]
fn encode_into<A: serde::Serialize + 'static>(
    item: &A,
    arena: &mut Vec<u8>,
) -> (std::result::Result<(), String>, Vec<Sharing>) {
    let start = arena.len();
    let (encoded, named) = shared::crossing(|| {
        arena.truncate(start);
        frame::encode_value(arena, item)
    });
    let encoded =
        encoded.map_err(|e| format!("cannot encode the argument: {}", frame::encode_error(&e)));
    if encoded.is_err() {
        arena.truncate(start);
    }
    (encoded, named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(window: usize) -> Plan {
        Plan {
            func: crate::sys::image::fn_ref::<fn(u32) -> u32, super::super::worker::RunTask>(|x| x)
                .unwrap(),
            chunk: 4,
            window,
            timeout: None,
            soft_timeout: None,
            progress: None,
            max_tasks: None,
            max_memory: None,
            deepen: true,
        }
    }

    #[test]
    fn the_window_bounds_what_is_pulled_and_the_arena_follows_it() {
        let mut run = Run::lazy(plan(100), encoding(0u64..1_000_000));
        run.refill(usize::MAX);
        assert_eq!(run.pending.len(), 100);
        // Answer the front 60 out of order: the window moves by all of them.
        assert_eq!(
            run.pending.split_front(60).iter().collect::<Vec<_>>(),
            (0..60).collect::<Vec<_>>()
        );
        for idx in (0..60).rev() {
            run.finish(
                idx,
                Err(TaskError::Failed {
                    reason: String::new(),
                }),
            );
        }
        assert_eq!(run.base, 60);
        run.refill(usize::MAX);
        assert_eq!(run.pulled, 160);
        assert_eq!(run.starts.len(), 100);
        // A hole at the front holds the window, however much else is answered.
        for idx in 61..160 {
            run.finish(
                idx,
                Err(TaskError::Failed {
                    reason: String::new(),
                }),
            );
        }
        run.pending.clear();
        run.refill(usize::MAX);
        assert_eq!(run.pulled, 160, "pulled past an unanswered front item");
        assert_eq!(run.arg(60), postcard::to_allocvec(&60u64).unwrap());
        run.finish(
            60,
            Err(TaskError::Failed {
                reason: String::new(),
            }),
        );
        assert!(run.starts.is_empty());
        assert!(
            run.args.is_empty(),
            "the arena kept {} bytes",
            run.args.len()
        );
        run.refill(10);
        assert_eq!(run.arg(160), postcard::to_allocvec(&160u64).unwrap());
    }

    /// The submitted tasks' map has no bound on what it pulls (the queue
    /// holds them already), but what is answered still leaves the arena: it
    /// used to stay for as long as the thread of submitted tasks ran.
    #[test]
    fn an_unbounded_lazy_map_still_drops_what_is_answered() {
        let mut run = Run::lazy(plan(usize::MAX), encoding(0u64..1000));
        run.refill(usize::MAX);
        assert_eq!(run.pending.len(), 1000);
        let answered: Vec<usize> = run.pending.split_front(usize::MAX).iter().collect();
        for idx in answered {
            run.finish(
                idx,
                Err(TaskError::Failed {
                    reason: String::new(),
                }),
            );
        }
        assert!(
            run.args.is_empty(),
            "the arena kept {} bytes",
            run.args.len()
        );
        assert!(run.starts.is_empty());
    }

    #[test]
    fn eager_pulls_everything_and_knows_the_end() {
        let run = Run::eager(plan(1), [1u8, 2, 3]);
        assert_eq!(run.pending.len(), 3);
        assert_eq!(run.left(), Some(3));
    }
}
