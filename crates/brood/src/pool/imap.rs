//! The iterators of a lazy map: [`ImapUnordered`] (results as they finish)
//! and [`Imap`] (in input order).

use super::TaskError;
use super::map::MapUnordered;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;

/// The results of [`Pool::imap_unordered`](super::Pool::imap_unordered), as
/// they finish: `(index in the input, result)`. Holds the pool for its
/// lifetime; dropping it early abandons the rest (the workers running some
/// are killed and replaced).
#[derive(Debug)]
pub struct ImapUnordered<'a, R>(pub(super) MapUnordered<'a, R>);

impl<R> ImapUnordered<'_, R> {
    /// Whether Ctrl-C ended the call early (see
    /// [`Error::Interrupted`](crate::Error::Interrupted)): the iterator then
    /// ends without the remaining results.
    pub fn interrupted(&self) -> bool {
        self.0.interrupted()
    }
}

impl<R: DeserializeOwned + 'static> Iterator for ImapUnordered<'_, R> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// The results of [`Pool::imap`](super::Pool::imap), in input order. Holds
/// the pool for its lifetime; dropping it early abandons the rest.
#[derive(Debug)]
pub struct Imap<'a, R> {
    inner: MapUnordered<'a, R>,
    /// Results that came before the one to yield next: slot `k` is item
    /// `next + k`.
    early: VecDeque<Option<std::result::Result<R, TaskError>>>,
    next: usize,
}

impl<'a, R> Imap<'a, R> {
    /// Whether Ctrl-C ended the call early (see
    /// [`Error::Interrupted`](crate::Error::Interrupted)): the iterator then
    /// ends without the remaining results.
    pub fn interrupted(&self) -> bool {
        self.inner.interrupted()
    }

    pub(super) fn new(inner: ImapUnordered<'a, R>) -> Imap<'a, R> {
        Imap {
            inner: inner.0,
            early: VecDeque::new(),
            next: 0,
        }
    }
}

impl<R: DeserializeOwned + 'static> Iterator for Imap<'_, R> {
    type Item = std::result::Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(Some(_)) = self.early.front() {
                self.next += 1;
                return self.early.pop_front().flatten();
            }
            // Never more than the map's window: items are pulled only while
            // the oldest one without a result is within it.
            let (idx, r) = self.inner.next()?;
            let k = idx - self.next;
            if self.early.len() <= k {
                self.early.resize_with(k + 1, || None);
            }
            self.early[k] = Some(r);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lo, hi) = self.inner.size_hint();
        let held = self.early.iter().flatten().count();
        (lo + held, hi.map(|h| h + held))
    }
}
