//! Frames on byte streams: a [`Process`](crate::Process)'s argument and result
//! on pipes, a pool's tasks and results on its sockets.
//!
//! A frame is a 16-byte header — the magic `b"brd1"`, a kind byte, three zero
//! bytes, the payload length as a little-endian `u64` — followed by the payload.
//! The payload is `postcard` (a maintained, compact serde format), except for
//! `Vec<u8>` and `String` values, which travel as their raw bytes: serde encodes a
//! `Vec<u8>` one element at a time, which runs at a fraction of a pipe's speed,
//! and large byte buffers are exactly what people send (Python's pickle protocol 5
//! makes the same exception for buffers). Both sides know the value's type, so
//! the choice needs no flag on the wire.
//!
//! Reading never trusts the header: a wrong magic, a kind out of range, or a
//! payload that ends early or does not decode is an error, never a panic; and a
//! claimed length is only ever allocated as data actually arrives (beyond a first
//! [`PREALLOC`]), so a corrupt length cannot exhaust memory.

use crate::sys::pipe;
use serde::{Serialize, de::DeserializeOwned};
use std::any::Any;
use std::io;
use std::os::fd::BorrowedFd;

const MAGIC: [u8; 4] = *b"brd1";
pub(crate) const HEADER: usize = 16;
/// How much of a frame's claimed length is reserved before any of it arrived.
pub(crate) const PREALLOC: usize = 256 << 20;

/// What a frame holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum FrameKind {
    /// A value: an argument, or a function's result.
    Value = 1,
    /// The function panicked; the payload is a postcard
    /// [`PanicReport`](super::PanicReport).
    Panic = 2,
    /// The function could not be run or its result not sent (a bad request, an
    /// argument that did not decode); the payload is the reason as a postcard
    /// `String`.
    Failed = 3,
    /// Pool → worker: a postcard [`TaskHead`](super::TaskHead), then its items,
    /// each `[u32 len][bytes]`.
    Task = 4,
    /// Pool → worker: stop. (A forked worker inherits the pool's end of its
    /// siblings' sockets, so end-of-file alone cannot be relied on.)
    Quit = 5,
    /// Either way in a pool: shared data (`SharedSlice`) that the frames
    /// after it name — a postcard `ShareHead` (pool/shared.rs), with the
    /// descriptors attached to its first byte (`SCM_RIGHTS`).
    Share = 6,
    /// Worker → pool: the results of consecutive items, each `[u32
    /// len][postcard bytes]` as in a `Task` frame (one header per run of
    /// successes, not per result: for tiny items the header was most of
    /// what crossed).
    Values = 7,
    /// Worker → pool: one result too big to copy through the socket: its
    /// postcard bytes are in a sealed `memfd` attached to the frame's first
    /// byte (`SCM_RIGHTS`); the payload is their length, a `u64` (LE).
    Mapped = 8,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::Value),
            2 => Some(FrameKind::Panic),
            3 => Some(FrameKind::Failed),
            4 => Some(FrameKind::Task),
            5 => Some(FrameKind::Quit),
            6 => Some(FrameKind::Share),
            7 => Some(FrameKind::Values),
            8 => Some(FrameKind::Mapped),
            _ => None,
        }
    }
}

fn header(kind: FrameKind, len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&MAGIC);
    h[4] = kind as u8;
    h[8..].copy_from_slice(&(len as u64).to_le_bytes());
    h
}

/// The raw bytes of a value that travels unencoded (`Vec<u8>`, `String`).
fn raw_bytes<T: 'static>(value: &T) -> Option<&[u8]> {
    let any = value as &dyn Any;
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        return Some(v);
    }
    any.downcast_ref::<String>().map(String::as_bytes)
}

/// A `Value` frame encoded ahead of the write: a `Process` argument is
/// encoded once, before any child exists — an argument that cannot cross is
/// refused then — and these bytes are what is sent. A value that travels as
/// raw bytes (`Vec<u8>`, `String`) is borrowed, not copied.
pub(crate) enum Encoded<'a> {
    Raw(&'a [u8]),
    Frame(Vec<u8>),
}

/// Encodes `value` as a `Value` frame; the reason it cannot, in words.
pub(crate) fn encode_argument<T: Serialize + 'static>(value: &T) -> Result<Encoded<'_>, String> {
    if let Some(bytes) = raw_bytes(value) {
        return Ok(Encoded::Raw(bytes));
    }
    forget_refusal();
    frame_of(FrameKind::Value, value)
        .map(Encoded::Frame)
        .map_err(|e| encode_error(&e))
}

impl Encoded<'_> {
    /// Writes the frame to a blocking descriptor.
    pub(crate) fn write(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        match self {
            Encoded::Raw(bytes) => {
                grow_pipe(fd, bytes.len());
                pipe::write_all(fd, &header(FrameKind::Value, bytes.len()))?;
                pipe::write_all(fd, bytes)
            }
            Encoded::Frame(frame) => {
                grow_pipe(fd, frame.len());
                pipe::write_all(fd, frame)
            }
        }
    }
}

/// Encodes `value` and writes it as one frame to a blocking descriptor.
pub(crate) fn write_frame<T: Serialize + 'static>(
    fd: BorrowedFd<'_>,
    kind: FrameKind,
    value: &T,
) -> io::Result<()> {
    if let Some(bytes) = raw_bytes(value) {
        grow_pipe(fd, bytes.len());
        pipe::write_all(fd, &header(kind, bytes.len()))?;
        return pipe::write_all(fd, bytes);
    }
    // Small values are encoded on the stack: in a freshly forked child every
    // heap page written costs a copy-on-write fault.
    let mut small = [0u8; 512];
    if let Ok(used) = postcard::to_slice(value, &mut small[HEADER..]) {
        let len = used.len();
        small[..HEADER].copy_from_slice(&header(kind, len));
        return pipe::write_all(fd, &small[..HEADER + len]);
    }
    let buf = encode_frame(kind, value)?;
    grow_pipe(fd, buf.len());
    pipe::write_all(fd, &buf)
}

/// Above this a frame is worth a bigger pipe buffer.
const BIG: usize = 64 << 10;

/// A bigger kernel buffer means fewer wake-ups per megabyte; asked for only when
/// a frame is large, so that small values (the common case) pay no extra
/// system call. Either end of a pipe may set its size.
fn grow_pipe(fd: BorrowedFd<'_>, len: usize) {
    if len > BIG {
        pipe::set_pipe_size(fd, 1 << 20);
    }
}

thread_local! {
    /// Why a value refused to be encoded, in words postcard's error cannot
    /// carry (it keeps no message of a `Serialize` impl's own).
    static REFUSED: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Called by a `Serialize` impl that fails on purpose: `why` joins the error.
pub(crate) fn refuse(why: &'static str) {
    REFUSED.with(|r| r.set(Some(why)));
}

/// The refusal recorded since the last was taken or forgotten, if any.
#[inline]
pub(crate) fn refusal() -> Option<&'static str> {
    REFUSED.with(|r| r.get())
}

/// Forgets a refusal (the value was encoded after all, another way).
#[inline]
pub(crate) fn forget_refusal() {
    REFUSED.with(|r| r.set(None));
}

/// An encoding error in words, with the reason a value gave, if it gave one.
pub(crate) fn encode_error(e: &postcard::Error) -> String {
    match REFUSED.with(|r| r.take()) {
        Some(why) => format!("{e}: {why}"),
        None => e.to_string(),
    }
}

/// Encodes a postcard frame (header included) into one buffer, so small frames
/// cost one `write(2)`.
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    kind: FrameKind,
    value: &T,
) -> io::Result<Vec<u8>> {
    frame_of(kind, value).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot encode: {}", encode_error(&e)),
        )
    })
}

fn frame_of<T: Serialize + ?Sized>(kind: FrameKind, value: &T) -> postcard::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0u8; HEADER]);
    let mut buf = postcard::to_extend(value, buf)?;
    let len = buf.len() - HEADER;
    buf[..HEADER].copy_from_slice(&header(kind, len));
    Ok(buf)
}

/// Decodes a `Value` payload as a `T`.
pub(crate) fn decode<T: DeserializeOwned + 'static>(payload: Vec<u8>) -> Result<T, DecodeError> {
    use std::any::TypeId;
    if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() {
        let boxed: Box<dyn Any> = Box::new(payload);
        return boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| DecodeError::Internal);
    }
    if TypeId::of::<T>() == TypeId::of::<String>() {
        let s = String::from_utf8(payload).map_err(|e| DecodeError::NotUtf8(e.utf8_error()))?;
        let boxed: Box<dyn Any> = Box::new(s);
        return boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| DecodeError::Internal);
    }
    postcard::from_bytes(&payload).map_err(|cause| DecodeError::Postcard {
        type_name: std::any::type_name::<T>(),
        cause,
    })
}

/// Why a payload is not the value its receiver expects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("cannot decode a {type_name}: {cause}")]
    Postcard {
        type_name: &'static str,
        cause: postcard::Error,
    },
    #[error("string is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    #[error("internal: type mismatch")]
    Internal,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// A whole frame has arrived.
    Done,
    /// Nothing more to read right now (non-blocking descriptor).
    Pending,
    /// End of file before a whole frame.
    Eof,
}

/// Reads one frame, possibly across many non-blocking reads.
#[derive(Default)]
pub(crate) struct FrameReader {
    head: [u8; HEADER],
    head_len: usize,
    kind: Option<FrameKind>,
    len: usize,
    payload: Vec<u8>,
}

impl FrameReader {
    /// Reads what is available (all of it, on a blocking descriptor).
    pub(crate) fn feed(&mut self, fd: BorrowedFd<'_>) -> io::Result<Feed> {
        loop {
            if self.head_len < HEADER {
                let n = match pipe::read(fd, &mut self.head[self.head_len..]) {
                    Ok(0) => return Ok(Feed::Eof),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Feed::Pending),
                    Err(e) => return Err(e),
                };
                self.head_len += n;
                if self.head_len == HEADER {
                    self.parse_header()?;
                }
                continue;
            }
            let left = self.len - self.payload.len();
            if left == 0 {
                return Ok(Feed::Done);
            }
            if self.payload.capacity() == self.payload.len() {
                // Grow only as data arrives (see the module doc).
                self.payload
                    .reserve(left.min(PREALLOC.max(self.payload.len())));
            }
            match pipe::read_into_spare(fd, &mut self.payload, left) {
                Ok(0) => return Ok(Feed::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Feed::Pending),
                Err(e) => return Err(e),
            }
        }
    }

    fn parse_header(&mut self) -> io::Result<()> {
        let (kind, len) = parse_header(&self.head)?;
        self.kind = Some(kind);
        self.len = len;
        self.payload = Vec::with_capacity(self.len.min(PREALLOC));
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head_len == 0
    }

    /// The frame, once `feed` said `Done`.
    pub(crate) fn take(&mut self) -> Option<(FrameKind, Vec<u8>)> {
        let kind = self.kind?;
        if self.head_len < HEADER || self.payload.len() < self.len {
            return None;
        }
        let payload = std::mem::take(&mut self.payload);
        *self = FrameReader::default();
        Some((kind, payload))
    }
}

/// Reads one whole frame from a blocking descriptor.
/// Checks a header: the magic, a known kind, a possible length.
fn parse_header(head: &[u8; HEADER]) -> io::Result<(FrameKind, usize)> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if head[..4] != MAGIC {
        return Err(bad(format!(
            "not a brood frame (magic {:02x?})",
            &head[..4]
        )));
    }
    let kind = FrameKind::from_u8(head[4])
        .ok_or_else(|| bad(format!("unknown frame kind {}", head[4])))?;
    let len = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or_else(|| bad(format!("frame length {len} is impossible")))?;
    Ok((kind, len))
}

/// The first whole frame in `buf`: its kind, its payload, and how many bytes of
/// `buf` it took. `Ok(None)` while it is still incomplete; an error for a
/// header that is not a brood frame's.
pub(crate) fn split_frame(buf: &[u8]) -> io::Result<Option<(FrameKind, &[u8], usize)>> {
    let Some(head) = buf.first_chunk::<HEADER>() else {
        return Ok(None);
    };
    let (kind, len) = parse_header(head)?;
    Ok(buf
        .get(HEADER..HEADER + len)
        .map(|payload| (kind, payload, HEADER + len)))
}

/// Starts a frame of `kind` at the end of `buf` (its length is patched by
/// [`end_frame`]); returns where it starts. For building a frame in place,
/// without a buffer of its own per frame.
pub(crate) fn begin_frame(buf: &mut Vec<u8>, kind: FrameKind) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&header(kind, 0));
    start
}

/// Writes the payload length of the frame begun at `start`.
pub(crate) fn end_frame(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - HEADER) as u64;
    buf[start + 8..start + HEADER].copy_from_slice(&len.to_le_bytes());
}

/// Appends a whole frame of `kind` holding `value` (postcard) to `buf`. On an
/// encoding error `buf` is left as it was.
pub(crate) fn append_frame<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    kind: FrameKind,
    value: &T,
) -> Result<(), postcard::Error> {
    let start = begin_frame(buf, kind);
    match encode_onto(buf, value) {
        Ok(_) => {
            end_frame(buf, start);
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Appends `value`'s postcard encoding to `buf` (on an error, some bytes
/// may have been written: the caller truncates).
pub(crate) fn encode_onto<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(value, Append(buf))
}

/// [`encode_onto`], with plain numbers written directly (the same bytes;
/// see `wire::numbers`).
#[inline]
pub(crate) fn encode_value<T: Serialize + Any>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    if super::numbers::encode(buf, value) {
        return Ok(());
    }
    encode_onto(buf, value)
}

/// postcard's `from_bytes`, with plain numbers read directly (see
/// `wire::numbers`).
#[inline]
pub(crate) fn decode_value<T: DeserializeOwned + Any>(bytes: &[u8]) -> Result<T, postcard::Error> {
    match super::numbers::decode(bytes) {
        Some(v) => v,
        None => postcard::from_bytes(bytes),
    }
}

/// postcard's output straight onto the end of a borrowed `Vec`. Its own
/// `to_extend` goes through `Extend`, which copies every varint with a call
/// to `memmove`: for tiny pool items that was the largest single cost of a
/// map, in the pool and in the workers alike.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 16 {
            self.0.reserve(data.len());
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends one item of a task frame: `[u32 len][bytes]`.
#[inline]
pub(crate) fn append_item(buf: &mut Vec<u8>, item: &[u8]) {
    buf.extend_from_slice(&(item.len() as u32).to_le_bytes());
    buf.extend_from_slice(item);
}

/// Appends `value`'s postcard encoding as one `[u32 len][bytes]` item (on
/// an error `buf` is left as it was).
#[inline]
pub(crate) fn append_encoded_item<T: Serialize + Any>(
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), postcard::Error> {
    let start = begin_item(buf);
    let written = encode_value(buf, value).and_then(|()| {
        end_item(buf, start).ok_or_else(|| {
            refuse("it is larger than 4 GiB");
            postcard::Error::SerializeBufferFull
        })
    });
    if written.is_err() {
        buf.truncate(start);
    }
    written
}

/// Starts a `[u32 len][bytes]` item at the end of `buf`, its bytes to be
/// appended and its length written by [`end_item`]; where it starts.
#[inline]
pub(crate) fn begin_item(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    start
}

/// Writes the length of the item begun at `start`; `None` if it is larger
/// than 4 GiB (then nothing is written).
#[inline]
pub(crate) fn end_item(buf: &mut [u8], start: usize) -> Option<()> {
    let len = u32::try_from(buf.len() - start - 4).ok()?;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
}

/// One `[u32 len][bytes]` item off the front of `buf`.
#[inline]
pub(crate) fn split_item(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

pub(crate) fn read_frame(fd: BorrowedFd<'_>) -> io::Result<(FrameKind, Vec<u8>)> {
    let mut r = FrameReader::default();
    match r.feed(fd)? {
        Feed::Done => Ok(r.take().expect("a complete frame")),
        Feed::Eof => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            if r.is_empty() {
                "no frame (the writer closed first)"
            } else {
                "the frame was cut short"
            },
        )),
        Feed::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::pipe::pipe;
    use std::os::fd::AsFd;

    fn round_trip<
        T: Serialize + DeserializeOwned + 'static + std::fmt::Debug + PartialEq + Send,
    >(
        v: T,
    ) {
        let (r, w) = pipe().unwrap();
        let writer = std::thread::spawn(move || {
            write_frame(w.as_fd(), FrameKind::Value, &v).unwrap();
            v
        });
        let (kind, payload) = read_frame(r.as_fd()).unwrap();
        let v = writer.join().unwrap();
        assert_eq!(kind, FrameKind::Value);
        assert_eq!(decode::<T>(payload).unwrap(), v);
    }

    #[test]
    fn values_round_trip() {
        round_trip(42u64);
        round_trip((String::from("x"), vec![1i32, -2], Some(3.5f64)));
        round_trip(vec![7u8; 3 << 20]);
        round_trip(String::from("héllo"));
        round_trip(Vec::<u8>::new());
    }

    #[test]
    fn corrupt_frames_are_errors() {
        for bytes in [
            b"nope............".to_vec(),
            [&MAGIC[..], &[9u8; 12]].concat(),
            [&header(FrameKind::Value, 10)[..], b"abc"].concat(),
            [&header(FrameKind::Value, usize::MAX >> 1)[..], b"abc"].concat(),
        ] {
            let (r, w) = pipe().unwrap();
            pipe::write_all(w.as_fd(), &bytes).unwrap();
            drop(w);
            assert!(read_frame(r.as_fd()).is_err());
        }
        // A frame whose payload does not decode as the type asked for.
        assert!(decode::<(u64, String)>(vec![0xff; 3]).is_err());
        assert!(decode::<String>(vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn frames_built_in_a_buffer_split_back() {
        let mut buf = Vec::new();
        append_frame(&mut buf, FrameKind::Value, &(7u32, "x")).unwrap();
        let start = begin_frame(&mut buf, FrameKind::Task);
        append_item(&mut buf, b"ab");
        append_item(&mut buf, b"");
        end_frame(&mut buf, start);
        let (kind, payload, used) = split_frame(&buf).unwrap().unwrap();
        assert_eq!(kind, FrameKind::Value);
        assert_eq!(
            postcard::from_bytes::<(u32, String)>(payload).unwrap(),
            (7, "x".into())
        );
        let (kind, payload, used2) = split_frame(&buf[used..]).unwrap().unwrap();
        assert_eq!(kind, FrameKind::Task);
        assert_eq!(used + used2, buf.len());
        let (a, rest) = split_item(payload).unwrap();
        let (b, rest) = split_item(rest).unwrap();
        assert_eq!((a, b, rest), (&b"ab"[..], &b""[..], &b""[..]));
        // Incomplete: not yet a frame; garbage: an error.
        assert!(split_frame(&buf[..used - 1]).unwrap().is_none());
        assert!(split_frame(&[0u8; 20]).is_err());
        assert!(split_item(&[5, 0, 0, 0, 1]).is_none());
    }
}
