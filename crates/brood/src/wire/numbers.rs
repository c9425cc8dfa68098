//! Plain numbers, encoded and decoded without going through serde.
//!
//! A pool map over numbers spends most of its encoding time in postcard's
//! serializer machinery, not in the few bytes a number takes (~15 ns per
//! `u64`, where the varint itself is ~2). For the integer and float types
//! most maps carry, these functions write and read *exactly postcard's
//! bytes* (unsigned LEB128 varints, zigzag for signed integers, IEEE
//! little-endian for floats) directly, so that either side may use postcard
//! for the same value; any other type goes to postcard. The choice is made
//! by type at compile time (`TypeId` comparisons fold away).
//!
//! Byte vectors and strings too (a varint length, then the bytes): serde
//! hands a `Vec<u8>` to postcard one byte at a time, which for a 200 MiB
//! result cost more than all the copies on its way.

use serde::{Serialize, de::DeserializeOwned};
use std::any::Any;

/// Appends `value` as postcard would; `false` if it is not a plain number
/// (then nothing was written).
#[inline]
pub(crate) fn encode<T: Serialize + Any>(buf: &mut Vec<u8>, value: &T) -> bool {
    let any = value as &dyn Any;
    if let Some(&v) = any.downcast_ref::<u64>() {
        varint(buf, v);
    } else if let Some(&v) = any.downcast_ref::<u32>() {
        varint(buf, u64::from(v));
    } else if let Some(&v) = any.downcast_ref::<usize>() {
        varint(buf, v as u64);
    } else if let Some(&v) = any.downcast_ref::<i64>() {
        varint(buf, ((v << 1) ^ (v >> 63)) as u64);
    } else if let Some(&v) = any.downcast_ref::<i32>() {
        varint(buf, u64::from(((v << 1) ^ (v >> 31)) as u32));
    } else if let Some(&v) = any.downcast_ref::<f64>() {
        buf.extend_from_slice(&v.to_le_bytes());
    } else if let Some(&v) = any.downcast_ref::<f32>() {
        buf.extend_from_slice(&v.to_le_bytes());
    } else if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        varint(buf, v.len() as u64);
        buf.extend_from_slice(v);
    } else if let Some(v) = any.downcast_ref::<String>() {
        varint(buf, v.len() as u64);
        buf.extend_from_slice(v.as_bytes());
    } else {
        return false;
    }
    true
}

/// Decodes `bytes` as postcard's `from_bytes` would (trailing bytes are
/// ignored, as there); `None` if `T` is not a plain number, `Some(Err)` if
/// the bytes are not one.
#[inline]
pub(crate) fn decode<T: DeserializeOwned + Any>(
    bytes: &[u8],
) -> Option<Result<T, postcard::Error>> {
    let mut out: Option<T> = None;
    let slot = &mut out as &mut dyn Any;
    let ok = if let Some(s) = slot.downcast_mut::<Option<u64>>() {
        read_varint(bytes, 10).map(|v| *s = Some(v))
    } else if let Some(s) = slot.downcast_mut::<Option<u32>>() {
        read_u32(bytes).map(|v| *s = Some(v))
    } else if let Some(s) = slot.downcast_mut::<Option<usize>>() {
        read_varint(bytes, 10)
            .and_then(|v| usize::try_from(v).ok())
            .map(|v| *s = Some(v))
    } else if let Some(s) = slot.downcast_mut::<Option<i64>>() {
        read_varint(bytes, 10).map(|v| *s = Some(((v >> 1) as i64) ^ -((v & 1) as i64)))
    } else if let Some(s) = slot.downcast_mut::<Option<i32>>() {
        read_u32(bytes).map(|v| *s = Some(((v >> 1) as i32) ^ -((v & 1) as i32)))
    } else if let Some(s) = slot.downcast_mut::<Option<f64>>() {
        bytes
            .first_chunk::<8>()
            .map(|b| *s = Some(f64::from_le_bytes(*b)))
    } else if let Some(s) = slot.downcast_mut::<Option<f32>>() {
        bytes
            .first_chunk::<4>()
            .map(|b| *s = Some(f32::from_le_bytes(*b)))
    } else if let Some(s) = slot.downcast_mut::<Option<Vec<u8>>>() {
        read_bytes(bytes).map(|b| *s = Some(copy_bytes(b)))
    } else if let Some(s) = slot.downcast_mut::<Option<String>>() {
        read_bytes(bytes)
            .and_then(|b| String::from_utf8(copy_bytes(b)).ok())
            .map(|v| *s = Some(v))
    } else {
        return None;
    };
    Some(match (ok, out) {
        (Some(()), Some(v)) => Ok(v),
        _ => Err(postcard::Error::DeserializeBadVarint),
    })
}

/// The bytes of a `Vec<u8>` or a `String`, which postcard writes after
/// their length ([`length_head`]); `None` for any other type.
#[inline]
pub(crate) fn as_bytes<T: Any>(value: &T) -> Option<&[u8]> {
    let any = value as &dyn Any;
    any.downcast_ref::<Vec<u8>>()
        .map(Vec::as_slice)
        .or_else(|| any.downcast_ref::<String>().map(String::as_bytes))
}

/// The varint length postcard writes before `len` bytes.
pub(crate) fn length_head(len: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(10);
    varint(&mut head, len as u64);
    head
}

/// `bytes` in a vector of their own; a big one's pages faulted in with one
/// call first (see `sys::madvise`).
fn copy_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len());
    if bytes.len() >= 1 << 20 {
        crate::sys::madvise::populate_for_write(v.spare_capacity_mut());
    }
    v.extend_from_slice(bytes);
    v
}

/// A varint length and that many bytes, at the start of `bytes`.
fn read_bytes(bytes: &[u8]) -> Option<&[u8]> {
    let head = bytes.iter().position(|b| b & 0x80 == 0)? + 1;
    let len = usize::try_from(read_varint(bytes.get(..head)?, 10)?).ok()?;
    bytes.get(head..)?.get(..len)
}

#[inline]
fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A varint of at most `max` bytes whose value fits in 64 bits (postcard's
/// rule: the last byte may carry no bits beyond the type's width).
#[inline]
fn read_varint(bytes: &[u8], max: usize) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().take(max).enumerate() {
        let bits = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A `u32` varint: five bytes at most (a fifth byte carrying more than four
/// bits makes the value too large, and is refused with it).
#[inline]
fn read_u32(bytes: &[u8]) -> Option<u32> {
    u32::try_from(read_varint(bytes, 5)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same<T>(v: T)
    where
        T: Serialize + DeserializeOwned + Any + PartialEq + std::fmt::Debug,
    {
        let mut ours = Vec::new();
        assert!(encode(&mut ours, &v));
        assert_eq!(ours, postcard::to_allocvec(&v).unwrap(), "{v:?}");
        assert_eq!(decode::<T>(&ours).unwrap().unwrap(), v);
    }

    /// Decoding agrees with postcard on any bytes: the same value, or an
    /// error where postcard has one.
    fn agrees<T>(bytes: &[u8])
    where
        T: DeserializeOwned + Any + PartialEq + std::fmt::Debug,
    {
        let ours = decode::<T>(bytes).unwrap().ok();
        let theirs = postcard::from_bytes::<T>(bytes).ok();
        assert_eq!(
            ours,
            theirs,
            "{bytes:02x?} as {}",
            std::any::type_name::<T>()
        );
    }

    proptest! {
        #[test]
        fn numbers_cross_as_postcard_writes_them(a: u64, b: u32, c: i64, d: i32, e: f64, f: usize, g: f32) {
            same(a);
            same(b);
            same(c);
            same(d);
            if !e.is_nan() { same(e); }
            same(f);
            if !g.is_nan() { same(g); }
        }

        #[test]
        fn bytes_and_strings_cross_as_postcard_writes_them(v in proptest::collection::vec(any::<u8>(), 0..300), t in ".{0,200}") {
            same(v);
            same(t);
        }

        #[test]
        fn any_bytes_decode_as_postcard_decodes_them(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            agrees::<u64>(&bytes);
            agrees::<u32>(&bytes);
            agrees::<i64>(&bytes);
            agrees::<i32>(&bytes);
            agrees::<usize>(&bytes);
            agrees::<Vec<u8>>(&bytes);
            agrees::<String>(&bytes);
        }
    }

    #[test]
    fn the_edges_of_each_width() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX - 1, u64::MAX] {
            same(v);
        }
        for v in [0, 127, 128, u32::MAX] {
            same(v);
        }
        for v in [0, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            same(v);
        }
        for v in [0, -1, i32::MIN, i32::MAX] {
            same(v);
        }
        // Overlong and overflowing varints, as postcard refuses them.
        for bytes in [
            &[0xff; 10][..],
            &[0xff, 0xff, 0xff, 0xff, 0x1f][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02][..],
            &[0x80][..],
            &[][..],
        ] {
            agrees::<u64>(bytes);
            agrees::<u32>(bytes);
            agrees::<i32>(bytes);
        }
        assert!(decode::<Vec<u16>>(b"x").is_none());
        assert!(!encode(&mut Vec::new(), &vec![1u16]));
    }
}
