//! [`Finished`]: the results that came back and wait to be yielded.
//!
//! A worker sends the results of consecutive items in one `Values` frame
//! (see `batch.rs`); the pool keeps that frame's bytes as they came, in one
//! arena, with one entry per run of consecutive items — not a copy and a
//! queue entry per result, which for tiny items were most of what the pool
//! did with them. A panic, a failure or a single `Value` is an entry of its
//! own, and so is a result that came in a `memfd`, kept mapped (not
//! copied) until it is yielded.

use super::TaskError;
use crate::sys::shm::Region;
use crate::wire::frame;
use std::collections::VecDeque;
use std::ops::Range;

/// One waiting entry.
enum Entry {
    /// Items `first..first + left` have their results one after the other
    /// in the arena from `at` on, each `[u32 len][bytes]`.
    Run {
        first: usize,
        left: usize,
        at: usize,
    },
    /// One item's outcome: its bytes in the arena, or why there are none
    /// (boxed: the rare case stays out of the common entry's size).
    One(usize, Result<Range<usize>, Box<TaskError>>),
    /// One item's result, in a mapping of its own.
    Mapped(usize, Box<Region>),
}

/// A result's bytes, owned: a copy, or the mapping they came in.
pub(super) enum Kept {
    Bytes(Vec<u8>),
    Mapped(Box<Region>),
}

impl std::ops::Deref for Kept {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Kept::Bytes(b) => b,
            Kept::Mapped(r) => r.bytes(),
        }
    }
}

/// Results waiting to be yielded, in the order they came.
#[derive(Default)]
pub(super) struct Finished {
    entries: VecDeque<Entry>,
    /// The result bytes of the entries; emptied whenever they are.
    arena: Vec<u8>,
    len: usize,
}

impl Finished {
    pub(super) fn new() -> Finished {
        Finished::default()
    }

    /// Results waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One item's outcome (its value's bytes are copied in).
    pub(super) fn push_one(&mut self, idx: usize, outcome: Result<&[u8], TaskError>) {
        let kept = outcome.map(|bytes| self.keep(bytes)).map_err(Box::new);
        self.entries.push_back(Entry::One(idx, kept));
        self.len += 1;
    }

    /// One item's result, mapped.
    pub(super) fn push_mapped(&mut self, idx: usize, region: Region) {
        self.entries.push_back(Entry::Mapped(idx, Box::new(region)));
        self.len += 1;
    }

    /// The results of items `first..first + count`, in `bytes` (`count`
    /// items of a `Values` frame, checked by the caller).
    #[inline]
    pub(super) fn push_run(&mut self, first: usize, count: usize, bytes: &[u8]) {
        if count == 0 {
            return;
        }
        let at = self.keep(bytes).start;
        self.entries.push_back(Entry::Run {
            first,
            left: count,
            at,
        });
        self.len += count;
    }

    #[inline]
    fn keep(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        start..self.arena.len()
    }

    /// The oldest result: its item and its bytes (or why there are none),
    /// handed to `take` while they are borrowed.
    #[inline]
    pub(super) fn pop<T>(
        &mut self,
        take: impl FnOnce(usize, Result<&[u8], TaskError>) -> T,
    ) -> Option<T> {
        let entry = self.entries.front_mut()?;
        let (idx, outcome, done) = match entry {
            Entry::Run { first, left, at } => {
                let Some((value, _)) = frame::split_item(&self.arena[*at..]) else {
                    unreachable!("a run's items were checked when it came");
                };
                let idx = *first;
                *first += 1;
                *left -= 1;
                *at += 4 + value.len();
                (idx, Ok(value), *left == 0)
            }
            Entry::One(idx, Ok(range)) => (*idx, Ok(&self.arena[range.clone()]), true),
            Entry::Mapped(idx, region) => (*idx, Ok(region.bytes()), true),
            Entry::One(idx, Err(e)) => {
                let e = std::mem::replace(&mut **e, TaskError::Interrupted);
                (*idx, Err(e), true)
            }
        };
        let out = take(idx, outcome);
        if done {
            self.entries.pop_front();
        }
        self.len -= 1;
        if self.len == 0 {
            self.entries.clear();
            self.arena.clear();
        }
        Some(out)
    }

    /// The oldest result, its bytes owned: a mapped one is handed over as
    /// it is, not copied.
    pub(super) fn pop_owned(&mut self) -> Option<(usize, Result<Kept, TaskError>)> {
        if let Some(Entry::Mapped(..)) = self.entries.front() {
            let Some(Entry::Mapped(idx, region)) = self.entries.pop_front() else {
                unreachable!("just seen");
            };
            self.len -= 1;
            if self.len == 0 {
                self.clear();
            }
            return Some((idx, Ok(Kept::Mapped(region))));
        }
        self.pop(|idx, outcome| (idx, outcome.map(|b| Kept::Bytes(b.to_vec()))))
    }

    /// Hands every waiting result to `take`, oldest first (a run's items in
    /// one loop); how many there were.
    pub(super) fn drain(&mut self, mut take: impl FnMut(usize, Result<&[u8], TaskError>)) -> usize {
        let n = self.len;
        for entry in self.entries.drain(..) {
            match entry {
                Entry::Run { first, left, at } => {
                    let mut bytes = &self.arena[at..];
                    for idx in first..first + left {
                        let Some((value, rest)) = frame::split_item(bytes) else {
                            unreachable!("a run's items were checked when it came");
                        };
                        take(idx, Ok(value));
                        bytes = rest;
                    }
                }
                Entry::One(idx, Ok(range)) => take(idx, Ok(&self.arena[range])),
                Entry::Mapped(idx, region) => take(idx, Ok(region.bytes())),
                Entry::One(idx, Err(e)) => take(idx, Err(*e)),
            }
        }
        self.arena.clear();
        self.len = 0;
        n
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.arena.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_single_outcomes_come_out_in_order() {
        let mut f = Finished::new();
        let mut values = Vec::new();
        for v in [b"a".as_slice(), b"bc", b""] {
            frame::append_item(&mut values, v);
        }
        f.push_run(10, 3, &values);
        f.push_one(
            4,
            Err(TaskError::Failed {
                reason: "no".into(),
            }),
        );
        f.push_one(5, Ok(b"xyz"));
        assert_eq!(f.len(), 5);
        let mut got = Vec::new();
        while let Some(x) = f.pop(|i, r| (i, r.map(<[u8]>::to_vec))) {
            got.push(x);
        }
        assert_eq!(
            got,
            [
                (10, Ok(b"a".to_vec())),
                (11, Ok(b"bc".to_vec())),
                (12, Ok(Vec::new())),
                (
                    4,
                    Err(TaskError::Failed {
                        reason: "no".into()
                    })
                ),
                (5, Ok(b"xyz".to_vec())),
            ]
        );
        assert!(f.is_empty() && f.arena.is_empty());
    }
}
