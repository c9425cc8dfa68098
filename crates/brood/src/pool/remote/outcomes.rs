//! A chunk's outcomes: written as the agent's workers answer
//! ([`Outcomes`]), read back by the driver ([`for_each_result`],
//! [`decode_results`]), counted ([`failures`]).
//!
//! Their bytes, in the items' order: `bdR2`, then for each item
//! `[varint (length << 1 | tag)][bytes]`: tag 0, the value's bytes; tag 1,
//! a `WireError` (postcard). One buffer for the whole chunk, no allocation
//! per item.

use super::varint;
use super::{RemoteError, WireError};
use crate::pool::TaskError;
use crate::wire::frame;
use serde::de::DeserializeOwned;

const RESULTS_MAGIC: [u8; 4] = *b"bdR2";

/// The tag of an outcome whose bytes are the value's.
const TAG_VALUE: u8 = 0;
/// The tag of an outcome whose bytes are a `WireError`.
const TAG_ERROR: u8 = 1;

/// The outcomes of a chunk being written: each as it comes, framed, into
/// one buffer; the buffer's runs of consecutive items put in the items'
/// order at the end. Workers answer their share of a chunk in order, so
/// there are few runs, and the end is a few copies (an index per item, and
/// the copy of each outcome it led to, cost a fifth of an agent's run).
pub(super) struct Outcomes {
    buf: Vec<u8>,
    /// Each run: its first item, where it starts in `buf`, how many items.
    runs: Vec<(usize, usize, usize)>,
    /// Which items have their outcome (a second one is dropped).
    seen: Vec<bool>,
    left: usize,
}

impl Outcomes {
    pub(super) fn new(count: usize) -> Outcomes {
        Outcomes {
            buf: Vec::with_capacity(RESULTS_MAGIC.len() + 4 * count),
            runs: Vec::new(),
            seen: vec![false; count],
            left: count,
        }
    }

    #[inline]
    pub(super) fn put(&mut self, index: usize, outcome: Result<&[u8], &TaskError>) {
        let Some(seen @ false) = self.seen.get_mut(index) else {
            return;
        };
        *seen = true;
        self.left -= 1;
        match self.runs.last_mut() {
            Some((first, _, n)) if *first + *n == index => *n += 1,
            _ => self.runs.push((index, self.buf.len(), 1)),
        }
        let start = varint::begin(&mut self.buf);
        let tag = match outcome {
            Ok(bytes) => {
                self.buf.extend_from_slice(bytes);
                TAG_VALUE
            }
            Err(e) => {
                // A Vec takes any postcard value; a WireError holds strings
                // and numbers.
                let _ = postcard::to_io(&WireError::from(e), &mut self.buf);
                TAG_ERROR
            }
        };
        varint::end(&mut self.buf, start, tag);
    }

    /// Every item not answered yet gets `e`; the outcomes' bytes.
    pub(super) fn fill(mut self, e: &TaskError) -> Vec<u8> {
        if self.left > 0 {
            for i in 0..self.seen.len() {
                if !self.seen[i] {
                    self.put(i, Err(e));
                }
            }
        }
        let mut out = Vec::with_capacity(RESULTS_MAGIC.len() + self.buf.len());
        out.extend_from_slice(&RESULTS_MAGIC);
        if let [(0, 0, _)] = self.runs[..] {
            // All in order: the buffer is the outcomes.
            out.append(&mut self.buf);
            return out;
        }
        // A run ends where the next one written starts.
        let ends = self.runs.iter().skip(1).map(|&(_, at, _)| at);
        let mut spans: Vec<(usize, usize, usize)> = self
            .runs
            .iter()
            .zip(ends.chain([self.buf.len()]))
            .map(|(&(first, at, _), end)| (first, at, end))
            .collect();
        spans.sort_unstable_by_key(|&(first, _, _)| first);
        for (_, at, end) in spans {
            out.extend_from_slice(&self.buf[at..end]);
        }
        out
    }
}

/// The outcomes of a chunk, from the bytes [`PoolCall::map_encoded`](crate::pool::calls::PoolCall::map_encoded) made of
/// them: each item's value, or why it has none, in the items' order. An
/// item whose outcome is missing or does not decode as an `R` is a
/// [`TaskError::Failed`] saying so.
///
/// ```
/// # brood::init();
/// use brood::remote::{ChunkEncoder, decode_results};
/// fn half(x: u32) -> u32 { assert!(x % 2 == 0, "odd"); x / 2 }
/// let mut chunk = ChunkEncoder::new(half)?;
/// for x in [2, 3, 4] {
///     chunk.push(&x)?;
/// }
/// let pool = brood::Pool::new(2)?;
/// let outcomes = pool.with(brood::CallOptions::new()).map_encoded(&chunk.finish(), None)?;
/// let out = decode_results::<u32>(&outcomes, 3)?;
/// assert_eq!(out[0], Ok(1));
/// assert!(matches!(out[1], Err(brood::TaskError::Panicked { .. })));
/// assert_eq!(out[2], Ok(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode_results<R: DeserializeOwned + 'static>(
    outcomes: &[u8],
    count: usize,
) -> Result<Vec<Result<R, TaskError>>, RemoteError> {
    let mut out = Vec::with_capacity(count);
    for_each_result(outcomes, count, |_, outcome| out.push(outcome))?;
    Ok(out)
}

/// [`decode_results`] without the list: each item's index in the chunk and
/// outcome, in the items' order, straight to `take` (a driver that puts
/// them where they belong makes and moves no list of its own). The bytes
/// are checked first: when they are malformed, `take` is not called.
///
/// ```
/// # brood::init();
/// use brood::remote::{ChunkEncoder, for_each_result};
/// fn inc(x: u64) -> u64 { x + 1 }
/// let mut chunk = ChunkEncoder::new(inc)?;
/// for x in 0..4 {
///     chunk.push(&x)?;
/// }
/// let pool = brood::Pool::new(2)?;
/// let outcomes = pool.with(brood::CallOptions::new()).map_encoded(&chunk.finish(), None)?;
/// let mut sum = 0;
/// for_each_result::<u64>(&outcomes, 4, |_, r| sum += r.unwrap())?;
/// assert_eq!(sum, 1 + 2 + 3 + 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn for_each_result<R: DeserializeOwned + 'static>(
    outcomes: &[u8],
    count: usize,
    mut take: impl FnMut(usize, Result<R, TaskError>),
) -> Result<(), RemoteError> {
    let malformed = |cause: String| RemoteError::Malformed {
        what: "chunk's outcomes",
        cause,
    };
    let body = outcomes
        .strip_prefix(&RESULTS_MAGIC)
        .ok_or_else(|| malformed("they do not start with the outcomes magic".into()))?;
    let mut rest = body;
    let mut present = 0;
    while !rest.is_empty() {
        if present == count {
            return Err(malformed(format!("more than {count} outcomes")));
        }
        rest = varint::split(rest)
            .map(|(_, _, more)| more)
            .ok_or_else(|| malformed(format!("item {present} is cut short")))?;
        present += 1;
    }
    let mut rest = body;
    for index in 0..count {
        let Some((v, bytes, more)) = varint::split(rest) else {
            take(
                index,
                Err(TaskError::Failed {
                    reason: "the chunk's outcomes do not include it".into(),
                }),
            );
            continue;
        };
        rest = more;
        take(
            index,
            if v & 1 == u64::from(TAG_VALUE) {
                frame::decode_value::<R>(bytes).map_err(|e| TaskError::Failed {
                    reason: format!(
                        "cannot decode the result as a {}: {e}",
                        std::any::type_name::<R>()
                    ),
                })
            } else {
                Err(postcard::from_bytes::<WireError>(bytes).map_or_else(
                    |e| TaskError::Failed {
                        reason: format!("the outcome did not decode: {e}"),
                    },
                    TaskError::from,
                ))
            },
        );
    }
    Ok(())
}

/// How many of a chunk's outcomes are failures, without decoding them (an
/// agent's count of what it answered).
///
/// ```
/// use brood::TaskError;
/// use brood::remote::{failed_outcomes, failures};
/// let why = TaskError::Failed { reason: "no".into() };
/// assert_eq!(failures(&failed_outcomes(3, &why))?, 3);
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
pub fn failures(outcomes: &[u8]) -> Result<usize, RemoteError> {
    let mut rest = outcomes
        .strip_prefix(&RESULTS_MAGIC)
        .ok_or_else(|| RemoteError::Malformed {
            what: "chunk's outcomes",
            cause: "they do not start with the outcomes magic".into(),
        })?;
    let mut failed = 0;
    while let Some((v, _, more)) = varint::split(rest) {
        failed += usize::from(v & 1 == u64::from(TAG_ERROR));
        rest = more;
    }
    if rest.is_empty() {
        Ok(failed)
    } else {
        Err(RemoteError::Malformed {
            what: "chunk's outcomes",
            cause: "an outcome is cut short".into(),
        })
    }
}

/// The outcomes of a chunk of `count` items that all failed with `e` (what
/// an agent sends back when it cannot run or answer a chunk), for
/// [`decode_results`].
///
/// ```
/// use brood::TaskError;
/// use brood::remote::{decode_results, failed_outcomes};
/// let why = TaskError::Failed { reason: "too big".into() };
/// assert_eq!(decode_results::<u8>(&failed_outcomes(2, &why), 2)?, [Err(why.clone()), Err(why)]);
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
pub fn failed_outcomes(count: usize, e: &TaskError) -> Vec<u8> {
    Outcomes::new(count).fill(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_come_back_in_item_order() {
        let mut o = Outcomes::new(4);
        let mut three = Vec::new();
        frame::encode_value(&mut three, &3u64).unwrap();
        let big = vec![b'x'; 5000];
        let mut long = Vec::new();
        frame::encode_value(&mut long, &String::from_utf8(big.clone()).unwrap()).unwrap();
        o.put(3, Ok(&three));
        o.put(0, Err(&TaskError::Interrupted));
        o.put(3, Err(&TaskError::Interrupted)); // a second outcome is dropped
        let bytes = o.fill(&TaskError::Failed {
            reason: "gone".into(),
        });
        assert_eq!(failures(&bytes).unwrap(), 3);
        let out = decode_results::<u64>(&bytes, 4).unwrap();
        assert_eq!(out[0], Err(TaskError::Interrupted));
        assert!(matches!(&out[1], Err(TaskError::Failed { reason }) if reason == "gone"));
        assert_eq!(out[3], Ok(3));
        // Fewer outcomes than items: the rest say so; more: malformed.
        assert!(decode_results::<u64>(&bytes, 5).unwrap()[4].is_err());
        assert!(decode_results::<u64>(&bytes, 3).is_err());
        let mut o = Outcomes::new(1);
        o.put(0, Ok(&long));
        let s = decode_results::<String>(&o.fill(&TaskError::Interrupted), 1).unwrap();
        assert_eq!(s[0].as_deref().unwrap().len(), 5000);
    }

    #[test]
    fn malformed_outcomes_hand_out_nothing() {
        let mut o = Outcomes::new(3);
        for i in 0..3u64 {
            let mut v = Vec::new();
            frame::encode_value(&mut v, &i).unwrap();
            o.put(i as usize, Ok(&v));
        }
        let bytes = o.fill(&TaskError::Interrupted);
        let mut seen = 0;
        // Cut short, more than asked for, no magic: an error, and no item.
        for (bad, count) in [
            (&bytes[..bytes.len() - 1], 3),
            (&bytes[..], 2),
            (&bytes[1..], 3),
        ] {
            assert!(for_each_result::<u64>(bad, count, |_, _| seen += 1).is_err());
        }
        assert_eq!(seen, 0);
        for_each_result::<u64>(&bytes, 3, |i, r| {
            assert_eq!(r, Ok(i as u64));
            seen += 1;
        })
        .unwrap();
        assert_eq!(seen, 3);
    }

    proptest::proptest! {
        /// Outcomes put in any order, some twice, some never: each item
        /// gets its first outcome, or the fill, in the items' order.
        #[test]
        fn any_order_comes_back_in_item_order(
            order in proptest::collection::vec((0usize..40, proptest::bool::ANY), 0..80),
            count in 1usize..40,
        ) {
            let mut o = Outcomes::new(count);
            let mut first: Vec<Option<Result<u64, TaskError>>> = vec![None; count];
            for (k, &(i, fails)) in order.iter().enumerate() {
                let i = i % count;
                let outcome = if fails {
                    Err(TaskError::Failed { reason: format!("item {i}, put {k}") })
                } else {
                    Ok(1000 * i as u64 + k as u64)
                };
                match &outcome {
                    Ok(v) => {
                        let mut bytes = Vec::new();
                        frame::encode_value(&mut bytes, v).unwrap();
                        o.put(i, Ok(&bytes));
                    }
                    Err(e) => o.put(i, Err(e)),
                }
                first[i].get_or_insert(outcome);
            }
            let bytes = o.fill(&TaskError::Interrupted);
            let back = decode_results::<u64>(&bytes, count).unwrap();
            let want: Vec<Result<u64, TaskError>> = first
                .into_iter()
                .map(|f| f.unwrap_or(Err(TaskError::Interrupted)))
                .collect();
            proptest::prop_assert_eq!(
                failures(&bytes).unwrap(),
                want.iter().filter(|r| r.is_err()).count()
            );
            proptest::prop_assert_eq!(back, want);
        }
    }
}
