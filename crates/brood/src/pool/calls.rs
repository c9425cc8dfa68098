//! The ways to give a [`Pool`] work: `map` (a whole collection, results in
//! order), `map_unordered` (as they finish), `imap` / `imap_unordered` (a lazy
//! input, pulled only as workers need it), each also `_with` the worker's
//! state (a `fn(&S, A) -> R`; see [`PoolBuilder::initializer`]).

#[cfg(doc)]
use super::PoolBuilder;
use super::imap::{Imap, ImapUnordered};
use super::items::{Plan, Run, encoding};
use super::map::MapUnordered;
use super::options::CallOptions;
use super::{InOrder, Pool, TaskError, default_chunk, state, worker};
use crate::Result;
use crate::sys::image::FnRef;
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

/// Items pulled ahead of their results by a lazy map, per worker and chunk
/// (and at least [`MIN_WINDOW`]): enough that no worker waits, few enough
/// that an endless input costs a bounded amount of memory.
const WINDOW_PER_CHUNK: usize = 4;
const MIN_WINDOW: usize = 256;

/// The chunk of a lazy map whose length is not known (Python's `imap` sends
/// one item at a time, which costs ~150× per tiny item; results still stream,
/// since workers send what they have about every 200 µs).
const LAZY_CHUNK: usize = 64;

/// One call of a [`Pool`] with [`CallOptions`], from [`Pool::with`]: the same
/// methods as the pool's own, each used once.
#[derive(Debug)]
pub struct PoolCall<'p> {
    pool: &'p Pool,
    opts: CallOptions,
}

impl Pool {
    /// This pool for one call with `opts`: a timeout, a soft timeout, a chunk
    /// size or a progress callback for that call alone.
    ///
    /// ```
    /// # brood::init();
    /// use brood::CallOptions;
    /// use std::time::Duration;
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// let pool = brood::Pool::new(2)?;
    /// let opts = CallOptions::new().timeout(Duration::from_secs(10)).chunk_size(8);
    /// assert_eq!(pool.with(opts).map(inc, [1, 2])?, [Ok(2), Ok(3)]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn with(&self, opts: CallOptions) -> PoolCall<'_> {
        PoolCall { pool: self, opts }
    }

    /// `f` over every item, results in input order (Python's `Pool.map`). Each
    /// item has its own `Result`: a panic, a worker's death or a timeout fails
    /// that item alone.
    ///
    /// `f` is a plain `fn` (a closure without captures coerces to one), since
    /// workers may run in another process image. The outer error means the map
    /// could not start: the pool is closed, `f` is not code of the executable,
    /// or no worker could be started.
    ///
    /// ```
    /// # brood::init();
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = brood::Pool::new(2)?;
    /// let out = pool.map(square, 1..=3)?;
    /// assert_eq!(out, [Ok(1), Ok(4), Ok(9)]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<std::result::Result<R, TaskError>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map(f, items)
    }

    /// [`Pool::map`] with the worker's state: `f(&state, item)`, where the
    /// state is what the pool's [initializer](PoolBuilder::initializer)
    /// returned in that worker. An item run by a worker without a state of
    /// type `S` fails with [`TaskError::Failed`].
    ///
    /// ```
    /// # brood::init();
    /// fn offset(base: u64) -> u64 { base }
    /// fn add(base: &u64, x: u64) -> u64 { base + x }
    /// let pool = brood::Pool::builder(2).initializer(offset, 1000).build()?;
    /// assert_eq!(pool.map_with(add, [1, 2])?, [Ok(1001), Ok(1002)]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn map_with<S, A, R>(
        &self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<std::result::Result<R, TaskError>>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map_with(f, items)
    }

    /// `f` over every item: all the values in input order, or the first
    /// failure (Python's `Pool.map`, which raises; rayon's `collect` into a
    /// `Result`). A failed item gives
    /// [`Error::TaskFailed`](crate::Error::TaskFailed) with its index in the
    /// input and its [`TaskError`].
    ///
    /// "First" is in the order results arrive: the call ends as soon as one
    /// item has failed, and the items still running are abandoned — their
    /// workers are killed and replaced at the next call, as when a
    /// [`MapUnordered`] is dropped. [`Pool::map`] gives every item its own
    /// result instead.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{Error, TaskError};
    /// fn inverse(x: i32) -> i32 {
    ///     if x == 0 { panic!("no inverse for zero") }
    ///     100 / x
    /// }
    /// let pool = brood::Pool::new(2)?;
    /// assert_eq!(pool.try_map(inverse, [5, 50])?, [20, 2]);
    /// match pool.try_map(inverse, [5, 0, 50]) {
    ///     Err(Error::TaskFailed { index: 1, source: TaskError::Panicked { message, .. } }) => {
    ///         assert_eq!(message, "no inverse for zero")
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn try_map<A, R>(&self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).try_map(f, items)
    }

    /// [`Pool::try_map`] with the worker's state (see [`Pool::map_with`]).
    ///
    /// ```
    /// # brood::init();
    /// fn offset(base: u64) -> u64 { base }
    /// fn add(base: &u64, x: u64) -> u64 { base + x }
    /// let pool = brood::Pool::builder(2).initializer(offset, 1000).build()?;
    /// assert_eq!(pool.try_map_with(add, [1, 2])?, [1001, 1002]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn try_map_with<S, A, R>(
        &self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).try_map_with(f, items)
    }

    /// Like [`Pool::map`], but yields `(index, result)` as each item finishes
    /// (Python's `imap_unordered`, with the index, over a collection).
    ///
    /// Dropping the iterator before the end abandons the remaining items: the
    /// workers still running some are killed and replaced.
    ///
    /// ```
    /// # brood::init();
    /// use brood::Pool;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = Pool::new(2)?;
    /// let mut got: Vec<(usize, u32)> = pool
    ///     .map_unordered(double, [10, 20, 30])?
    ///     .map(|(i, r)| (i, r.unwrap()))
    ///     .collect();
    /// got.sort();
    /// assert_eq!(got, [(0, 20), (1, 40), (2, 60)]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn map_unordered<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapUnordered<'_, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map_unordered(f, items)
    }

    /// [`Pool::map_unordered`] with the worker's state (see
    /// [`Pool::map_with`]).
    pub fn map_unordered_with<S, A, R>(
        &self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapUnordered<'_, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map_unordered_with(f, items)
    }

    /// `f` over a lazy input, results in input order (Python's `imap`): the
    /// iterator is pulled only as workers need items, a bounded number ahead
    /// of the results, so an endless or huge input costs bounded memory and
    /// the first result comes before the input ends.
    ///
    /// Items travel in chunks of [`PoolBuilder::chunk_size`] (by default
    /// Python's chunk when the iterator tells its exact length, 64 when it
    /// does not). A slow item holds back the results after it (they wait, in
    /// order), and once the window of items ahead of it is full, the pulling
    /// too; [`Pool::imap_unordered`] yields those results as they come.
    ///
    /// ```
    /// # brood::init();
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = brood::Pool::new(2)?;
    /// // An endless input: only what is taken is computed (and a little more).
    /// let first: Vec<u64> = pool.imap(square, 1..)?.take(3).map(Result::unwrap).collect();
    /// assert_eq!(first, [1, 4, 9]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn imap<'a, A, R, I>(&'a self, f: fn(A) -> R, items: I) -> Result<Imap<'a, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.with(CallOptions::new()).imap(f, items)
    }

    /// [`Pool::imap`] with the worker's state (see [`Pool::map_with`]).
    pub fn imap_with<'a, S, A, R, I>(&'a self, f: fn(&S, A) -> R, items: I) -> Result<Imap<'a, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.with(CallOptions::new()).imap_with(f, items)
    }

    /// `f` over a lazy input, `(index, result)` as each item finishes
    /// (Python's `imap_unordered`, with the index): pulled like
    /// [`Pool::imap`], yielded without waiting for slower items.
    ///
    /// ```
    /// # brood::init();
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = brood::Pool::new(2)?;
    /// let mut got: Vec<(usize, u32)> = pool
    ///     .imap_unordered(double, (1..=3).map(|i| i * 10))?
    ///     .map(|(i, r)| (i, r.unwrap()))
    ///     .collect();
    /// got.sort();
    /// assert_eq!(got, [(0, 20), (1, 40), (2, 60)]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn imap_unordered<'a, A, R, I>(
        &'a self,
        f: fn(A) -> R,
        items: I,
    ) -> Result<ImapUnordered<'a, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.with(CallOptions::new()).imap_unordered(f, items)
    }

    /// [`Pool::imap_unordered`] with the worker's state (see
    /// [`Pool::map_with`]).
    pub fn imap_unordered_with<'a, S, A, R, I>(
        &'a self,
        f: fn(&S, A) -> R,
        items: I,
    ) -> Result<ImapUnordered<'a, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'a,
    {
        self.with(CallOptions::new()).imap_unordered_with(f, items)
    }
}

impl<'p> PoolCall<'p> {
    /// [`Pool::map`] with this call's options.
    pub fn map<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<std::result::Result<R, TaskError>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        in_order(self.map_unordered(f, items)?)
    }

    /// [`Pool::map_with`] with this call's options.
    pub fn map_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<std::result::Result<R, TaskError>>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        in_order(self.map_unordered_with(f, items)?)
    }

    /// [`Pool::try_map`] with this call's options.
    ///
    /// ```
    /// # brood::init();
    /// use brood::{CallOptions, Error, TaskError};
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let pool = brood::Pool::new(2)?;
    /// let opts = CallOptions::new().timeout(Duration::from_millis(200));
    /// let err = pool.with(opts).try_map(nap, [0, 60_000]).unwrap_err();
    /// assert!(matches!(err, Error::TaskFailed { index: 1, source: TaskError::Timeout { .. } }));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn try_map<A, R>(self, f: fn(A) -> R, items: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        all_or_first_failure(self.map_unordered(f, items)?)
    }

    /// [`Pool::try_map_with`] with this call's options.
    pub fn try_map_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        all_or_first_failure(self.map_unordered_with(f, items)?)
    }

    /// [`Pool::map_unordered`] with this call's options.
    pub fn map_unordered<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapUnordered<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let func = worker::fn_ref(f).map_err(crate::Error::Crossing)?;
        MapUnordered::new(
            self.pool.lock(),
            &self.pool.core.cfg,
            self.eager(func, items),
        )
    }

    /// [`Pool::map_unordered_with`] with this call's options.
    pub fn map_unordered_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapUnordered<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let func = state::task_ref(f).map_err(crate::Error::Crossing)?;
        MapUnordered::new(
            self.pool.lock(),
            &self.pool.core.cfg,
            self.eager(func, items),
        )
    }

    /// [`Pool::imap`] with this call's options.
    pub fn imap<A, R, I>(self, f: fn(A) -> R, items: I) -> Result<Imap<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        Ok(Imap::new(self.imap_unordered(f, items)?))
    }

    /// [`Pool::imap_with`] with this call's options.
    pub fn imap_with<S, A, R, I>(self, f: fn(&S, A) -> R, items: I) -> Result<Imap<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        Ok(Imap::new(self.imap_unordered_with(f, items)?))
    }

    /// [`Pool::imap_unordered`] with this call's options.
    pub fn imap_unordered<A, R, I>(self, f: fn(A) -> R, items: I) -> Result<ImapUnordered<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        let func = worker::fn_ref(f).map_err(crate::Error::Crossing)?;
        self.lazy(func, items.into_iter())
    }

    /// [`Pool::imap_unordered_with`] with this call's options.
    pub fn imap_unordered_with<S, A, R, I>(
        self,
        f: fn(&S, A) -> R,
        items: I,
    ) -> Result<ImapUnordered<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'p,
    {
        let func = state::task_ref(f).map_err(crate::Error::Crossing)?;
        self.lazy(func, items.into_iter())
    }

    /// The pool this call is of.
    pub(super) fn pool(&self) -> &'p Pool {
        self.pool
    }

    /// This call's hard and soft timeouts, where it sets them.
    pub(super) fn timeouts(&self) -> (Option<Duration>, Option<Duration>) {
        (self.opts.timeout, self.opts.soft_timeout)
    }

    /// What this call asks of a map running `func`, in chunks of `chunk`
    /// unless the call or the pool says otherwise.
    fn plan(&self, func: FnRef, chunk: usize) -> Plan {
        let chunk = self.chunk_asked().unwrap_or(chunk);
        let mut plan = Plan::of(&self.pool.core.cfg, &self.opts, func, chunk);
        plan.window = (WINDOW_PER_CHUNK * self.pool.core.cfg.size * chunk).max(MIN_WINDOW);
        plan
    }

    /// The chunk size the call, or else the pool, asks for.
    fn chunk_asked(&self) -> Option<usize> {
        self.opts.chunk.or(self.pool.core.cfg.chunk)
    }

    /// A map over a collection, encoded now.
    pub(super) fn eager<A: Serialize + 'static>(
        &self,
        func: FnRef,
        items: impl IntoIterator<Item = A>,
    ) -> Run<'static> {
        let mut run = Run::eager(self.plan(func, 1), items);
        if self.chunk_asked().is_none() {
            run.plan.chunk = default_chunk(run.pending.len(), self.pool.core.cfg.size);
        }
        run
    }

    /// A map over arguments encoded already (the remote seam's chunks).
    pub(super) fn eager_encoded<'b>(
        &self,
        func: FnRef,
        args: impl ExactSizeIterator<Item = &'b [u8]>,
        bytes: usize,
        named: &[super::shared::Sharing],
    ) -> Run<'static> {
        let mut run = Run::eager_encoded(self.plan(func, 1), args, bytes, named);
        if self.chunk_asked().is_none() {
            run.plan.chunk = default_chunk(run.pending.len(), self.pool.core.cfg.size);
        }
        run
    }

    fn lazy<A, R, I>(self, func: FnRef, items: I) -> Result<ImapUnordered<'p, R>>
    where
        A: Serialize + 'static,
        R: DeserializeOwned + 'static,
        I: Iterator<Item = A> + Send + 'p,
    {
        let chunk = match items.size_hint() {
            (lo, Some(hi)) if lo == hi => default_chunk(hi, self.pool.core.cfg.size),
            _ => LAZY_CHUNK,
        };
        let run = Run::lazy(self.plan(func, chunk), encoding(items));
        Ok(ImapUnordered(MapUnordered::new(
            self.pool.lock(),
            &self.pool.core.cfg,
            run,
        )?))
    }
}

/// A map's results put back in input order.
fn in_order<R: DeserializeOwned + 'static>(
    mut it: MapUnordered<'_, R>,
) -> Result<Vec<std::result::Result<R, TaskError>>> {
    // The workers start first; the result vector (tens of bytes a slot)
    // is made while they run.
    it.kick();
    let mut out = InOrder::new(it.len());
    if !it.for_each_result(|i, r| out.put(i, r)) {
        return Err(crate::Error::Interrupted);
    }
    Ok(out.finish())
}

/// A map's values in input order, or its first failure (dropping the map
/// then kills the workers still running its items).
fn all_or_first_failure<R: DeserializeOwned + 'static>(
    mut it: MapUnordered<'_, R>,
) -> Result<Vec<R>> {
    it.kick();
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(it.len()).collect();
    for (index, result) in it.by_ref() {
        match result {
            Ok(value) => {
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(value);
                }
            }
            Err(source) => return Err(crate::Error::TaskFailed { index, source }),
        }
    }
    if it.interrupted() {
        return Err(crate::Error::Interrupted);
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            value.ok_or_else(|| crate::Error::TaskFailed {
                index,
                source: TaskError::Failed {
                    reason: "internal: no result was recorded".into(),
                },
            })
        })
        .collect()
}
