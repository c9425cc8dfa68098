//! The pool's state, lent to one `map` at a time.
//!
//! A `MutexGuard` would do for threads, but it cannot move to another thread,
//! and a [`MapUnordered`](super::MapUnordered) that holds one could be neither
//! a `Send` iterator nor a stream polled from a multi-threaded runtime. So the
//! state is *taken out* for the map's lifetime and put back when it ends:
//! threads wait on a condvar, tasks register a waker (an async `map` must not
//! block its runtime's thread while another map runs on it).

use super::run::Inner;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Where the state sits when no map holds it.
pub(super) struct Slot {
    shelf: Mutex<Shelf>,
    returned: Condvar,
}

struct Shelf {
    inner: Option<Inner>,
    waiting: Vec<Waker>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.lock().inner {
            Some(inner) => inner.fmt(f),
            None => f.write_str("(lent to a map)"),
        }
    }
}

impl Slot {
    pub(super) fn new(inner: Inner) -> Slot {
        Slot {
            shelf: Mutex::new(Shelf {
                inner: Some(inner),
                waiting: Vec::new(),
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, once no one else holds it (blocking the thread meanwhile).
    pub(super) fn lease(&self) -> Lease<'_> {
        let mut shelf = self.lock();
        loop {
            if let Some(inner) = shelf.inner.take() {
                return Lease {
                    slot: self,
                    inner: Some(inner),
                };
            }
            shelf = self.returned.wait(shelf).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The state if it is free now; otherwise the task is woken when it is
    /// put back.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn poll_lease(&self, cx: &mut Context<'_>) -> Poll<Lease<'_>> {
        let mut shelf = self.lock();
        match shelf.inner.take() {
            Some(inner) => Poll::Ready(Lease {
                slot: self,
                inner: Some(inner),
            }),
            None => {
                if !shelf.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    shelf.waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// The pool's state, held by one map (or one pool operation) until dropped.
pub(super) struct Lease<'a> {
    slot: &'a Slot,
    inner: Option<Inner>,
}

impl Deref for Lease<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.inner
            .as_ref()
            .expect("a lease holds the state until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.inner
            .as_mut()
            .expect("a lease holds the state until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut shelf = self.slot.lock();
        shelf.inner = self.inner.take();
        let waiting = std::mem::take(&mut shelf.waiting);
        drop(shelf);
        self.slot.returned.notify_all();
        waiting.into_iter().for_each(Waker::wake);
    }
}
