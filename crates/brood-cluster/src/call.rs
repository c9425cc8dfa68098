//! The calls of a [`ClusterPool`]: `map`, `imap`, `imap_unordered`,
//! `try_map` and `submit`, with the local pool's signatures and results,
//! each optionally with [`CallOptions`] through [`ClusterPool::with`].

use crate::driver::ClusterPool;
use crate::error::ClusterError;
use crate::run::{Indexed, MapRun, NewChunk, Spec};
use brood::remote::ChunkEncoder;
use brood::{CallOptions, TaskError};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// One call of a [`ClusterPool`] with its options, from
/// [`ClusterPool::with`]: a timeout for each item (its agent kills the
/// worker past it), a soft timeout, a chunk size, a progress callback.
#[derive(Debug)]
pub struct ClusterCall<'p> {
    pool: &'p ClusterPool,
    opts: CallOptions,
    name: Option<String>,
    retries: u32,
}

/// A call's outcomes as they come, whatever its argument type.
trait Outcomes<R> {
    fn next_outcome(&mut self) -> Result<Option<Indexed<R>>, ClusterError>;
    fn collect_all(&mut self) -> Result<Vec<Result<R, TaskError>>, ClusterError>;
    fn interrupted(&self) -> bool;
}

impl<A: Serialize + 'static, R: DeserializeOwned + 'static> Outcomes<R> for MapRun<'_, A, R> {
    fn next_outcome(&mut self) -> Result<Option<Indexed<R>>, ClusterError> {
        MapRun::next_outcome(self)
    }

    fn collect_all(&mut self) -> Result<Vec<Result<R, TaskError>>, ClusterError> {
        MapRun::collect_all(self)
    }

    fn interrupted(&self) -> bool {
        MapRun::interrupted(self)
    }
}

/// The results of [`ClusterPool::imap_unordered`]: `(index, result)` in the
/// order they finish. Dropping it withdraws the items not yet answered.
pub struct ClusterImapUnordered<'p, R> {
    run: Box<dyn Outcomes<R> + 'p>,
    error: Option<ClusterError>,
}

impl<R> std::fmt::Debug for ClusterImapUnordered<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterImapUnordered")
            .finish_non_exhaustive()
    }
}

impl<R> ClusterImapUnordered<'_, R> {
    /// Whether Ctrl-C ended the call (the iterator then ends early).
    pub fn interrupted(&self) -> bool {
        self.run.interrupted()
    }

    /// Why the iterator ended early, if the server failed it.
    pub fn error(&self) -> Option<&ClusterError> {
        self.error.as_ref()
    }
}

impl<R> Iterator for ClusterImapUnordered<'_, R> {
    type Item = (usize, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() {
            return None;
        }
        match self.run.next_outcome() {
            Ok(x) => x,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// The results of [`ClusterPool::imap`], in input order.
pub struct ClusterImap<'p, R> {
    inner: ClusterImapUnordered<'p, R>,
    held: BTreeMap<usize, Result<R, TaskError>>,
    next: usize,
}

impl<R> std::fmt::Debug for ClusterImap<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterImap")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<R> ClusterImap<'_, R> {
    /// Whether Ctrl-C ended the call.
    pub fn interrupted(&self) -> bool {
        self.inner.interrupted()
    }

    /// Why the iterator ended early, if the server failed it.
    pub fn error(&self) -> Option<&ClusterError> {
        self.inner.error()
    }
}

impl<R> Iterator for ClusterImap<'_, R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.held.remove(&self.next) {
                self.next += 1;
                return Some(r);
            }
            let (i, r) = self.inner.next()?;
            self.held.insert(i, r);
        }
    }
}

/// A task given with [`ClusterPool::submit`]: its result, once an agent
/// answered it.
#[derive(Debug)]
pub struct ClusterTask<R> {
    rx: std::sync::mpsc::Receiver<brood::Result<Result<R, TaskError>>>,
}

impl<R> ClusterTask<R> {
    /// Waits for the result, as [`brood::TaskHandle::wait`]: Ctrl-C during
    /// the task is [`TaskError::Interrupted`], a server that could not be
    /// used a [`TaskError::Failed`] saying why.
    pub fn wait(self) -> Result<R, TaskError> {
        match self.rx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(brood::Error::Interrupted)) => Err(TaskError::Interrupted),
            Ok(Err(e)) => Err(TaskError::Failed {
                reason: e.to_string(),
            }),
            Err(_) => Err(TaskError::Failed {
                reason: "the task's thread ended without a result".into(),
            }),
        }
    }
}

impl<'p> ClusterCall<'p> {
    pub(crate) fn new(pool: &'p ClusterPool, opts: CallOptions) -> ClusterCall<'p> {
        ClusterCall {
            pool,
            opts,
            name: None,
            retries: 0,
        }
    }

    /// An item whose worker died (`TaskError::WorkerDied`: a signal, an
    /// abort, an `exit`, the OOM killer) runs again, alone, on whichever
    /// agent takes it, up to `n` more times; its last outcome is kept. By
    /// default it is not run again (it may be what killed the worker).
    ///
    /// ```no_run
    /// # brood::init();
    /// fn flaky(x: u64) -> u64 { x }
    /// let pool = brood_cluster::ClusterPool::connect("nats://127.0.0.1:4222", "etl")?;
    /// let out = pool.with(brood::CallOptions::new()).retries(2).map(flaky, 0..100)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retries(mut self, n: u32) -> ClusterCall<'p> {
        self.retries = n;
        self
    }

    /// Names the call, so that a driver started again with the same job and
    /// name resumes it: the outcomes the earlier driver's call received
    /// stay on the server (when it ended early: killed, Ctrl-C, an error),
    /// and the new call gives them for their items without running them
    /// again; the other items run. The items must be the same, in the same
    /// order. A call that ended normally leaves nothing: the same name then
    /// starts afresh. 1 to 64 letters, digits, `-` and `_`.
    ///
    /// ```no_run
    /// # brood::init();
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = brood_cluster::ClusterPool::connect("nats://127.0.0.1:4222", "nightly")?;
    /// // Run again after a crash: what was answered is not run again.
    /// let out = pool.with(brood::CallOptions::new()).named("2026-12-07").map(square, 0..1_000_000)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn named(mut self, name: &str) -> ClusterCall<'p> {
        self.name = Some(name.to_string());
        self
    }

    fn start<A, R>(
        self,
        new_chunk: NewChunk<A>,
        items: Box<dyn Iterator<Item = A> + 'p>,
        stateful: bool,
    ) -> brood::Result<ClusterImapUnordered<'p, R>>
    where
        A: Serialize + 'static,
        R: DeserializeOwned + 'static,
    {
        let spec = Spec {
            opts: self.opts,
            stateful,
            name: self.name,
            retries: self.retries,
        };
        let run = MapRun::<A, R>::start(self.pool, spec, new_chunk, items)?;
        Ok(ClusterImapUnordered {
            run: Box::new(run),
            error: None,
        })
    }

    /// [`ClusterPool::imap_unordered`] with this call's options.
    pub fn imap_unordered<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImapUnordered<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.start(
            Box::new(move || ChunkEncoder::new(f)),
            Box::new(items.into_iter()),
            false,
        )
    }

    /// [`ClusterPool::imap_unordered_with`] with this call's options.
    pub fn imap_unordered_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImapUnordered<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.start(
            Box::new(move || ChunkEncoder::new_with(f)),
            Box::new(items.into_iter()),
            true,
        )
    }

    /// [`ClusterPool::imap_with`] with this call's options.
    pub fn imap_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImap<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Ok(ordered(self.imap_unordered_with(f, items)?))
    }

    /// [`ClusterPool::map_with`] with this call's options.
    pub fn map_with<S, A, R>(
        self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<Vec<Result<R, TaskError>>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        collect(self.imap_unordered_with(f, items)?)
    }

    /// [`ClusterPool::imap`] with this call's options.
    pub fn imap<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImap<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Ok(ordered(self.imap_unordered(f, items)?))
    }

    /// [`ClusterPool::map`] with this call's options.
    pub fn map<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<Vec<Result<R, TaskError>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        collect(self.imap_unordered(f, items)?)
    }

    /// [`ClusterPool::try_map`] with this call's options.
    pub fn try_map<A, R>(
        self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.map(f, items)?
            .into_iter()
            .enumerate()
            .map(|(index, r)| r.map_err(|source| brood::Error::TaskFailed { index, source }))
            .collect()
    }
}

/// The results of an unordered call, in input order.
fn ordered<R>(inner: ClusterImapUnordered<'_, R>) -> ClusterImap<'_, R> {
    ClusterImap {
        inner,
        held: BTreeMap::new(),
        next: 0,
    }
}

/// Every result of a call, in input order; Ctrl-C and a failed server are
/// the outer error.
fn collect<R>(mut it: ClusterImapUnordered<'_, R>) -> brood::Result<Vec<Result<R, TaskError>>> {
    let out = it.run.collect_all()?;
    if it.interrupted() {
        return Err(brood::Error::Interrupted);
    }
    Ok(out)
}

impl ClusterPool {
    /// `f` over every item, results in input order: [`brood::Pool::map`],
    /// run by the job's agents. Each item has its own `Result`, with the
    /// same [`TaskError`]s as on one machine; an item whose agents all died
    /// (`max_deliveries` times) fails with [`TaskError::Failed`]. The items
    /// go out in chunks (some 24 for the call, at most 4,096 items each,
    /// or [`CallOptions::chunk_size`]); the map waits for agents if there
    /// are none yet. Ctrl-C ends it with `brood::Error::Interrupted`, its
    /// chunks withdrawn from the agents.
    ///
    /// An item runs at least once: when an agent is lost, the items it was
    /// running run again elsewhere; the driver keeps the first outcome of
    /// each. Must not be called from inside an async runtime.
    ///
    /// The outer error: `f` cannot cross (not code of the executable), or
    /// the server could not be used (a `brood::Error::Io` holding a
    /// [`ClusterError`]).
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> brood::Result<Vec<Result<R, TaskError>>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map(f, items)
    }

    /// The values of [`ClusterPool::map`], or its first failure
    /// ([`brood::Pool::try_map`]).
    pub fn try_map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> brood::Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).try_map(f, items)
    }

    /// Results in input order as they can be given ([`brood::Pool::imap`]):
    /// the input is pulled only as chunks go out, so it may be endless.
    ///
    /// ```no_run
    /// # brood::init();
    /// fn double(x: u64) -> u64 { 2 * x }
    /// let pool = brood_cluster::ClusterPool::connect("nats://127.0.0.1:4222", "doubles")?;
    /// for r in pool.imap(double, 0..1_000_000)?.take(10) {
    ///     println!("{}", r?);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn imap<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImap<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).imap(f, items)
    }

    /// `(index, result)` in the order they finish
    /// ([`brood::Pool::imap_unordered`]).
    pub fn imap_unordered<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImapUnordered<'p, R>>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).imap_unordered(f, items)
    }

    /// [`ClusterPool::map`] for a function of the worker's state, which the
    /// pool's [initializer](crate::ClusterBuilder::initializer) made on
    /// every worker of every agent ([`brood::Pool::map_with`]).
    ///
    /// ```no_run
    /// # brood::init();
    /// use std::collections::HashMap;
    /// fn load(n: u32) -> HashMap<u32, String> {
    ///     (0..n).map(|i| (i, format!("item {i}"))).collect()
    /// }
    /// fn name(table: &HashMap<u32, String>, i: u32) -> String { table[&i].clone() }
    /// let pool = brood_cluster::ClusterPool::builder("nats://127.0.0.1:4222", "names")
    ///     .initializer(load, 100)
    ///     .connect()?;
    /// let names = pool.map_with(name, [3, 42])?;
    /// assert_eq!(names[1].as_deref(), Ok("item 42"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_with<S, A, R>(
        &self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> brood::Result<Vec<Result<R, TaskError>>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).map_with(f, items)
    }

    /// [`ClusterPool::imap`] for a function of the worker's state.
    pub fn imap_with<'p, S, A, R>(
        &'p self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImap<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).imap_with(f, items)
    }

    /// [`ClusterPool::imap_unordered`] for a function of the worker's state.
    pub fn imap_unordered_with<'p, S, A, R>(
        &'p self,
        f: fn(&S, A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> brood::Result<ClusterImapUnordered<'p, R>>
    where
        S: 'static,
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.with(CallOptions::new()).imap_unordered_with(f, items)
    }

    /// Runs `f(arg)` on an agent and returns at once with a handle to its
    /// result ([`brood::Pool::submit`]).
    ///
    /// ```no_run
    /// # brood::init();
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = brood_cluster::ClusterPool::connect("nats://127.0.0.1:4222", "squares")?;
    /// let task = pool.submit(square, 12)?;
    /// assert_eq!(task.wait(), Ok(144));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> brood::Result<ClusterTask<R>>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        // Refused at once if `f` cannot cross.
        ChunkEncoder::new(f).map_err(ClusterError::from)?;
        // A one-item call on a thread of its own: the pool's runtime serves
        // several callers at once.
        let pool = self.share();
        std::thread::Builder::new()
            .name("brood-cluster-submit".into())
            .spawn(move || {
                let out = pool.with(CallOptions::new()).map(f, [arg]).map(|mut v| {
                    v.pop().unwrap_or(Err(TaskError::Failed {
                        reason: "no outcome".into(),
                    }))
                });
                let _ = tx.send(out);
            })
            .map_err(|e| ClusterError::Pool(format!("cannot start the task's thread: {e}")))?;
        Ok(ClusterTask { rx })
    }
}
