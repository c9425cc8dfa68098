//! Chunks: many items of one function in one message, run on a local pool
//! as one map.
//!
//! One task per message costs a broker round trip per item; a chunk carries
//! the build and the function once and the items' arguments after them, and
//! runs on the receiving pool as a local `map` does (its items spread over
//! the workers in the pool's own chunks), so that a tiny function costs
//! about what it costs on one machine.
//!
//! A chunk: `bdC2`, the postcard head ([`Head`]: build, function, count),
//! then each argument as `[varint (length << 1)][bytes]`.
//!
//! Its outcomes come back in the items' order (see `outcomes.rs`).
//!
//! The lengths are LEB128 varints (one byte below 128), not fixed words:
//! a broker's cost grows with the bytes it stores and moves, and for small
//! items the framing was most of them (11 of 14 bytes an item for a map
//! of `u64`s).

use super::SharedData;
use super::outcomes::{Outcomes, failed_outcomes};
use super::varint;
use super::withdraw::Withdraw;
use super::{BuildId, RemoteError, receive_func};
use crate::pool::calls::PoolCall;
use crate::pool::map::MapUnordered;
use crate::pool::shared::Sharing;
use crate::pool::{Pool, TaskError, TaskHandle, shared, state, worker};
use crate::sys::image::{FnRef, PortableRef};
use crate::wire::frame;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

const CHUNK_MAGIC: [u8; 4] = *b"bdC2";

/// How often a one-item chunk's wait looks whether it was withdrawn.
const WITHDRAW_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// What comes before a chunk's arguments.
#[derive(Serialize, Deserialize)]
struct Head {
    build: BuildId,
    func: PortableRef,
    count: u32,
    /// The shared data its arguments name, by id (see [`SharedData`]).
    shares: Vec<u64>,
}

/// Builds the bytes of a chunk: one function, many arguments, for
/// [`PoolCall::map_encoded`] in any process of the same build.
///
/// ```
/// # brood::init();
/// use brood::remote::{ChunkEncoder, decode_results};
/// fn inc(x: u64) -> u64 { x + 1 }
/// let mut chunk = ChunkEncoder::new(inc)?;
/// for x in 0..100 {
///     chunk.push(&x)?;
/// }
/// let bytes = chunk.finish();
///
/// // Elsewhere, the same build:
/// let pool = brood::Pool::new(2)?;
/// let outcomes = pool.with(brood::CallOptions::new()).map_encoded(&bytes, None)?;
/// assert_eq!(decode_results::<u64>(&outcomes, 100)?[99], Ok(100));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ChunkEncoder<A> {
    head: Head,
    args: Vec<u8>,
    /// The regions behind `head.shares`.
    named: Vec<Sharing>,
    _a: PhantomData<fn(A)>,
}

impl<A> std::fmt::Debug for ChunkEncoder<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkEncoder")
            .field("items", &self.head.count)
            .field("bytes", &self.args.len())
            .finish()
    }
}

impl<A: Serialize + 'static> ChunkEncoder<A> {
    /// A chunk of `f`'s items.
    pub fn new<R>(f: fn(A) -> R) -> Result<ChunkEncoder<A>, RemoteError>
    where
        A: DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        ChunkEncoder::of(worker::fn_ref(f))
    }

    /// A chunk of `f`'s items, `f` taking the worker's state (see
    /// [`Pool::map_with`](crate::Pool::map_with)).
    pub fn new_with<S, R>(f: fn(&S, A) -> R) -> Result<ChunkEncoder<A>, RemoteError>
    where
        S: 'static,
        A: DeserializeOwned,
        R: Serialize + DeserializeOwned + 'static,
    {
        ChunkEncoder::of(state::task_ref(f))
    }

    fn of(
        func: Result<FnRef, crate::sys::image::CrossingError>,
    ) -> Result<ChunkEncoder<A>, RemoteError> {
        let func = func.map_err(|e| RemoteError::Crossing(e.to_string()))?;
        Ok(ChunkEncoder {
            head: Head {
                build: BuildId::current()?,
                func: func.portable(),
                count: 0,
                shares: Vec::new(),
            },
            args: Vec::new(),
            named: Vec::new(),
            _a: PhantomData,
        })
    }

    /// Adds an item; one that cannot be encoded is refused and the chunk
    /// is unchanged. A [`SharedSlice`](crate::SharedSlice) in it crosses by
    /// id: its bytes go to the receiver another way, once (see
    /// [`ChunkEncoder::shared`] and [`SharedData`]).
    pub fn push(&mut self, arg: &A) -> Result<(), RemoteError> {
        let start = varint::begin(&mut self.args);
        let (encoded, named) = shared::crossing(|| {
            self.args.truncate(start + 1);
            frame::encode_value(&mut self.args, arg)
        });
        match encoded {
            Err(e) => {
                self.args.truncate(start);
                Err(RemoteError::Encode(frame::encode_error(&e)))
            }
            Ok(()) => {
                varint::end(&mut self.args, start, 0);
                self.head.count += 1;
                // (Almost always none: the loop's drop was a call an item.)
                if named.is_empty() {
                    return Ok(());
                }
                for s in named {
                    if !self.head.shares.contains(&s.id) {
                        self.head.shares.push(s.id);
                        self.named.push(s);
                    }
                }
                Ok(())
            }
        }
    }

    /// The shared data the items so far name: each `SharedSlice`'s id and
    /// bytes, for the receiver's [`SharedData`] of that id.
    pub fn shared(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.named.iter().map(|s| (s.id, s.region.bytes()))
    }

    /// Items so far.
    pub fn len(&self) -> usize {
        self.head.count as usize
    }

    /// Whether it has no item.
    pub fn is_empty(&self) -> bool {
        self.head.count == 0
    }

    /// Bytes of the arguments so far (the chunk is a few dozen more).
    pub fn size(&self) -> usize {
        self.args.len()
    }

    /// The chunk's bytes.
    pub fn finish(self) -> Vec<u8> {
        let mut out = CHUNK_MAGIC.to_vec();
        // A Vec takes any postcard value; the head holds bytes and numbers.
        let _ = postcard::to_io(&self.head, &mut out);
        out.extend_from_slice(&self.args);
        out
    }
}

fn malformed(cause: String) -> RemoteError {
    RemoteError::Malformed {
        what: "chunk",
        cause,
    }
}

/// The head of a chunk, and the bytes of its arguments.
fn head(chunk: &[u8]) -> Result<(Head, &[u8]), RemoteError> {
    let body = chunk
        .strip_prefix(&CHUNK_MAGIC)
        .ok_or_else(|| malformed("it does not start with the chunk magic".into()))?;
    postcard::take_from_bytes(body).map_err(|e| malformed(e.to_string()))
}

/// The head and the arguments of a chunk, checked: every argument is
/// whole, and nothing follows the last.
fn open(chunk: &[u8]) -> Result<(Head, Args<'_>), RemoteError> {
    let (head, args) = head(chunk)?;
    let mut rest = args;
    for i in 0..head.count {
        rest = varint::split(rest)
            .map(|(_, _, more)| more)
            .ok_or_else(|| malformed(format!("item {i} is cut short")))?;
    }
    if !rest.is_empty() {
        return Err(malformed("bytes after the last item".into()));
    }
    let count = head.count as usize;
    Ok((head, Args { rest: args, count }))
}

/// The arguments of a chunk [`open`] checked, one by one (no list of them
/// is made: for tiny items that list was a visible share of a chunk's run).
#[derive(Clone)]
struct Args<'a> {
    rest: &'a [u8],
    count: usize,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (_, arg, more) = varint::split(self.rest)?;
        self.rest = more;
        self.count -= 1;
        Some(arg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count, Some(self.count))
    }
}

impl ExactSizeIterator for Args<'_> {}

/// How many items a chunk holds (also for one of another build).
///
/// ```
/// use brood::remote::{ChunkEncoder, chunk_len};
/// fn inc(x: u8) -> u8 { x + 1 }
/// let mut c = ChunkEncoder::new(inc)?;
/// c.push(&1)?;
/// c.push(&2)?;
/// assert_eq!(chunk_len(&c.finish())?, 2);
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
pub fn chunk_len(chunk: &[u8]) -> Result<usize, RemoteError> {
    Ok(open(chunk)?.1.count)
}

/// The ids of the shared data a chunk's items name: each must be given to
/// [`PoolCall::map_encoded_shared`] as a [`SharedData`].
///
/// ```
/// # brood::init();
/// use brood::remote::{ChunkEncoder, chunk_shares};
/// fn total(v: brood::SharedSlice<u8>) -> u64 { v.iter().map(|&b| u64::from(b)).sum() }
/// let data = brood::SharedSlice::from_slice(&[1u8, 2, 3])?;
/// let mut c = ChunkEncoder::new(total)?;
/// c.push(&data)?;
/// let ids: Vec<u64> = c.shared().map(|(id, _)| id).collect();
/// assert_eq!(chunk_shares(&c.finish())?, ids);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn chunk_shares(chunk: &[u8]) -> Result<Vec<u64>, RemoteError> {
    // The head alone: an agent asks before every chunk it runs, and reading
    // every argument's length twice cost a pass over the chunk.
    Ok(head(chunk)?.0.shares)
}

/// Each item of a chunk as a chunk of its own (a chunk whose agents kept
/// dying is split, so that the item that kills them fails alone).
///
/// ```
/// use brood::remote::{ChunkEncoder, chunk_len, split_chunk};
/// fn inc(x: u8) -> u8 { x + 1 }
/// let mut c = ChunkEncoder::new(inc)?;
/// c.push(&1)?;
/// c.push(&2)?;
/// let parts = split_chunk(&c.finish())?;
/// assert_eq!(parts.len(), 2);
/// assert_eq!(chunk_len(&parts[1])?, 1);
/// # Ok::<(), brood::remote::RemoteError>(())
/// ```
pub fn split_chunk(chunk: &[u8]) -> Result<Vec<Vec<u8>>, RemoteError> {
    let (head, args) = open(chunk)?;
    Ok(args
        .map(|arg| {
            let mut out = CHUNK_MAGIC.to_vec();
            let one = Head {
                build: head.build.clone(),
                func: head.func,
                count: 1,
                shares: head.shares.clone(),
            };
            let _ = postcard::to_io(&one, &mut out);
            let start = varint::begin(&mut out);
            out.extend_from_slice(arg);
            varint::end(&mut out, start, 0);
            out
        })
        .collect())
}

impl PoolCall<'_> {
    /// Runs a chunk (from [`ChunkEncoder`], in this or another process of
    /// the same build) on the pool's workers as one map with this call's
    /// options, and returns the outcomes' bytes, for [`decode_results`]. A
    /// chunk of another build has every item answered with a
    /// [`TaskError::Failed`] naming both builds, never run. `withdraw`, when
    /// fired, ends it early: the items without a result then fail with
    /// [`TaskError::Interrupted`].
    ///
    /// The outer error: the pool is closed, or the bytes are not a chunk.
    pub fn map_encoded(self, chunk: &[u8], withdraw: Option<&Withdraw>) -> crate::Result<Vec<u8>> {
        self.map_encoded_shared(chunk, withdraw, &[])
    }

    /// [`PoolCall::map_encoded`] for a chunk whose items name shared data
    /// ([`chunk_shares`]): `shared` holds it. An item whose data is missing
    /// fails, saying so.
    ///
    /// ```
    /// # brood::init();
    /// use brood::SharedSlice;
    /// use brood::remote::{ChunkEncoder, SharedData, decode_results};
    /// fn total((v, k): (SharedSlice<u32>, u32)) -> u32 { v.iter().sum::<u32>() * k }
    ///
    /// let data = SharedSlice::from_slice(&[1u32, 2, 3])?;
    /// let mut chunk = ChunkEncoder::new(total)?;
    /// for k in 1..=3 {
    ///     chunk.push(&(data.clone(), k))?;
    /// }
    /// let sent: Vec<(u64, Vec<u8>)> = chunk.shared().map(|(id, b)| (id, b.to_vec())).collect();
    /// let bytes = chunk.finish();
    ///
    /// // Elsewhere: the data comes its own way, once, then the chunks run.
    /// let shared = sent
    ///     .iter()
    ///     .map(|(id, b)| SharedData::new(*id, b))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let pool = brood::Pool::new(2)?;
    /// let out = pool.with(brood::CallOptions::new()).map_encoded_shared(&bytes, None, &shared)?;
    /// assert_eq!(decode_results::<u32>(&out, 3)?, [Ok(6), Ok(12), Ok(18)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_encoded_shared(
        self,
        chunk: &[u8],
        withdraw: Option<&Withdraw>,
        shared: &[SharedData],
    ) -> crate::Result<Vec<u8>> {
        let (head, args) = open(chunk).map_err(unreadable)?;
        if args.count == 1
            && let Some(arg) = args.clone().next()
        {
            // One item: a submitted task, so that one-item chunks given from
            // several threads run side by side (a map holds the whole pool).
            return Ok(self.submit_opened(head, arg, withdraw, shared)?.wait());
        }
        let outcomes = Outcomes::new(args.count);
        let func = match receive_func(head.build, &head.func) {
            Ok(func) => func,
            Err(e) => {
                return Ok(outcomes.fill(&TaskError::Failed {
                    reason: e.to_string(),
                }));
            }
        };
        if withdraw.is_some_and(Withdraw::fired) {
            return Ok(outcomes.fill(&TaskError::Interrupted));
        }
        let named = named_in(&head.shares, shared);
        let bytes = args.rest.len();
        let run = self.eager_encoded(func, args, bytes, &named);
        let pool = self.pool();
        let mut map: MapUnordered<'_, ()> = MapUnordered::new(pool.lock(), &pool.core.cfg, run)?;
        if let Some(w) = withdraw {
            map.wake_on(w.fd());
        }
        map.kick();
        let mut outcomes = outcomes;
        loop {
            map.drain_outcomes(|i, outcome| outcomes.put(i, outcome.as_ref().map(|b| *b)));
            if map.finished() || map.interrupted() {
                break;
            }
            if withdraw.is_some_and(Withdraw::fired) {
                map.cancel("the chunk was withdrawn");
                break;
            }
            map.turn();
        }
        Ok(outcomes.fill(&TaskError::Interrupted))
    }
}

/// The outcomes' bytes of a one-item chunk.
fn one_outcome(outcome: Result<Vec<u8>, TaskError>) -> Vec<u8> {
    let mut outcomes = Outcomes::new(1);
    match outcome {
        Ok(bytes) => outcomes.put(0, Ok(&bytes)),
        Err(e) => outcomes.put(0, Err(&e)),
    }
    outcomes.fill(&TaskError::Interrupted)
}

/// A one-item chunk running as a submitted task
/// ([`PoolCall::submit_chunk`]): its outcomes' bytes, as
/// [`PoolCall::map_encoded`] makes them, by `.await`. Dropping it does not
/// cancel the task.
#[must_use = "a submitted chunk's outcomes come by awaiting it"]
pub struct SubmittedChunk<'p> {
    pool: &'p Pool,
    withdraw: Option<&'p Withdraw>,
    state: Submitted,
}

enum Submitted {
    Running {
        handle: TaskHandle<()>,
        asked: bool,
    },
    /// Answered before it ran (another build): its outcomes.
    Answered(Vec<u8>),
}

impl std::fmt::Debug for SubmittedChunk<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmittedChunk")
            .field("answered", &matches!(self.state, Submitted::Answered(_)))
            .finish()
    }
}

impl SubmittedChunk<'_> {
    /// Has the worker killed if the chunk was withdrawn and that was not
    /// asked yet.
    fn look(pool: &Pool, withdraw: Option<&Withdraw>, handle: &TaskHandle<()>, asked: &mut bool) {
        if !*asked && withdraw.is_some_and(Withdraw::fired) {
            pool.withdraw_submitted(handle);
            *asked = true;
        }
    }

    /// The outcomes' bytes once the task's outcome is in.
    fn outcomes(asked: bool, outcome: Result<Vec<u8>, TaskError>) -> Vec<u8> {
        if asked {
            failed_outcomes(1, &TaskError::Interrupted)
        } else {
            one_outcome(outcome)
        }
    }

    /// The outcomes, waited for on this thread, which looks for a
    /// withdrawal every [`WITHDRAW_POLL`].
    fn wait(self) -> Vec<u8> {
        match self.state {
            Submitted::Answered(bytes) => bytes,
            Submitted::Running { handle, mut asked } => {
                let outcome = loop {
                    if let Some(o) = handle.wait_encoded_timeout(WITHDRAW_POLL) {
                        break o;
                    }
                    Self::look(self.pool, self.withdraw, &handle, &mut asked);
                };
                Self::outcomes(asked, outcome)
            }
        }
    }
}

impl Future for SubmittedChunk<'_> {
    type Output = Vec<u8>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        let (pool, withdraw) = (self.pool, self.withdraw);
        match &mut self.state {
            Submitted::Answered(bytes) => Poll::Ready(std::mem::take(bytes)),
            Submitted::Running { handle, asked } => {
                // Looked at whenever it is polled: a caller that withdraws
                // polls it again (its own timer, say) to have the worker
                // killed.
                Self::look(pool, withdraw, handle, asked);
                let asked = *asked;
                handle
                    .poll_encoded(cx)
                    .map(|outcome| Self::outcomes(asked, outcome))
            }
        }
    }
}

impl<'p> PoolCall<'p> {
    /// A one-item chunk as a submitted task, awaited rather than waited
    /// for: [`PoolCall::map_encoded_shared`]'s one-item case without a
    /// thread that blocks on it (an agent on an async runtime saves the
    /// hop to a blocking thread and back, a good part of a one-item
    /// chunk's cost). A chunk of another build is answered at once, never
    /// run, and so is one whose `withdraw` fired already; `withdraw`, once
    /// fired, has its worker killed the next time the future is polled, and
    /// its item fails with [`TaskError::Interrupted`].
    ///
    /// The outer error: the pool is closed, the bytes are not a chunk, or
    /// the chunk has more than one item.
    ///
    /// ```
    /// # brood::init();
    /// use brood::remote::{ChunkEncoder, decode_results};
    /// fn square(x: u64) -> u64 { x * x }
    /// let mut chunk = ChunkEncoder::new(square)?;
    /// chunk.push(&12)?;
    /// let bytes = chunk.finish();
    /// let pool = brood::Pool::new(1)?;
    /// let running = pool.with(brood::CallOptions::new()).submit_chunk(&bytes, None, &[])?;
    /// // Any executor: the task's end wakes it.
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let outcomes = rt.block_on(running);
    /// assert_eq!(decode_results::<u64>(&outcomes, 1)?, [Ok(144)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit_chunk(
        self,
        chunk: &[u8],
        withdraw: Option<&'p Withdraw>,
        shared: &[SharedData],
    ) -> crate::Result<SubmittedChunk<'p>> {
        let (head, mut args) = open(chunk).map_err(unreadable)?;
        match (args.count, args.next()) {
            (1, Some(arg)) => self.submit_opened(head, arg, withdraw, shared),
            (n, _) => Err(unreadable(malformed(format!(
                "it holds {n} items where one was expected"
            )))),
        }
    }

    /// The one item `arg` of a chunk with `head`, submitted (or answered
    /// at once: another build, or withdrawn already).
    fn submit_opened<'a>(
        self,
        head: Head,
        arg: &[u8],
        withdraw: Option<&'a Withdraw>,
        shared: &[SharedData],
    ) -> crate::Result<SubmittedChunk<'a>>
    where
        'p: 'a,
    {
        let pool = self.pool();
        let state = match receive_func(head.build, &head.func) {
            Err(e) => Submitted::Answered(failed_outcomes(
                1,
                &TaskError::Failed {
                    reason: e.to_string(),
                },
            )),
            Ok(_) if withdraw.is_some_and(Withdraw::fired) => {
                Submitted::Answered(failed_outcomes(1, &TaskError::Interrupted))
            }
            Ok(func) => Submitted::Running {
                handle: self.enqueue_encoded(func, arg.to_vec(), named_in(&head.shares, shared))?,
                asked: false,
            },
        };
        Ok(SubmittedChunk {
            pool,
            withdraw,
            state,
        })
    }
}

/// A chunk it cannot read, as the outer error of a call.
fn unreadable(e: RemoteError) -> crate::Error {
    crate::Error::io("reading a chunk", std::io::Error::other(e))
}

/// The shared data of `shared` that a chunk whose head names `shares` needs.
fn named_in(shares: &[u64], shared: &[SharedData]) -> Vec<Sharing> {
    shared
        .iter()
        .filter(|d| shares.contains(&d.0.id))
        .map(|d| d.0.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(x: u64) -> u64 {
        x + 1
    }

    #[test]
    fn a_chunk_opens_to_its_arguments() {
        let mut chunk = ChunkEncoder::new(inc).unwrap();
        let xs = [0u64, 1, 300, u64::MAX];
        for x in xs {
            chunk.push(&x).unwrap();
        }
        let bytes = chunk.finish();
        let (head, args) = open(&bytes).unwrap();
        assert_eq!(head.count, 4);
        assert_eq!(args.len(), 4);
        let back: Vec<u64> = args.map(|a| frame::decode_value(a).unwrap()).collect();
        assert_eq!(back, xs);
        // Cut short, or with bytes after the last item: refused whole.
        assert!(open(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(open(&longer).is_err());
        let parts = split_chunk(&bytes).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(chunk_len(&parts[3]).unwrap(), 1);
    }
}
