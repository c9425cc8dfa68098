//! [`CallOptions`]: what one call of a [`Pool`](super::Pool) — a `map`, an
//! `imap`, a `submit` — asks for besides the pool's settings.

use std::sync::Arc;
use std::time::Duration;

/// How far a call has come, as given to a
/// [progress callback](CallOptions::progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapProgress {
    /// Items with a result so far.
    pub done: usize,
    /// Of those, how many failed.
    pub failed: usize,
    /// All items, once known (a lazy input's length is known at its end).
    pub total: Option<usize>,
}

impl MapProgress {
    /// `done` items with a result, `failed` of them failed, of `total` (for
    /// a pool that runs elsewhere and reports through
    /// [`CallOptions::report`]).
    #[inline]
    pub fn new(done: usize, failed: usize, total: Option<usize>) -> MapProgress {
        MapProgress {
            done,
            failed,
            total,
        }
    }
}

/// What a [`CallOptions`] asks, read by a pool that runs elsewhere (the
/// remote seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CallSettings {
    /// [`CallOptions::timeout`].
    pub timeout: Option<Duration>,
    /// [`CallOptions::soft_timeout`].
    pub soft_timeout: Option<Duration>,
    /// [`CallOptions::chunk_size`].
    pub chunk: Option<usize>,
}

type Callback = Arc<dyn Fn(MapProgress) + Send + Sync>;

/// Options of one call, given with [`Pool::with`](super::Pool::with): a
/// timeout for its items (instead of the pool's
/// [`task_timeout`](super::PoolBuilder::task_timeout)), a soft timeout
/// before it, a chunk size, a progress callback.
///
/// ```
/// # brood::init();
/// use brood::{CallOptions, Pool, TaskError};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let pool = Pool::new(2)?;
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&seen);
/// let opts = CallOptions::new()
///     .timeout(Duration::from_millis(500))
///     .progress(move |p| { counter.store(p.done, Ordering::Relaxed); });
/// let out = pool.with(opts).map(nap, [1, 60_000])?;
/// assert_eq!(out[0], Ok(1));
/// assert!(matches!(out[1], Err(TaskError::Timeout { .. })));
/// assert_eq!(seen.load(Ordering::Relaxed), 2);
/// # Ok::<(), brood::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct CallOptions {
    pub(super) timeout: Option<Duration>,
    pub(super) soft_timeout: Option<Duration>,
    pub(super) chunk: Option<usize>,
    pub(super) progress: Option<Callback>,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("soft_timeout", &self.soft_timeout)
            .field("chunk", &self.chunk)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl CallOptions {
    /// No options: the pool's settings.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// An item that runs longer fails with
    /// [`TaskError::Timeout`](super::TaskError::Timeout), its worker killed
    /// and replaced (as the pool's `task_timeout`, for this call only).
    /// Counted from when the item started (the workers send each result of
    /// such a call at once, so the pool knows when the next one began), and
    /// across runs: an item that runs again because its result died with its
    /// worker keeps its first start, so the timeout holds whatever the
    /// workers do.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Once an item has run this long, the task is asked to stop:
    /// [`task_cancelled`](crate::task_cancelled) turns true in the worker.
    /// A task that checks it can return early with what it has; the hard
    /// [`timeout`](CallOptions::timeout), if given (and longer), still kills
    /// a task that does not.
    pub fn soft_timeout(mut self, soft: Duration) -> CallOptions {
        self.soft_timeout = Some(soft);
        self
    }

    /// What these options ask (besides the progress callback).
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = brood::CallOptions::new().timeout(Duration::from_secs(2)).chunk_size(8);
    /// let s = opts.settings();
    /// assert_eq!((s.timeout, s.soft_timeout, s.chunk), (Some(Duration::from_secs(2)), None, Some(8)));
    /// ```
    pub fn settings(&self) -> CallSettings {
        CallSettings {
            timeout: self.timeout,
            soft_timeout: self.soft_timeout,
            chunk: self.chunk,
        }
    }

    /// Calls the progress callback, if there is one, with `p` (for a pool
    /// that runs elsewhere).
    #[inline]
    pub fn report(&self, p: MapProgress) {
        if let Some(f) = &self.progress {
            f(p);
        }
    }

    /// Items per chunk for this call (see
    /// [`PoolBuilder::chunk_size`](super::PoolBuilder::chunk_size)).
    pub fn chunk_size(mut self, n: usize) -> CallOptions {
        self.chunk = (n > 0).then_some(n);
        self
    }

    /// Calls `f` on the caller's thread each time an item's result is taken
    /// (by `map` as it collects them, by an iterator as it yields them).
    /// Not for `submit`.
    pub fn progress(mut self, f: impl Fn(MapProgress) + Send + Sync + 'static) -> CallOptions {
        self.progress = Some(Arc::new(f));
        self
    }

    /// A progress bar on the terminal (stderr), from `indicatif` (feature
    /// `indicatif`): a bar when the number of items is known, a counter
    /// otherwise; finished when the last item is in.
    ///
    /// ```
    /// # brood::init();
    /// fn inc(x: u32) -> u32 { x + 1 }
    /// let pool = brood::Pool::new(2)?;
    /// let out = pool.with(brood::CallOptions::new().progress_bar()).map(inc, 0..100)?;
    /// assert_eq!(out.len(), 100);
    /// # Ok::<(), brood::Error>(())
    /// ```
    #[cfg(feature = "indicatif")]
    #[cfg_attr(docsrs, doc(cfg(feature = "indicatif")))]
    pub fn progress_bar(self) -> CallOptions {
        let bar = std::sync::Mutex::new(None::<indicatif::ProgressBar>);
        self.progress(move |p: MapProgress| {
            let mut bar = bar.lock().unwrap_or_else(|e| e.into_inner());
            let b = bar.get_or_insert_with(|| match p.total {
                Some(n) => indicatif::ProgressBar::new(n as u64),
                None => indicatif::ProgressBar::new_spinner(),
            });
            if let Some(n) = p.total {
                b.set_length(n as u64);
            }
            b.set_position(p.done as u64);
            if p.failed > 0 {
                b.set_message(format!("{} failed", p.failed));
            }
            if p.total == Some(p.done) {
                b.finish();
            }
        })
    }
}
