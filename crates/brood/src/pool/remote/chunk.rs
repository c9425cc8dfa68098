//! Chunks: many items of one function in one message, run on a local pool
//! as one map.
//!
//! One task per message costs a broker round trip per item; a chunk carries
//! the build and the function once and the items' arguments after them, and
//! runs on the receiving pool as a local `map` does (its items spread over
//! the workers in the pool's own chunks), so that a tiny function costs
//! about what it costs on one machine.
//!
//! A chunk: `bdC1`, the postcard head ([`Head`]: build, function, count),
//! then each argument as `[u32 little-endian length][bytes]`.
//!
//! Its outcomes, in the order the items finished: `bdR1`, then for each
//! item `[u32 index][u32 length][tag][bytes]`: tag 0, the value's bytes;
//! tag 1, a `WireError` (postcard). One buffer for the whole chunk, no
//! allocation per item.

use super::{BuildId, RemoteError, WireError, receive_func};
use crate::pool::calls::PoolCall;
use crate::pool::map::MapUnordered;
use crate::pool::{TaskError, shared, state, worker};
use crate::sys::image::{FnRef, PortableRef};
use crate::wire::frame;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

const CHUNK_MAGIC: [u8; 4] = *b"bdC1";
const RESULTS_MAGIC: [u8; 4] = *b"bdR1";

/// The tag of an outcome whose bytes are the value's.
const TAG_VALUE: u8 = 0;
/// The tag of an outcome whose bytes are a `WireError`.
const TAG_ERROR: u8 = 1;

/// What comes before a chunk's arguments.
#[derive(Serialize, Deserialize)]
struct Head {
    build: BuildId,
    func: PortableRef,
    count: u32,
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
            },
            args: Vec::new(),
            _a: PhantomData,
        })
    }

    /// Adds an item; one that cannot be encoded (or holds a `SharedSlice`,
    /// which does not cross machines) is refused and the chunk is unchanged.
    pub fn push(&mut self, arg: &A) -> Result<(), RemoteError> {
        let start = frame::begin_item(&mut self.args);
        let (encoded, named) = shared::crossing(|| {
            self.args.truncate(start + 4);
            frame::encode_value(&mut self.args, arg)
        });
        let refused = match encoded {
            Err(e) => Some(frame::encode_error(&e)),
            Ok(()) if !named.is_empty() => {
                Some("a SharedSlice does not cross machines; send its contents".to_string())
            }
            Ok(()) => frame::end_item(&mut self.args, start)
                .is_none()
                .then(|| "the argument is larger than 4 GiB".to_string()),
        };
        match refused {
            Some(why) => {
                self.args.truncate(start);
                Err(RemoteError::Encode(why))
            }
            None => {
                self.head.count += 1;
                Ok(())
            }
        }
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

/// The head and the arguments of a chunk.
fn open(chunk: &[u8]) -> Result<(Head, Vec<&[u8]>), RemoteError> {
    let malformed = |cause: String| RemoteError::Malformed {
        what: "chunk",
        cause,
    };
    let body = chunk
        .strip_prefix(&CHUNK_MAGIC)
        .ok_or_else(|| malformed("it does not start with the chunk magic".into()))?;
    let (head, mut rest): (Head, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| malformed(e.to_string()))?;
    let mut args = Vec::with_capacity(head.count as usize);
    for i in 0..head.count {
        let (arg, more) =
            frame::split_item(rest).ok_or_else(|| malformed(format!("item {i} is cut short")))?;
        args.push(arg);
        rest = more;
    }
    if !rest.is_empty() {
        return Err(malformed("bytes after the last item".into()));
    }
    Ok((head, args))
}

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
    Ok(open(chunk)?.1.len())
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
        .into_iter()
        .map(|arg| {
            let mut out = CHUNK_MAGIC.to_vec();
            let one = Head {
                build: head.build.clone(),
                func: head.func,
                count: 1,
            };
            let _ = postcard::to_io(&one, &mut out);
            let start = frame::begin_item(&mut out);
            out.extend_from_slice(arg);
            // It fitted in the chunk, so its length does.
            let _ = frame::end_item(&mut out, start);
            out
        })
        .collect())
}

/// Ctrl-C, watched for as long as this lives, as a local pool call watches
/// for it: SIGINT with its default disposition is caught meanwhile (and
/// kills the program again once the last watch is gone); a program that
/// handles SIGINT itself keeps it, and this never fires.
///
/// ```
/// let watch = brood::remote::CtrlC::watch()?;
/// assert!(!watch.fired());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct CtrlC(crate::sys::interrupt::InterruptWatch);

impl std::fmt::Debug for CtrlC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlC")
            .field("fired", &self.fired())
            .finish()
    }
}

impl CtrlC {
    /// Starts watching.
    pub fn watch() -> std::io::Result<CtrlC> {
        crate::sys::interrupt::InterruptWatch::new().map(CtrlC)
    }

    /// Whether Ctrl-C came since the watch began.
    pub fn fired(&self) -> bool {
        self.0.fired()
    }
}

/// Withdraws a chunk that [`PoolCall::map_encoded`] is running, from
/// another thread: the workers running its items are killed, and the items
/// without a result fail with [`TaskError::Interrupted`].
///
/// ```
/// let stop = brood::remote::Withdraw::new()?;
/// stop.fire();
/// assert!(stop.fired());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Withdraw {
    fired: AtomicBool,
    pipe: (OwnedFd, OwnedFd),
}

impl Withdraw {
    /// A withdrawal not fired yet.
    pub fn new() -> std::io::Result<Withdraw> {
        Ok(Withdraw {
            fired: AtomicBool::new(false),
            pipe: crate::fdlimit::with_room(crate::sys::pipe::wake_pipe)?,
        })
    }

    /// Withdraws the chunk (at once if it runs, before it starts if not).
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let _ = crate::sys::pipe::write_some(self.pipe.1.as_fd(), &[1]);
    }

    /// Whether [`Withdraw::fire`] was called.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// The outcomes of a chunk being written, one buffer for all.
struct Outcomes {
    buf: Vec<u8>,
    answered: Vec<bool>,
}

impl Outcomes {
    fn new(count: usize) -> Outcomes {
        let mut buf = RESULTS_MAGIC.to_vec();
        buf.reserve(12 * count);
        Outcomes {
            buf,
            answered: vec![false; count],
        }
    }

    fn put(&mut self, index: usize, outcome: Result<&[u8], &TaskError>) {
        let Some(seen) = self.answered.get_mut(index) else {
            return;
        };
        if std::mem::replace(seen, true) {
            return;
        }
        self.buf.extend_from_slice(&(index as u32).to_le_bytes());
        let start = frame::begin_item(&mut self.buf);
        match outcome {
            Ok(bytes) => {
                self.buf.push(TAG_VALUE);
                self.buf.extend_from_slice(bytes);
            }
            Err(e) => {
                self.buf.push(TAG_ERROR);
                // A Vec takes any postcard value; a WireError holds strings
                // and numbers.
                let _ = postcard::to_io(&WireError::from(e), &mut self.buf);
            }
        }
        if frame::end_item(&mut self.buf, start).is_none() {
            // Over 4 GiB: it goes as an error instead.
            self.buf.truncate(start - 4);
            self.answered[index] = false;
            let e = TaskError::Failed {
                reason: "the result is larger than 4 GiB".into(),
            };
            self.put(index, Err(&e));
        }
    }

    /// Every item not answered yet gets `e`.
    fn fill(mut self, e: &TaskError) -> Vec<u8> {
        for i in 0..self.answered.len() {
            self.put(i, Err(e));
        }
        self.buf
    }
}

/// The outcomes of a chunk, from the bytes [`PoolCall::map_encoded`] made of
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
    let malformed = |cause: String| RemoteError::Malformed {
        what: "chunk's outcomes",
        cause,
    };
    let mut rest = outcomes
        .strip_prefix(&RESULTS_MAGIC)
        .ok_or_else(|| malformed("they do not start with the outcomes magic".into()))?;
    let mut out: Vec<Option<Result<R, TaskError>>> =
        std::iter::repeat_with(|| None).take(count).collect();
    while !rest.is_empty() {
        let (index, more) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("an index is cut short".into()))?;
        let index = u32::from_le_bytes(*index) as usize;
        let (item, more) = frame::split_item(more)
            .ok_or_else(|| malformed(format!("item {index} is cut short")))?;
        rest = more;
        let Some(slot) = out.get_mut(index) else {
            return Err(malformed(format!("item {index} of {count}")));
        };
        *slot = Some(match item.split_first() {
            Some((&TAG_VALUE, bytes)) => {
                frame::decode_value::<R>(bytes).map_err(|e| TaskError::Failed {
                    reason: format!(
                        "cannot decode the result as a {}: {e}",
                        std::any::type_name::<R>()
                    ),
                })
            }
            Some((&TAG_ERROR, bytes)) => Err(postcard::from_bytes::<WireError>(bytes).map_or_else(
                |e| TaskError::Failed {
                    reason: format!("the outcome did not decode: {e}"),
                },
                TaskError::from,
            )),
            _ => Err(TaskError::Failed {
                reason: "the outcome has no tag".into(),
            }),
        });
    }
    Ok(out
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(TaskError::Failed {
                    reason: "the chunk's outcomes do not include it".into(),
                })
            })
        })
        .collect())
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
        let (head, args) = open(chunk)
            .map_err(|e| crate::Error::io("reading a chunk", std::io::Error::other(e)))?;
        let outcomes = Outcomes::new(args.len());
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
        if let [arg] = args[..] {
            // One item: a submitted task, so that one-item chunks given from
            // several threads run side by side (a map holds the whole pool).
            let mut outcomes = outcomes;
            let handle = self.enqueue_encoded(func, arg.to_vec())?;
            match handle.wait_encoded() {
                Ok(bytes) => outcomes.put(0, Ok(&bytes)),
                Err(e) => outcomes.put(0, Err(&e)),
            }
            return Ok(outcomes.fill(&TaskError::Interrupted));
        }
        let run = self.eager_encoded(func, args.iter().copied());
        let pool = self.pool();
        let mut map: MapUnordered<'_, ()> = MapUnordered::new(pool.lock(), &pool.core.cfg, run)?;
        if let Some(w) = withdraw {
            map.wake_on(w.pipe.0.as_fd());
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
