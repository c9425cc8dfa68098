//! A map on tokio (feature `tokio`): [`MapUnordered`] as a `Stream`, and
//! [`Pool::map_async`].
//!
//! The loop is the iterator's, one turn at a time without blocking; when no
//! worker has news, the workers' sockets and pidfds go into one epoll set of
//! their own, whose descriptor (readable while any member is) is what tokio
//! waits on, together with a timer for the nearest task deadline. The set is
//! made anew each time the map goes idle, since workers come and go.

use super::{MapUnordered, Turn};
use crate::pool::CallOptions;
use crate::pool::{InOrder, Pool, TaskError, worker};
use crate::sys::reactor::Registered;
use crate::sys::watch::Watcher;
use crate::{Error, Result};
use futures_core::Stream;
use serde::{Serialize, de::DeserializeOwned};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::Interest;

/// A map's wait on the reactor.
pub(in crate::pool) struct Waiting {
    set: Registered,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<R: DeserializeOwned + 'static> MapUnordered<'_, R> {
    /// The set of what this map waits on now: each worker's socket (and
    /// room to write, while it has tasks to send) and its pidfd.
    fn watch(&self, wake: Option<Instant>) -> std::io::Result<Waiting> {
        let set = Watcher::new()?;
        for (key, w) in self.inner.slots.iter().flatten().enumerate() {
            set.add_with(&w.sock, key as u64, !w.out.is_empty())?;
            if let Some(fd) = w.handle.child().pidfd() {
                set.add_with(fd, key as u64, false)?;
            }
        }
        Ok(Waiting {
            set: Registered::new(set.into_fd(), Interest::READABLE)?,
            timer: wake.map(|at| Box::pin(tokio::time::sleep_until(at.into()))),
        })
    }
}

/// `(index in the input, result)` as each item finishes, like the iterator
/// (feature `tokio`; the stream is `Send`). Poll it inside a tokio runtime; a
/// [`PoolBuilder::task_timeout`](crate::PoolBuilder::task_timeout) needs its
/// timer. Dropping the stream early abandons the rest of the map, as for the
/// iterator.
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl<R: DeserializeOwned + 'static> Stream for MapUnordered<'_, R> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.pop_ready() {
                return Poll::Ready(Some(item));
            }
            if this.run.done() {
                return Poll::Ready(None);
            }
            let wake = match this.step(false) {
                Turn::Moved => {
                    this.waiting = None;
                    continue;
                }
                Turn::Idle(wake) => wake,
            };
            let waiting = match this.watch(wake) {
                Ok(w) => this.waiting.insert(w),
                Err(e) => {
                    // Without a set to wait on, the map cannot go on here.
                    this.waiting = None;
                    this.abandon(&format!("cannot wait for the workers on the reactor: {e}"));
                    continue;
                }
            };
            if let Poll::Ready(ready) = waiting.set.get().poll_read_ready(cx) {
                if let Ok(mut guard) = ready {
                    guard.clear_ready();
                }
                continue;
            }
            if let Some(timer) = waiting.timer.as_mut()
                && timer.as_mut().poll(cx).is_ready()
            {
                continue;
            }
            return Poll::Pending;
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.run.left().unwrap_or(0);
        (left, Some(left))
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
impl Pool {
    /// [`Pool::map`] without blocking a thread (feature `tokio`): `f` over
    /// every item, results in input order, each item with its own `Result`.
    ///
    /// The items are encoded at the call; the map starts when the future is
    /// first polled and no other map holds the pool (maps run one after the
    /// other; waiting for the pool does not block the runtime's thread).
    /// Dropping the future abandons the map like dropping a
    /// [`MapUnordered`]: the workers running its items are killed and
    /// replaced. Starting workers (at the first map, or to replace one) is
    /// done in place.
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = brood::Pool::new(2)?;
    /// let out = pool.map_async(square, 1..=4).await?;
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 4, 9, 16]);
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> impl Future<Output = Result<Vec<std::result::Result<R, TaskError>>>> + Send + '_
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let started = self.map_unordered_async(f, items);
        async move {
            let mut map = started.await?;
            let mut out = InOrder::new(map.run.left().unwrap_or(0));
            while let Some((i, r)) =
                std::future::poll_fn(|cx| Pin::new(&mut map).poll_next(cx)).await
            {
                out.put(i, r);
            }
            Ok(out.finish())
        }
    }

    /// [`Pool::map_unordered`] for async code (feature `tokio`): waits for
    /// the pool without blocking, then gives the map, to use as a `Stream`
    /// (or, on a thread of its own, as the iterator).
    ///
    /// ```
    /// # brood::init();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use futures_core::Stream;
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let pool = brood::Pool::new(2)?;
    /// let mut map = pool.map_unordered_async(double, [10, 20, 30]).await?;
    /// let mut got = Vec::new();
    /// while let Some((i, r)) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut map).poll_next(cx)).await {
    ///     got.push((i, r.unwrap()));
    /// }
    /// got.sort();
    /// assert_eq!(got, [(0, 20), (1, 40), (2, 60)]);
    /// # Ok::<(), brood::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn map_unordered_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> impl Future<Output = Result<MapUnordered<'_, R>>> + Send + '_
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let run = worker::fn_ref(f)
            .map_err(Error::Crossing)
            .map(|func| self.with(CallOptions::new()).eager(func, items));
        async move {
            let run = run?;
            let lease = std::future::poll_fn(|cx| self.core.inner.poll_lease(cx)).await;
            MapUnordered::new(lease, &self.core.cfg, run)
        }
    }
}
