//! One call of a [`ClusterPool`](crate::ClusterPool) on the driver's side:
//! its items, in chunks, published to the job's work queue as the window
//! allows; their outcomes read back, one per item, in the order they come.
//!
//! It runs on the caller's thread (each step is a `block_on` on the pool's
//! runtime), so that the caller's iterator is pulled only as chunks go out
//! and needs to be neither `Send` nor `'static`.

use crate::alive::Beat;
use crate::driver::ClusterPool;
use crate::error::ClusterError;
use crate::job::{AGENTS, data_name};
use crate::publish::{Out, Sending};
use async_nats::jetstream::consumer;
use brood::remote::{ChunkEncoder, CtrlC, RemoteError, split_chunk};
use brood::{CallOptions, MapProgress, TaskError};
use out::Pending;
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

mod out;
mod read;

/// A map's reader of its results.
type Results = consumer::pull::Ordered;

/// How long the driver waits for a result before it reads them anew: a
/// reader whose server restarted may otherwise wait a minute to notice.
const QUIET: Duration = Duration::from_secs(3);

/// How often a waiting driver looks for Ctrl-C.
const CTRL_C_POLL: Duration = Duration::from_millis(100);

/// Chunks out at once, unanswered.
const WINDOW: usize = 256;

/// The highest item index a resumed call takes an earlier outcome for (a
/// bound on what a stray message could make it allocate).
const MAX_RESUMED: usize = 1 << 32;

/// The most items in a chunk when the call does not say (its bytes are
/// bounded too: half the server's payload limit).
const MAX_CHUNK: usize = 1 << 16;

/// How many chunks a call of known length is cut into by default when no
/// agent was heard yet: enough for several agents to share it.
const CHUNKS: usize = 24;

/// Chunks a worker of the job's agents, by default.
const CHUNKS_PER_WORKER: usize = 2;

/// Items per chunk for `n` items (when known) and no chunk size asked, with
/// `workers` in the job's agents (0: none heard yet, see [`CHUNKS`]): two
/// chunks a worker, so that the work spreads over the agents and a fast one
/// takes more, while each chunk's trip stays small beside its work. Python's
/// `Pool.map` cuts four a worker, for trips of microseconds; a chunk's trip
/// here (a publish, a pull, the outcomes' publish, two acks) is a
/// millisecond and half a millisecond of CPU between driver, server and
/// agent: `x + 1` over 100,000 items on one agent of 2 workers took 13 ms
/// in 8 chunks and 11 ms in 4.
pub(crate) fn default_chunk(n: Option<usize>, workers: usize) -> usize {
    let chunks = if workers == 0 {
        CHUNKS
    } else {
        CHUNKS_PER_WORKER * workers
    };
    match n {
        Some(n) => n.div_ceil(chunks).clamp(1, MAX_CHUNK),
        None => 64,
    }
}

/// Makes an empty chunk of the call's function.
pub(crate) type NewChunk<A> = Box<dyn Fn() -> Result<ChunkEncoder<A>, RemoteError>>;

/// What a call asks besides its function and items.
pub(crate) struct Spec {
    pub(crate) opts: CallOptions,
    /// A `_with` call: its chunks need the pool's initializer.
    pub(crate) stateful: bool,
    /// The call's name, for a call that a later driver may resume.
    pub(crate) name: Option<String>,
    /// How many times an item whose worker died runs again.
    pub(crate) retries: u32,
}

/// One item's outcome, with its index.
pub(crate) type Indexed<R> = (usize, Result<R, TaskError>);

/// One call in progress.
pub(crate) struct MapRun<'p, A, R> {
    pool: &'p ClusterPool,
    opts: CallOptions,
    new_chunk: NewChunk<A>,
    items: Option<Box<dyn Iterator<Item = A> + 'p>>,
    next_index: usize,
    chunk: usize,
    max_bytes: usize,
    map: String,
    _beat: Beat,
    /// The reader of the call's results: opened while its first chunks are
    /// published (the results stay in the stream until it reads them).
    results: Option<Results>,
    /// The reader being made (see `ClusterPool::open_results_soon`).
    opening: Option<tokio::task::JoinHandle<Result<Results, ClusterError>>>,
    from: u64,
    advisories: async_nats::Subscriber,
    /// Chunks out, by first item; and the first item of each chunk the
    /// server took, by stream sequence.
    out: HashMap<usize, Pending>,
    first_of: HashMap<u64, usize>,
    /// The call's publisher, once a chunk went out.
    sending: Option<Sending>,
    answered: Vec<bool>,
    done: usize,
    failed: usize,
    ready: VecDeque<Indexed<R>>,
    /// `map`'s outcomes in input order, when it collects them all (see
    /// [`MapRun::collect_all`]).
    slots: Option<Vec<Result<R, TaskError>>>,
    /// How many items there are, when the input says.
    known: Option<usize>,
    ctrl_c: Option<CtrlC>,
    /// A named call: its results stay on the server when it ends early.
    named: bool,
    /// It said that no agent takes its chunks (see `look_for_agents`).
    waiting: bool,
    /// The job's shared data store, once a chunk named some, and the ids
    /// this call put there (deleted when it ends).
    data: Option<async_nats::jetstream::object_store::ObjectStore>,
    uploaded: HashSet<u64>,
    /// Retries on request: how many each item may have, how many it had,
    /// and the one-item chunks to send again.
    retries: u32,
    tries: HashMap<usize, u32>,
    resend: Vec<Out>,
    /// This driver's own token (see `Publisher::run`).
    run: String,
    /// The initializer its chunks need (a `_with` call on a pool that has
    /// one).
    init: Option<String>,
    interrupted: bool,
    finished: bool,
}

impl<'p, A: Serialize + 'static, R: DeserializeOwned + 'static> MapRun<'p, A, R> {
    /// Starts a call: names it, starts its beat, opens its results.
    pub(crate) fn start(
        pool: &'p ClusterPool,
        spec: Spec,
        new_chunk: NewChunk<A>,
        items: Box<dyn Iterator<Item = A> + 'p>,
    ) -> Result<MapRun<'p, A, R>, ClusterError> {
        let Spec {
            opts,
            stateful,
            name,
            retries,
        } = spec;
        // Cannot cross: nothing can run (found before anything is made).
        new_chunk()?;
        let known = match items.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(hi),
            _ => None,
        };
        let chunk = opts
            .settings()
            .chunk
            .unwrap_or_else(|| default_chunk(known, pool.census.workers()));
        let client = pool.js.client();
        // The call's name, or a unique token: an inbox's last one.
        let map = match &name {
            Some(name) => {
                crate::job::check_name(name)
                    .map_err(|_| ClusterError::BadCallName(name.clone()))?;
                name.clone()
            }
            None => {
                let inbox = client.new_inbox();
                inbox.rsplit('.').next().unwrap_or(&inbox).to_string()
            }
        };
        let (beat, advisories) = pool.rt.block_on(async {
            // Agents drop the tasks of a map whose driver stopped beating.
            let beat = Beat::start(client.clone(), &pool.target, &map);
            // Before the first chunk goes out: the server announces a chunk
            // given out `max_deliveries` times (core NATS, not kept).
            let advisories = client
                .subscribe(format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{AGENTS}",
                    pool.target.tasks_stream()
                ))
                .await
                .map_err(|e| ClusterError::server("subscribe to the delivery advisories", e))?;
            Ok::<_, ClusterError>((beat, advisories))
        })?;
        // Half the server's payload limit: an item below it always fits in
        // a chunk that is below it too.
        let max_bytes = (client.server_info().max_payload / 2).max(1024);
        let mut run = MapRun {
            pool,
            opts,
            new_chunk,
            items: Some(items),
            next_index: 0,
            chunk,
            max_bytes,
            map,
            _beat: beat,
            results: None,
            opening: None,
            from: 1,
            advisories,
            out: HashMap::new(),
            first_of: HashMap::new(),
            sending: None,
            answered: Vec::new(),
            done: 0,
            failed: 0,
            ready: VecDeque::new(),
            slots: None,
            known,
            ctrl_c: CtrlC::watch().ok(),
            init: stateful.then(|| pool.init_key.clone()).flatten(),
            named: name.is_some(),
            waiting: false,
            data: None,
            uploaded: HashSet::new(),
            retries,
            tries: HashMap::new(),
            resend: Vec::new(),
            run: {
                let inbox = client.new_inbox();
                inbox.rsplit('.').next().unwrap_or(&inbox).to_string()
            },
            interrupted: false,
            finished: false,
        };
        if run.named {
            run.catch_up()?;
        } else {
            run.opening = Some(pool.open_results_soon(&run.map));
        }
        Ok(run)
    }

    /// Items known so far, and whether that is all of them.
    fn total(&self) -> Option<usize> {
        self.items.is_none().then_some(self.next_index)
    }

    /// Whether Ctrl-C ended the call.
    pub(crate) fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// The next outcome, in the order they come; `None` at the end (or
    /// after Ctrl-C: see [`MapRun::interrupted`]).
    pub(crate) fn next_outcome(&mut self) -> Result<Option<Indexed<R>>, ClusterError> {
        loop {
            if let Some(x) = self.ready.pop_front() {
                self.report(&x.1);
                return Ok(Some(x));
            }
            if !self.step()? {
                return Ok(None);
            }
        }
    }

    /// Every outcome, in input order (`map`): each goes straight to its
    /// slot as its chunk's outcomes are read, not through the queue of
    /// [`MapRun::next_outcome`] (for small items, moving each outcome
    /// through it cost as much as decoding it). Ends early after Ctrl-C
    /// (see [`MapRun::interrupted`]).
    pub(crate) fn collect_all(&mut self) -> Result<Vec<Result<R, TaskError>>, ClusterError> {
        // Every slot at once when the input says how many (a cheap
        // placeholder, no allocation; each is put), else as outcomes come.
        let mut slots = Vec::new();
        slots.resize_with(self.known.unwrap_or(0), || Err(TaskError::Interrupted));
        self.slots = Some(slots);
        // Outcomes an earlier driver of a named call left.
        for (i, outcome) in std::mem::take(&mut self.ready) {
            self.put(i, outcome);
        }
        while self.step()? {}
        let mut slots = self.slots.take().unwrap_or_default();
        if self.items.is_none() {
            // An input shorter than it said.
            slots.truncate(self.next_index);
        }
        if self.done < slots.len() {
            // Only a call ended early leaves a slot without its outcome.
            for (slot, seen) in slots.iter_mut().zip(&self.answered) {
                if !seen {
                    *slot = Err(TaskError::Failed {
                        reason: "no outcome".into(),
                    });
                }
            }
        }
        Ok(slots)
    }

    /// One step of the call: chunks out, its end, or a wait for outcomes;
    /// false once it is over.
    fn step(&mut self) -> Result<bool, ClusterError> {
        if self.finished || self.interrupted {
            return Ok(false);
        }
        if self.out.len() < WINDOW && self.items.is_some() {
            self.top_up()?;
        } else if self.out.is_empty() && self.items.is_none() {
            self.finish();
        } else {
            let pool = self.pool;
            pool.rt.block_on(self.wait())?;
        }
        Ok(true)
    }

    /// An outcome into its slot ([`MapRun::collect_all`]).
    fn put(&mut self, i: usize, outcome: Result<R, TaskError>) {
        self.report(&outcome);
        let Some(slots) = self.slots.as_mut() else {
            return;
        };
        if i >= slots.len() {
            // A cheap placeholder (no allocation); every slot is put.
            slots.resize_with(i + 1, || Err(TaskError::Interrupted));
        }
        slots[i] = outcome;
    }

    fn report(&mut self, outcome: &Result<R, TaskError>) {
        self.done += 1;
        if outcome.is_err() {
            self.failed += 1;
        }
        let total = self.total();
        self.opts
            .report(MapProgress::new(self.done, self.failed, total));
    }

    /// Encodes chunks from the items until the window is full or they end,
    /// and publishes them.
    fn top_up(&mut self) -> Result<(), ClusterError> {
        let pool = self.pool;
        while self.out.len() < WINDOW {
            let Some(items) = self.items.as_mut() else {
                break;
            };
            let mut chunk = (self.new_chunk)()?;
            let first = self.next_index;
            let mut count = 0;
            while count < self.chunk && chunk.size() < self.max_bytes {
                let Some(item) = items.next() else {
                    self.items = None;
                    break;
                };
                let index = self.next_index;
                self.next_index += 1;
                if index < self.answered.len() {
                    if self.answered[index] {
                        // Answered for an earlier driver of this call: not
                        // run again; the chunk ends here (its items are
                        // consecutive).
                        break;
                    }
                } else {
                    self.answered.push(false);
                }
                if let Err(e) = chunk.push(&item) {
                    // This item alone fails; the chunk goes on without it,
                    // so the chunk's items are no longer consecutive: send
                    // what came before it on its own.
                    self.answer(
                        index,
                        Err(TaskError::Failed {
                            reason: e.to_string(),
                        }),
                    );
                    break;
                }
                count += 1;
            }
            if count == 0 {
                continue;
            }
            if let Err(why) = self.upload(&chunk) {
                for i in first..first + count {
                    self.answer(
                        i,
                        Err(TaskError::Failed {
                            reason: why.clone(),
                        }),
                    );
                }
                continue;
            }
            let bytes = chunk.finish();
            // Its last item took it over the server's limit: each item goes
            // alone (one over the limit is refused, naming it). Split only
            // then: splitting copies every item.
            let over = count > 1 && bytes.len() > 2 * self.max_bytes;
            let parts = match over.then(|| split_chunk(&bytes)) {
                Some(Ok(parts)) => parts
                    .into_iter()
                    .enumerate()
                    .map(|(k, b)| Out {
                        first: first + k,
                        count: 1,
                        bytes: b.into(),
                        attempt: 0,
                    })
                    .collect(),
                _ => vec![Out {
                    first,
                    count,
                    bytes: bytes.into(),
                    attempt: 0,
                }],
            };
            for part in parts {
                self.send(part);
            }
        }
        if self.results.is_none() {
            let results = match self.opening.take() {
                Some(opening) => pool.rt.block_on(opening).unwrap_or_else(|e| {
                    Err(ClusterError::Pool(format!(
                        "the results' reader failed: {e}"
                    )))
                }),
                None => pool.rt.block_on(pool.open_results(&self.map, self.from)),
            };
            self.results = Some(results?);
        }
        Ok(())
    }

    /// Puts the shared data a chunk names on the server (each once a call),
    /// before the chunk goes out; or why it cannot.
    fn upload(&mut self, chunk: &ChunkEncoder<A>) -> Result<(), String> {
        let pool = self.pool;
        for (id, bytes) in chunk.shared() {
            if self.uploaded.contains(&id) {
                continue;
            }
            let store = match &self.data {
                Some(store) => store.clone(),
                None => {
                    let store = pool
                        .rt
                        .block_on(pool.target.data_store(&pool.js))
                        .map_err(|e| e.to_string())?;
                    self.data = Some(store.clone());
                    store
                }
            };
            pool.rt
                .block_on(store.put(data_name(id).as_str(), &mut &bytes[..]))
                .map_err(|e| {
                    format!(
                        "cannot put its shared data ({} bytes) on the server: {e}",
                        bytes.len()
                    )
                })?;
            self.uploaded.insert(id);
        }
        Ok(())
    }

    /// Keeps the first outcome of item `i`.
    fn answer(&mut self, i: usize, outcome: Result<R, TaskError>) {
        if self.named && i >= self.answered.len() && i < MAX_RESUMED {
            // An outcome an earlier driver of this call left, for an item
            // not pulled yet.
            self.answered.resize(i + 1, false);
        }
        if let Some(seen) = self.answered.get_mut(i)
            && !std::mem::replace(seen, true)
        {
            if self.slots.is_some() {
                self.put(i, outcome);
            } else {
                self.ready.push_back((i, outcome));
            }
        }
    }

    /// What is left of this map on the server goes.
    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            let pool = self.pool;
            if let Some(sending) = self.sending.as_mut() {
                pool.rt.block_on(sending.stop());
            }
            if self.named {
                pool.rt.block_on(pool.forget(&self.map));
            } else {
                pool.forget_soon(&self.map);
            }
            self.delete_data();
        }
    }
}

impl<A, R> MapRun<'_, A, R> {
    /// The stream sequences of the chunks still out that the server took
    /// (what a withdrawal deletes on an older server, see `cleanup`).
    fn queued(&self) -> Vec<u64> {
        self.out.values().filter_map(|p| p.seq).collect()
    }

    /// The shared data this call put on the server goes (agents keep what
    /// they fetched).
    fn delete_data(&mut self) {
        if let Some(store) = &self.data {
            let pool = self.pool;
            for id in self.uploaded.drain() {
                let _ = pool.rt.block_on(store.delete(data_name(id)));
            }
        }
    }
}

impl<A, R> Drop for MapRun<'_, A, R> {
    fn drop(&mut self) {
        if let Some(opening) = self.opening.take() {
            opening.abort();
        }
        // Dropped before its end (an iterator let go, Ctrl-C): its chunks
        // still out are withdrawn.
        if !self.finished {
            let pool = self.pool;
            if let Some(sending) = self.sending.as_mut() {
                pool.rt.block_on(sending.stop());
            }
            if !self.out.is_empty() || self.items.is_some() {
                pool.rt.block_on(pool.withdraw(&self.map, self.queued()));
            }
            // A named call's outcomes stay for the driver that resumes it.
            if !self.named {
                pool.rt.block_on(pool.forget(&self.map));
            }
            self.delete_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_chunks() {
        // No agent heard: 24 chunks.
        assert_eq!(default_chunk(Some(10), 0), 1);
        assert_eq!(default_chunk(Some(2_400), 0), 100);
        assert_eq!(default_chunk(Some(100_000), 0), 4167);
        // Two chunks a worker.
        assert_eq!(default_chunk(Some(100_000), 2), 25_000);
        assert_eq!(default_chunk(Some(400), 3), 67);
        assert_eq!(default_chunk(Some(10_000_000), 2), MAX_CHUNK);
        assert_eq!(default_chunk(None, 2), 64);
    }
}
