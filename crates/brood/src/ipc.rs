//! Framed serde messages over pipes: how a [`Process`](crate::Process)'s argument
//! and result cross between processes.
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
use serde::{de::DeserializeOwned, Serialize};
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
    /// A value: the argument, or the function's result.
    Value = 1,
    /// The function panicked; the payload is the message as a postcard `String`.
    Panic = 2,
    /// The child could not run the function (a bad request, an argument that did
    /// not decode); the payload is the reason as a postcard `String`.
    Failed = 3,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::Value),
            2 => Some(FrameKind::Panic),
            3 => Some(FrameKind::Failed),
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

/// Encodes a postcard frame (header included) into one buffer, so small frames
/// cost one `write(2)`.
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    kind: FrameKind,
    value: &T,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0u8; HEADER]);
    let mut buf = postcard::to_extend(value, buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("cannot encode: {e}")))?;
    let len = buf.len() - HEADER;
    buf[..HEADER].copy_from_slice(&header(kind, len));
    Ok(buf)
}

/// Decodes a `Value` payload as a `T`.
pub(crate) fn decode<T: DeserializeOwned + 'static>(payload: Vec<u8>) -> Result<T, String> {
    use std::any::TypeId;
    if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() {
        let boxed: Box<dyn Any> = Box::new(payload);
        return boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| "internal: type mismatch".to_string());
    }
    if TypeId::of::<T>() == TypeId::of::<String>() {
        let s = String::from_utf8(payload).map_err(|e| format!("string is not UTF-8: {e}"))?;
        let boxed: Box<dyn Any> = Box::new(s);
        return boxed
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| "internal: type mismatch".to_string());
    }
    postcard::from_bytes(&payload)
        .map_err(|e| format!("cannot decode a {}: {e}", std::any::type_name::<T>()))
}

/// Decodes a `Panic` or `Failed` payload: the message.
pub(crate) fn decode_message(payload: &[u8]) -> String {
    postcard::from_bytes::<String>(payload)
        .unwrap_or_else(|e| format!("(the panic message did not decode: {e})"))
}

/// Where an incremental read stands.
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
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if self.head[..4] != MAGIC {
            return Err(bad(format!(
                "not a brood frame (magic {:02x?})",
                &self.head[..4]
            )));
        }
        self.kind = Some(
            FrameKind::from_u8(self.head[4])
                .ok_or_else(|| bad(format!("unknown frame kind {}", self.head[4])))?,
        );
        let len = u64::from_le_bytes(self.head[8..].try_into().expect("8 bytes"));
        self.len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| bad(format!("frame length {len} is impossible")))?;
        self.payload = Vec::with_capacity(self.len.min(PREALLOC));
        Ok(())
    }

    /// True once nothing at all has arrived.
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
}
