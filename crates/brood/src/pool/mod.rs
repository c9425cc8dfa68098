//! [`Pool`]: Python's `multiprocessing.Pool`, with the failure modes fixed.
//!
//! Workers are long-lived brood [`Process`](crate::Process)es, one per slot,
//! started with any [`StartMethod`] (the function of each task crosses as an
//! offset in the executable, like a `Process` function; see `worker.rs`).
//! The pool watches every worker's result socket *and* its pidfd in one
//! `poll(2)`, so a death is seen the moment it happens, never guessed from a
//! timeout:
//!
//! - a worker that dies (SIGKILL, segfault, abort, `exit`) fails only the item
//!   it was running, with [`TaskError::WorkerDied`] naming the signal; the items
//!   queued behind it go to other workers, and the worker is replaced. `map`
//!   never hangs and the pool is never poisoned (Python's `Pool.map` waits
//!   forever here);
//! - a panic fails its item with [`TaskError::Panicked`]; the worker goes on;
//! - [`PoolBuilder::task_timeout`]: an item that runs longer has its worker
//!   SIGKILLed (its whole group with [`Tree::Group`]) and fails with
//!   [`TaskError::Timeout`];
//! - [`PoolBuilder::max_tasks_per_child`]: a worker retires after that many
//!   items and a fresh one takes its place; with
//!   [`PoolBuilder::max_memory_per_child`], once its resident memory passed
//!   the limit (read from `/proc/<pid>/statm` as its results arrive).
//!
//! **Chunking.** Items travel to workers in chunks, so that sending costs one
//! write per chunk, not per item; each worker holds two chunks (with short
//! items in small chunks, up to about a millisecond of them), so that it
//! never waits for the next one. Results come back in batches too (at the end
//! of a chunk, and about every 200 µs in between, so a slow item's result is
//! not held back), while a page shared with each worker counts the items it started
//! and finished: that, not the results, says which item a dying worker was
//! running. The default chunk is Python's, `ceil(n / (4 w))` for `n` items and
//! `w` workers (at most 4096): each worker gets about four batches, which
//! evens out the load when items differ in cost. `cargo bench -p brood --bench
//! pool` sweeps the chunk size for `x + 1` over 10,000 items on 2 workers
//! (2 CPUs): relative to the default (1250), 1 item per chunk takes ~150×, 16
//! ~9×, 64 ~2.6×, 256 ~1.2×, and from 625 up the time is flat within noise.
//!
//! **Big results.** A result whose encoding takes 1 MiB or more crosses in a
//! sealed `memfd` of its own, not through the worker's socket: the pool maps
//! it and decodes from the mapping (a `Vec<u8>` or `String` is written into
//! it directly, and copied once out of it). A 200 MiB `Vec<u8>` takes
//! 0.97–1.08× what it takes from a [`Process`](crate::Process) on 2 loaded
//! CPUs (`cargo bench -p brood --bench data -- big`). A worker that cannot
//! make one (out of descriptors) sends the bytes through its socket.
//!
//! Items a worker finished but whose results had not been sent yet when it
//! died (items that together took a few milliseconds at most; with any
//! timeout, which sends each result at once, at most the one just finished)
//! run again on another worker: every item gets exactly one result, but those
//! few may have run twice. Such re-runs are bounded: an item runs again with
//! each of its results sent at once (so that a loss charges it alone), and
//! an item whose result is lost with its worker three times (a task that
//! closes the worker's descriptors does it every time) fails with
//! [`TaskError::ResultLost`]. An item's timeout counts from its first start,
//! across its runs: whatever the workers do, an item with a timeout has its
//! result (or [`TaskError::Timeout`]) within that time of its first start. (The batch is sent after an item once 200 µs have
//! passed since the last send, read on the kernel's coarse clock: up to one
//! tick, 1–4 ms, later. So the result of a quick item that precedes a slow
//! one in its chunk may wait for the slow one.)
//!
//! A long item does not hold up the items queued behind it: once nothing
//! else waits, the items a worker holds but has not begun go to an idle
//! worker when its current item has run 10 ms and twice its usual time (a
//! hung item then costs its own timeout, not its neighbours'). Should the
//! stuck worker begin one of them at that very instant, it runs twice and
//! the idle worker's result is kept — again, exactly one result per item.
//!
//! Every start method works: [`StartMethod::Fork`], [`StartMethod::Spawn`]
//! and [`StartMethod::ForkServer`] (the default, as for `Process`).

mod batch;
mod board;
mod calls;
mod chunk;
mod conn;
mod death;
pub(crate) mod failure;
mod imap;
mod items;
mod lease;
mod line;
mod map;
mod options;
mod progress;
mod ready;
pub mod remote;
mod reruns;
mod run;
mod shared;
mod state;
mod steal;
mod submit;
mod usage;
mod worker;

use crate::policy::{Kind, Lifecycle, Policy};
#[cfg(doc)]
use crate::policy::{OnExit, Tree};
use crate::sys::image::FnRef;
use crate::{Result, StartMethod};
use serde::{Serialize, de::DeserializeOwned};
use std::sync::Arc;
use std::time::Duration;

pub use calls::PoolCall;
pub use failure::TaskError;
pub use imap::{Imap, ImapUnordered};
pub use map::MapUnordered;
pub use options::{CallOptions, CallSettings, MapProgress};
pub use shared::SharedSlice;
pub use submit::TaskHandle;
pub use usage::PoolUsage;
pub use worker::task_cancelled;

/// Settings of a [`Pool`], from [`Pool::builder`].
///
/// ```
/// # brood::init();
/// use brood::{OnExit, Pool, StartMethod, Tree};
/// use std::time::Duration;
/// let pool = Pool::builder(2)
///     .start_method(StartMethod::Spawn)
///     .max_tasks_per_child(100)
///     .task_timeout(Duration::from_secs(30))
///     .tree(Tree::Group)
///     .on_exit(OnExit::TERMINATE)
///     .build()?;
/// assert_eq!(pool.size(), 2);
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    cfg: Config,
    lifecycle: Lifecycle,
}

#[derive(Debug, Clone)]
struct Config {
    size: usize,
    method: Option<StartMethod>,
    max_tasks: Option<usize>,
    /// Retire a worker whose resident memory passed this, after its task.
    max_memory: Option<u64>,
    timeout: Option<Duration>,
    chunk: Option<usize>,
    policy: Policy,
    /// Each worker's initializer and its encoded argument.
    init: Option<(FnRef, Vec<u8>)>,
    /// Why the initializer given cannot be used (reported by `build`).
    init_error: Option<InitError>,
}

impl PoolBuilder {
    /// How to start workers; [`crate::start_method`] by default.
    pub fn start_method(&mut self, method: StartMethod) -> &mut Self {
        self.cfg.method = Some(method);
        self
    }

    /// Retire a worker after it ran this many items, and start a fresh one
    /// (Python's `maxtasksperchild`). Unlimited by default; 0 means unlimited.
    pub fn max_tasks_per_child(&mut self, n: usize) -> &mut Self {
        self.cfg.max_tasks = (n > 0).then_some(n);
        self
    }

    /// Retire a worker whose resident memory (RSS) has grown past `bytes`,
    /// once it has finished the items it holds, and start a fresh one
    /// (celery's `worker_max_memory_per_child`): a leaking task costs a
    /// worker, not the machine. Unlimited by default; 0 means unlimited.
    ///
    /// ```
    /// # brood::init();
    /// fn leak(mib: usize) -> usize { std::mem::forget(vec![1u8; mib << 20]); mib }
    /// let pool = brood::Pool::builder(1).max_memory_per_child(64 << 20).chunk_size(1).build()?;
    /// let first = pool.worker_pids();
    /// assert!(pool.map(leak, [40, 40, 40]).unwrap().iter().all(|r| r == &Ok(40)));
    /// // It was retired; the next map has a fresh worker.
    /// assert_eq!(pool.map(leak, [1]).unwrap(), [Ok(1)]);
    /// assert_ne!(pool.worker_pids(), first);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn max_memory_per_child(&mut self, bytes: u64) -> &mut Self {
        self.cfg.max_memory = (bytes > 0).then_some(bytes);
        self
    }

    /// Fail an item that runs longer than this with [`TaskError::Timeout`],
    /// killing its worker (the worker cannot be interrupted otherwise). None by
    /// default. Counted from the item's first start, across the runs of an
    /// item that runs again because its result died with its worker.
    pub fn task_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.cfg.timeout = Some(timeout);
        self
    }

    /// Items per chunk for every `map`, instead of the measured default. 0
    /// means the default.
    ///
    /// Items travel to workers in chunks, so that sending costs one write per
    /// chunk rather than per item, and each worker holds at most two chunks so
    /// that it never waits for the next. The default is Python's, `ceil(n /
    /// (4 w))` for `n` items and `w` workers (at most 4096): each worker gets
    /// about four chunks, which evens out the load when items differ in cost.
    /// `cargo bench -p brood --bench pool` sweeps the size for `x + 1` over
    /// 10,000 items on 2 workers (2 CPUs): relative to the default (1250), 1
    /// item per chunk takes ~150×, 16 ~9×, 64 ~2.6×, 256 ~1.2×, and from 625 up
    /// the time is flat within noise. A larger chunk means a dying worker takes
    /// more queued items with it to be re-sent (never lost: see [`Pool`]).
    ///
    /// ```
    /// # brood::init();
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// let pool = brood::Pool::builder(2).chunk_size(64).build()?;
    /// assert_eq!(pool.map(inc, 0..100)?.len(), 100);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn chunk_size(&mut self, n: usize) -> &mut Self {
        self.cfg.chunk = (n > 0).then_some(n);
        self
    }

    /// Runs `f(arg)` once in each worker as it starts (Python's
    /// `initializer=`/`initargs=`): its value is the worker's state, which
    /// every task given with [`Pool::map_with`] (and the other `_with`
    /// methods) sees as `&S` — load a model or a table once per worker, not
    /// once per item. The state never crosses, so it may hold anything.
    ///
    /// A worker replaced after a death, a timeout or `max_tasks_per_child`
    /// runs it again. An initializer that panics fails the start with
    /// [`Error::PoolInitializer`](crate::Error::PoolInitializer) (Python
    /// restarts such workers forever). Works with every start method.
    ///
    /// ```
    /// # brood::init();
    /// use std::collections::HashMap;
    /// fn load(n: u32) -> HashMap<u32, String> {
    ///     (0..n).map(|i| (i, format!("item {i}"))).collect()
    /// }
    /// fn name(table: &HashMap<u32, String>, i: u32) -> String { table[&i].clone() }
    /// let pool = brood::Pool::builder(2).initializer(load, 100).build()?;
    /// let names = pool.map_with(name, [3, 42])?;
    /// assert_eq!(names[1].as_deref(), Ok("item 42"));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn initializer<I, S>(&mut self, f: fn(I) -> S, arg: I) -> &mut Self
    where
        I: Serialize + DeserializeOwned + 'static,
        S: 'static,
    {
        let encoded = state::init_ref(f)
            .map_err(InitError::Crossing)
            .and_then(|r| {
                crate::wire::frame::forget_refusal();
                postcard::to_allocvec(&arg)
                    .map(|a| (r, a))
                    .map_err(|e| InitError::Encode(crate::wire::frame::encode_error(&e)))
            });
        match encoded {
            Ok(init) => {
                self.cfg.init = Some(init);
                self.cfg.init_error = None;
            }
            Err(e) => self.cfg.init_error = Some(e),
        }
        self
    }

    crate::policy::lifecycle_methods! {
        on_exit {
            /// For workers the default is [`OnExit::TERMINATE`]
            /// ([`Kind::PoolWorker`]).
        }
        on_parent_death {
            /// For workers the default is `Signal(SIGKILL)`: workers never
            /// outlive their pool's process.
        }
        tree {
            /// With [`Tree::Group`] a task timeout or `terminate` also ends what
            /// a task started.
        }
        on_drop {
            /// A pool's drop always ends its workers: `Detach` keeps its own
            /// way (see [`Pool`]), `Kill` and `Terminate` replace it.
        }
        set_policy {}
        policy {
            /// ```
            /// use brood::{Kind, Policy, Pool};
            /// assert_eq!(Pool::builder(2).policy(), Policy::for_kind(Kind::PoolWorker));
            /// ```
        }
    }

    /// Starts the workers.
    ///
    /// Errors: a size of 0 ([`Error::PoolSize`](crate::Error::PoolSize)), a
    /// worker that could not be started or did not connect back (for
    /// re-executed workers: is `brood::init()` the first line of `main`?).
    pub fn build(&self) -> Result<Pool> {
        if self.cfg.size == 0 {
            return Err(crate::Error::PoolSize {
                size: self.cfg.size,
            });
        }
        match &self.cfg.init_error {
            Some(InitError::Crossing(e)) => return Err(crate::Error::Crossing(e.clone())),
            Some(InitError::Encode(reason)) => {
                return Err(crate::Error::ArgumentEncode {
                    of: "the pool's initializer".into(),
                    reason: reason.clone(),
                });
            }
            None => {}
        }
        let mut cfg = self.cfg.clone();
        cfg.policy = self.lifecycle.policy();
        if cfg.method.unwrap_or_else(crate::start_method) == StartMethod::Fork
            && let Some((limit, mapped)) = cfg.policy.limits.below_forked_size()
        {
            return Err(crate::Error::AddressSpaceBelowParent { limit, mapped });
        }
        let inner = run::Inner::start(&cfg)?;
        Ok(Pool {
            board: Arc::clone(&inner.board),
            core: Arc::new(Core {
                cfg,
                inner: lease::Slot::new(inner),
                submitted: submit::Queue::default(),
            }),
        })
    }
}

/// Why [`PoolBuilder::initializer`] was given something unusable.
#[derive(Debug, Clone)]
enum InitError {
    Crossing(crate::sys::image::CrossingError),
    Encode(String),
}

/// A pool of worker processes: Python's `multiprocessing.Pool`, where a worker
/// that dies, hangs or panics costs one item, never the whole `map`.
///
/// Every method takes `&self`; `map`s from several threads run one after the
/// other. Dropping the pool [terminates](Pool::terminate) its workers.
///
/// ```
/// # brood::init();
/// use brood::Pool;
/// fn square(x: u64) -> u64 { x * x }
/// let pool = Pool::new(2)?;
/// let squares: Vec<u64> = pool.map(square, 1..=4)?.into_iter().map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16]);
/// pool.close()?;
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Debug)]
pub struct Pool {
    /// Shared with the thread that runs submitted tasks.
    core: Arc<Core>,
    /// The workers, kept current by the state, and the pool's pauses:
    /// usable while a map runs.
    board: Arc<board::Board>,
}

/// What a pool is, behind its handle.
#[derive(Debug)]
struct Core {
    cfg: Config,
    inner: lease::Slot,
    /// Tasks given with `submit`, and the thread that runs them.
    submitted: submit::Queue,
}

impl Pool {
    /// A pool of `n` workers with the default options (Python's `Pool(n)`; use
    /// [`std::thread::available_parallelism`] for Python's default `n`).
    /// [`Pool::builder`] sets the options first.
    ///
    /// ```
    /// # brood::init();
    /// fn neg(x: i8) -> i8 { -x }
    /// let pool = brood::Pool::new(1)?;
    /// assert_eq!(pool.map(neg, [3])?[0].as_ref().ok(), Some(&-3));
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn new(n: usize) -> Result<Pool> {
        Pool::builder(n).build()
    }

    /// The options of a pool of `n` workers, to be set and then
    /// [built](PoolBuilder::build).
    pub fn builder(n: usize) -> PoolBuilder {
        PoolBuilder {
            cfg: Config {
                size: n,
                method: None,
                max_tasks: None,
                max_memory: None,
                timeout: None,
                chunk: None,
                policy: Policy::for_kind(Kind::PoolWorker),
                init: None,
                init_error: None,
            },
            lifecycle: Lifecycle::new(Kind::PoolWorker),
        }
    }

    /// The number of worker slots.
    pub fn size(&self) -> usize {
        self.core.cfg.size
    }

    /// The pids of the live workers, slot by slot. Answers at once, also while
    /// another thread runs a `map` (the pool keeps this list current as
    /// workers start, die and are replaced).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.board.pids()
    }

    /// What the pool's items have used so far: their CPU time and the most
    /// memory a worker held (see [`PoolUsage`] for how exact each figure
    /// is). Counted as results come in, so it is current also while another
    /// thread runs a `map`. For one call, take it before and after (calls
    /// run one at a time, but a call made meanwhile from another thread, or
    /// a [`submit`](Pool::submit)ted task, counts in between too):
    ///
    /// ```
    /// # brood::init();
    /// fn spin(ms: u64) -> u64 {
    ///     let t = std::time::Instant::now();
    ///     let mut n = 0u64;
    ///     while t.elapsed().as_millis() < ms as u128 { n = n.wrapping_add(1); }
    ///     n
    /// }
    /// let pool = brood::Pool::new(2)?;
    /// let before = pool.usage();
    /// pool.map(spin, [30, 30])?;
    /// let call = pool.usage().since(&before);
    /// assert!(call.cpu() > std::time::Duration::ZERO);
    /// assert!(call.peak_rss > 0);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn usage(&self) -> PoolUsage {
        self.board.usage()
    }

    /// Pauses every worker, with what its tasks started (its whole tree, as
    /// [`Child::suspend`](crate::Child::suspend) pauses a child's: a frozen
    /// cgroup with [`Tree::Cgroup`], SIGSTOP to its process group with
    /// [`Tree::Group`], the worker alone with [`Tree::Own`]), and returns
    /// once every one is paused. Works while another thread runs a `map`:
    /// its items stop where they are and go on after [`resume`](Pool::resume).
    /// The stops are sent to all workers first and then waited for, so a
    /// pool stops in about the time one worker takes.
    ///
    /// While the pool is paused its task timeouts do not run: an item's
    /// [`task_timeout`](PoolBuilder::task_timeout) and its call's
    /// [`timeout`](CallOptions::timeout) and
    /// [`soft_timeout`](CallOptions::soft_timeout) count the time it ran,
    /// from its start less the time from each `suspend()` call to the
    /// return of its `resume()` (so an item that had less than 10 ms left
    /// when the pool paused may time out up to 10 ms after the resume). A
    /// worker that replaces one (after a death) while the pool is paused
    /// is paused before it gets work. A `map` called while the pool is
    /// paused waits for the resume; [`close`](Pool::close) and
    /// [`terminate`](Pool::terminate) resume the workers first. Calling it
    /// again while paused does nothing.
    ///
    /// ```
    /// # brood::init();
    /// let pool = brood::Pool::new(2)?;
    /// pool.suspend()?;
    /// for pid in pool.worker_pids() {
    ///     let state = brood::os::procfs::stat(pid)?.unwrap().state;
    ///     assert_eq!(state.as_char(), 'T');
    /// }
    /// pool.resume()?;
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// assert_eq!(pool.map(inc, [1])?, [Ok(2)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn suspend(&self) -> Result<()> {
        self.board.suspend()
    }

    /// Resumes the workers paused by [`suspend`](Pool::suspend) (thawing
    /// their cgroups, or SIGCONT to their groups); their items' timeouts run
    /// again from where they stood. Does nothing if the pool is not paused.
    pub fn resume(&self) -> Result<()> {
        self.board.resume()
    }

    /// The pool's state, once no map holds it.
    fn lock(&self) -> lease::Lease<'_> {
        self.core.inner.lease()
    }

    /// Lets the workers finish what they were given, then ends them and waits
    /// for them (Python's `close()` + `join()`). Later `map`s are refused.
    pub fn close(&self) -> Result<()> {
        // Paused workers could not finish anything (one that cannot be
        // resumed is killed after the wait below).
        let _ = self.resume();
        self.core.submitted.close();
        self.lock().close(&self.core.cfg)
    }

    /// Ends every worker now: SIGTERM (to its group with [`Tree::Group`]),
    /// SIGKILL to what is left after the grace of [`OnExit::Terminate`] (1 s
    /// otherwise), and waits for them (Python's `terminate()` + `join()`, except
    /// that it cannot hang). Later `map`s are refused.
    pub fn terminate(&self) -> Result<()> {
        // A stopped worker would hold SIGTERM until its grace ran out.
        let _ = self.resume();
        self.core.submitted.stop();
        self.lock().terminate(&self.core.cfg)
    }
}

impl Drop for Pool {
    /// Ends the workers: as [`Pool::terminate`] with [`OnDrop::Detach`](crate::OnDrop::Detach) (the
    /// default); with `Kill` or `Terminate`, each worker's own handle applies
    /// that policy as the pool lets go of it, without waiting.
    fn drop(&mut self) {
        if self.core.cfg.policy.on_drop == crate::OnDrop::Detach {
            let _ = self.terminate();
        } else {
            // A stopped worker would hold its SIGTERM.
            let _ = self.resume();
            // The thread of submitted tasks lets go of the workers too.
            self.core.submitted.stop();
        }
    }
}

/// Results put back in input order.
///
/// The slots hold a cheap placeholder until their result comes, and which
/// came is kept beside them, so that the vector is handed over as it is (an
/// `Option` per slot cost a second pass over every result).
struct InOrder<R> {
    slots: Vec<std::result::Result<R, TaskError>>,
    put: Vec<bool>,
    count: usize,
}

impl<R> InOrder<R> {
    fn new(len: usize) -> InOrder<R> {
        InOrder {
            slots: (0..len).map(|_| Err(TaskError::Interrupted)).collect(),
            put: vec![false; len],
            count: 0,
        }
    }

    #[inline]
    fn put(&mut self, i: usize, r: std::result::Result<R, TaskError>) {
        if let (Some(slot), Some(put)) = (self.slots.get_mut(i), self.put.get_mut(i)) {
            *slot = r;
            self.count += usize::from(!*put);
            *put = true;
        }
    }

    fn finish(mut self) -> Vec<std::result::Result<R, TaskError>> {
        if self.count < self.slots.len() {
            for (slot, _) in self.slots.iter_mut().zip(&self.put).filter(|(_, p)| !**p) {
                *slot = Err(TaskError::Failed {
                    reason: "internal: no result was recorded".into(),
                });
            }
        }
        self.slots
    }
}

/// The default chunk size (see the module documentation).
fn default_chunk(items: usize, workers: usize) -> usize {
    items.div_ceil(4 * workers.max(1)).clamp(1, MAX_CHUNK)
}

/// The largest default chunk: bounds the size of one task frame.
const MAX_CHUNK: usize = 4096;
