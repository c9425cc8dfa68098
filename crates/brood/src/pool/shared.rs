//! [`SharedSlice`]: read-only data that crosses to pool workers (and back)
//! as shared memory, not as bytes through their sockets.
//!
//! A `SharedSlice` is a sealed `memfd` mapped read-only (`sys::shm::Region`).
//! As part of a task's argument or result it serializes to a handle — an id
//! and a length — while the crossing code sends the descriptor beside the
//! frames, once per worker (`SCM_RIGHTS`, in a `Share` frame that precedes
//! the first task, or result, that names it). The receiver maps it once and
//! keeps it while the sender still holds it, so a second `map` over the same
//! data sends only handles.
//!
//! Serializing one anywhere else (to a file, to JSON) is an error: the handle
//! means nothing outside its pool.

use super::ready::Kept;
use crate::sys::shm::{Region, RegionWriter};
use crate::sys::socket::MAX_FDS;
use crate::wire::frame::{self, FrameKind};
use bytemuck::Pod;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// A region, as it is shared: with the id that names it on both sides.
#[derive(Clone)]
pub(super) struct Sharing {
    pub(super) id: u64,
    pub(super) region: Arc<Region>,
}

/// Regions received, by id (a worker's, or one map's results').
pub(super) type Inbox = HashMap<u64, Arc<Region>>;

/// A result as it arrives: its bytes and the shared data it may name.
pub(super) type Raw = std::result::Result<(Kept, Inbox), super::TaskError>;

thread_local! {
    /// While an argument or a result is encoded for crossing: the regions it
    /// names.
    static OUTBOX: RefCell<Option<Vec<Sharing>>> = const { RefCell::new(None) };
    /// While one is decoded: the regions the receiver has.
    static INBOX: RefCell<Option<Inbox>> = const { RefCell::new(None) };
}

/// Why a `SharedSlice` refuses to be encoded outside `collecting`.
const OUTSIDE: &str = "a SharedSlice crosses only in a pool task's argument or result, or in the argument of a Process started with StartMethod::Fork (data every task needs goes in each item: a worker maps it once, later items send only its handle)";

/// Encodes a value for crossing with `encode` (which must start afresh each
/// time it is called): first as plain bytes, which is all that almost every
/// value is; only if that met a `SharedSlice`, once more, collecting the
/// regions it names. (Collecting every time cost a visible share of a map of
/// tiny items.)
#[inline]
pub(super) fn crossing<T, E>(
    mut encode: impl FnMut() -> Result<T, E>,
) -> (Result<T, E>, Vec<Sharing>) {
    frame::forget_refusal();
    let first = encode();
    if first.is_ok() || frame::refusal() != Some(OUTSIDE) {
        return (first, Vec::new());
    }
    frame::forget_refusal();
    collecting(encode)
}

/// Descriptors to attach to an outgoing byte buffer: at each offset, the
/// regions whose descriptors go with the byte there (the start of a `Share`
/// frame).
pub(super) type Attached = VecDeque<(usize, Vec<Arc<Region>>)>;

/// A `Share` frame's head: regions the receiver may let go of, and the new
/// ones (id, byte length), whose descriptors come attached in that order.
#[derive(Serialize, Deserialize)]
struct ShareHead {
    forget: Vec<u64>,
    new: Vec<(u64, u64)>,
}

/// Appends `Share` frames for `new` (at most [`MAX_FDS`] regions each) and
/// `forget` to `out`, recording their descriptors in `attach`.
pub(super) fn push_share(
    out: &mut Vec<u8>,
    attach: &mut Attached,
    mut forget: Vec<u64>,
    new: &[Sharing],
) {
    let mut groups: Vec<&[Sharing]> = new.chunks(MAX_FDS).collect();
    if groups.is_empty() {
        groups.push(&[]);
    }
    for group in groups {
        let head = ShareHead {
            forget: std::mem::take(&mut forget),
            new: group
                .iter()
                .map(|s| (s.id, s.region.bytes().len() as u64))
                .collect(),
        };
        let at = out.len();
        let _ = frame::append_frame(out, FrameKind::Share, &head);
        if !group.is_empty() {
            attach.push_back((at, group.iter().map(|s| Arc::clone(&s.region)).collect()));
        }
    }
}

/// Takes in a `Share` frame: forgets what it says, maps the new regions
/// from `fds` (the descriptors received, in order). A region that cannot be
/// taken (a malformed frame, a descriptor that did not arrive because our
/// limit on open files was reached, one that is not sealed) is left out:
/// the items that name it then fail to decode, saying it did not arrive.
pub(super) fn receive_share(payload: &[u8], fds: &mut VecDeque<OwnedFd>, inbox: &mut Inbox) {
    let Ok(head) = postcard::from_bytes::<ShareHead>(payload) else {
        return;
    };
    for id in head.forget {
        inbox.remove(&id);
    }
    for (id, len) in head.new {
        let (Some(fd), Ok(len)) = (fds.pop_front(), usize::try_from(len)) else {
            return;
        };
        if let Ok(region) = Region::open(fd, len) {
            inbox.insert(id, Arc::new(region));
        }
    }
}

/// The region a `Mapped` frame's `payload` announces, from the descriptors
/// received (`fds`); or why the result cannot be read: its descriptor did
/// not arrive (our limit on open files was reached), or is not a sealed
/// file of that size.
pub(super) fn receive_mapped(
    payload: &[u8],
    fds: &mut VecDeque<OwnedFd>,
) -> Result<Region, String> {
    let len = <[u8; 8]>::try_from(payload)
        .ok()
        .and_then(|b| usize::try_from(u64::from_le_bytes(b)).ok());
    let (Some(len), Some(fd)) = (len, fds.pop_front()) else {
        return Err(
            "its result, sent as shared memory, did not arrive (the pool's process may be out of \
             file descriptors)"
                .into(),
        );
    };
    Region::open(fd, len).map_err(|e| format!("cannot map its result of {len} bytes: {e}"))
}

/// Sends what it can of `buf[*pos..]`, each descriptor of `attach` with its
/// byte; true once all of it is sent, false if the socket is full (a
/// blocking socket is never full). `EPIPE` and other errors are returned.
pub(super) fn send_out(
    sock: BorrowedFd<'_>,
    buf: &[u8],
    pos: &mut usize,
    attach: &mut Attached,
) -> io::Result<bool> {
    while *pos < buf.len() {
        let next = attach.front().map(|(at, _)| *at);
        let sent = if next == Some(*pos) {
            let end = attach.get(1).map_or(buf.len(), |(at, _)| *at);
            let regions = &attach.front().expect("checked").1;
            let fds: Vec<BorrowedFd<'_>> = regions.iter().map(|r| r.fd()).collect();
            crate::sys::socket::send_some_with_fds(sock, &buf[*pos..end], &fds)
        } else {
            let end = next.unwrap_or(buf.len());
            rustix::net::send(sock, &buf[*pos..end], rustix::net::SendFlags::NOSIGNAL)
                .map_err(io::Error::from)
        };
        match sent {
            Ok(n) => {
                if next == Some(*pos) && n > 0 {
                    attach.pop_front();
                }
                *pos += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads what is there into `buf` (up to `max` bytes), and the descriptors
/// that came with it into `fds`: bytes read, 0 at end of file.
pub(super) fn recv_into(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fds: &mut VecDeque<OwnedFd>,
    max: usize,
) -> io::Result<usize> {
    thread_local! {
        /// Where a read lands first: zeroed once, not per read (growing
        /// `buf` by `max` zeroes cost more than the read of a batch of
        /// small results itself).
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        if scratch.len() < max {
            scratch.resize(max, 0);
        }
        let (n, received) = crate::sys::socket::recv_with_fds(sock.as_fd(), &mut scratch[..max])?;
        buf.extend_from_slice(&scratch[..n]);
        fds.extend(received);
        Ok(n)
    })
}

/// Runs `encode` (which serializes one value for crossing) and returns the
/// regions that value names, besides `encode`'s own value.
pub(super) fn collecting<T>(encode: impl FnOnce() -> T) -> (T, Vec<Sharing>) {
    let outer = OUTBOX.with(|o| o.replace(Some(Vec::new())));
    let value = encode();
    let named = OUTBOX.with(|o| o.replace(outer)).unwrap_or_default();
    (value, named)
}

/// A task's result decoded from its bytes, with `inbox` as the regions its
/// `SharedSlice`s may name; a result that does not decode fails its item.
#[inline]
pub(super) fn decode_result<R: serde::de::DeserializeOwned + 'static>(
    bytes: &[u8],
    inbox: &mut Inbox,
) -> Result<R, super::TaskError> {
    resolving(inbox, || frame::decode_value::<R>(bytes)).map_err(|e| super::TaskError::Failed {
        reason: format!(
            "cannot decode the result as a {}: {e}",
            std::any::type_name::<R>()
        ),
    })
}

/// Runs `decode` with `inbox` as the regions its `SharedSlice`s may name.
#[inline]
pub(super) fn resolving<T>(inbox: &mut Inbox, decode: impl FnOnce() -> T) -> T {
    if inbox.is_empty() {
        // Nothing to lend (the common case: a cost per tiny item saved); a
        // handle then fails to decode just the same.
        return decode();
    }
    let lent = std::mem::take(inbox);
    let outer = INBOX.with(|i| i.replace(Some(lent)));
    let value = decode();
    *inbox = INBOX.with(|i| i.replace(outer)).unwrap_or_default();
    value
}

/// A read-only slice of `T` in shared memory: give it (a clone is a handle)
/// in a pool task's argument and every worker reads the same pages, with no
/// copy and no encoding; return one from a task and the pool's process maps
/// what the worker wrote.
///
/// `T` is plain old data ([`bytemuck::Pod`]: numbers, arrays of them,
/// `#[repr(C)]` structs of them). The memory is a sealed `memfd`: once built
/// it cannot change, so readers in any process may trust it.
///
/// **Where it crosses**: in a pool task's argument or result (every `map`,
/// `imap`, `submit` …; each worker maps it once, and while the pool's
/// process holds it later items send only its handle — so data every task
/// needs goes in each item), and in the argument of a
/// [`Process`](crate::Process) started with
/// [`StartMethod::Fork`](crate::StartMethod::Fork), whose child has the
/// mapping already. Anywhere else — a pool's
/// [initializer](crate::PoolBuilder::initializer) argument, a `Spawn` or
/// `ForkServer` `Process` argument, a file — it does not encode, and brood
/// refuses with [`Error::ArgumentEncode`](crate::Error::ArgumentEncode)
/// naming this rule before any child exists.
///
/// ```
/// # brood::init();
/// use brood::{Pool, SharedSlice};
/// use std::ops::Range;
///
/// fn sum((data, part): (SharedSlice<f64>, Range<usize>)) -> f64 {
///     data[part].iter().sum()
/// }
///
/// let data = SharedSlice::from_fn(1_000_000, |i| i as f64)?;
/// let parts = (0..4).map(|k| (data.clone(), k * 250_000..(k + 1) * 250_000));
/// let pool = Pool::new(2)?;
/// let total: f64 = pool.map(sum, parts)?.into_iter().map(Result::unwrap).sum();
/// assert_eq!(total, 999_999.0 * 1_000_000.0 / 2.0);
/// # Ok::<(), brood::Error>(())
/// ```
pub struct SharedSlice<T: Pod> {
    sharing: Sharing,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Clone for SharedSlice<T> {
    fn clone(&self) -> Self {
        SharedSlice {
            sharing: self.sharing.clone(),
            len: self.len,
            _t: PhantomData,
        }
    }
}

impl<T: Pod> std::fmt::Debug for SharedSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSlice")
            .field("type", &std::any::type_name::<T>())
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> SharedSlice<T> {
    /// A shared slice of `len` elements, each `f(index)`, written straight
    /// into the shared memory.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> crate::Result<SharedSlice<T>> {
        SharedSlice::build(len, |out| {
            for (i, x) in out.iter_mut().enumerate() {
                *x = f(i);
            }
        })
    }

    /// A shared copy of `data`.
    ///
    /// ```
    /// # brood::init();
    /// let s = brood::SharedSlice::from_slice(&[1u32, 2, 3])?;
    /// assert_eq!(&s[..], &[1, 2, 3]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn from_slice(data: &[T]) -> crate::Result<SharedSlice<T>> {
        SharedSlice::build(data.len(), |out| out.copy_from_slice(data))
    }

    /// A shared slice of `len` zeroed elements that `fill` writes in place
    /// (a task that returns a large result builds it so); sealed afterwards.
    ///
    /// ```
    /// # brood::init();
    /// let squares = brood::SharedSlice::<u64>::build(4, |out| {
    ///     for (i, x) in out.iter_mut().enumerate() { *x = (i * i) as u64 }
    /// })?;
    /// assert_eq!(squares.to_vec(), [0, 1, 4, 9]);
    /// # Ok::<(), brood::Error>(())
    /// ```
    pub fn build(len: usize, fill: impl FnOnce(&mut [T])) -> crate::Result<SharedSlice<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| too_big(len))?;
        let io = |step: &str, e| {
            crate::Error::io(format!("{step} for a SharedSlice of {bytes} bytes"), e)
        };
        let mut w = RegionWriter::new(bytes).map_err(|e| io("creating a memfd", e))?;
        fill(bytemuck::cast_slice_mut(w.bytes_mut()));
        let region = w.seal().map_err(|e| io("sealing the memfd", e))?;
        Ok(SharedSlice {
            sharing: Sharing {
                id: crate::sys::random::u64(),
                region: Arc::new(region),
            },
            len,
            _t: PhantomData,
        })
    }
}

fn too_big(len: usize) -> crate::Error {
    crate::Error::io(
        format!("a SharedSlice of {len} elements"),
        std::io::Error::from_raw_os_error(libc::EOVERFLOW),
    )
}

impl<T: Pod> std::ops::Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        let bytes = &self.sharing.region.bytes()[..self.len * std::mem::size_of::<T>()];
        // A mapping starts on a page boundary, so any `T` is aligned; the
        // length was checked when the slice was made or received.
        bytemuck::cast_slice(bytes)
    }
}

/// The handle a `SharedSlice` crosses as.
#[derive(Serialize, Deserialize)]
struct Handle {
    id: u64,
    len: u64,
}

impl<T: Pod> Serialize for SharedSlice<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let named = OUTBOX.with(|o| match o.borrow_mut().as_mut() {
            Some(out) => {
                if !out.iter().any(|x| x.id == self.sharing.id) {
                    out.push(self.sharing.clone());
                }
                true
            }
            None => false,
        });
        if !named {
            frame::refuse(OUTSIDE);
            return Err(S::Error::custom(OUTSIDE));
        }
        Handle {
            id: self.sharing.id,
            len: self.len as u64,
        }
        .serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for SharedSlice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let h = Handle::deserialize(d)?;
        let region = INBOX.with(|i| i.borrow().as_ref().and_then(|m| m.get(&h.id).cloned()));
        let Some(region) = region else {
            return Err(D::Error::custom(format!(
                "shared data {:#x} did not arrive (a SharedSlice crosses only in a pool task's \
                 argument or result)",
                h.id
            )));
        };
        let len = usize::try_from(h.len).map_err(|_| D::Error::custom("a SharedSlice too long"))?;
        if len
            .checked_mul(std::mem::size_of::<T>())
            .is_none_or(|b| b > region.bytes().len())
        {
            return Err(D::Error::custom(format!(
                "shared data {:#x} holds {} bytes, not {len} elements of {}",
                h.id,
                region.bytes().len(),
                std::any::type_name::<T>()
            )));
        }
        Ok(SharedSlice {
            sharing: Sharing { id: h.id, region },
            len,
            _t: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_slice_crosses_as_a_handle_and_only_where_it_can() {
        let s = SharedSlice::from_fn(10_000, |i| i as u32).unwrap();
        assert!(
            postcard::to_allocvec(&s).is_err(),
            "encoded outside a crossing"
        );
        let (bytes, named) = collecting(|| postcard::to_allocvec(&(s.clone(), s.clone())).unwrap());
        assert_eq!(named.len(), 1, "one region, named twice");
        assert!(
            bytes.len() < 32,
            "{} bytes: the data itself was encoded",
            bytes.len()
        );
        let mut inbox = Inbox::new();
        let lost = resolving(&mut inbox, || {
            postcard::from_bytes::<(SharedSlice<u32>, SharedSlice<u32>)>(&bytes)
        });
        assert!(lost.is_err());
        inbox.insert(named[0].id, Arc::clone(&named[0].region));
        let (a, b) = resolving(&mut inbox, || {
            postcard::from_bytes::<(SharedSlice<u32>, SharedSlice<u32>)>(&bytes)
        })
        .unwrap();
        assert_eq!((a[9_999], b.len()), (9_999, 10_000));
        assert_eq!(inbox.len(), 1, "the inbox is given back");
        // A handle longer than its region is refused.
        let (long, named) = collecting(|| {
            postcard::to_allocvec(&Handle {
                id: named[0].id,
                len: 10_001,
            })
            .unwrap()
        });
        assert!(named.is_empty());
        assert!(
            resolving(&mut inbox, || postcard::from_bytes::<SharedSlice<u32>>(
                &long
            ))
            .is_err()
        );
    }
}
