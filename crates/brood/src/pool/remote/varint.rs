//! Item framing for chunks and their outcomes: each item's length as a
//! LEB128 varint (one byte below 64 bytes), with a one-bit tag below it
//! (an outcome's value or error). A broker's cost grows with the bytes it
//! stores and moves, and for small items fixed-width lengths were most of
//! them.

/// Begins an item: one byte for its length, the usual case.
#[inline]
pub(crate) fn begin(buf: &mut Vec<u8>) -> usize {
    buf.push(0);
    buf.len() - 1
}

/// Ends the item begun at `start`: writes `length << 1 | tag`, moving
/// the item's bytes only when that needs more than the byte kept.
#[inline]
pub(crate) fn end(buf: &mut Vec<u8>, start: usize, tag: u8) {
    let len = (buf.len() - start - 1) as u64;
    let mut v = len << 1 | u64::from(tag & 1);
    let mut head = [0u8; 10];
    let mut n = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            head[n] = byte;
            n += 1;
            break;
        }
        head[n] = byte | 0x80;
        n += 1;
    }
    buf[start] = head[0];
    if n > 1 {
        buf.splice(start + 1..start + 1, head[1..n].iter().copied());
    }
}

/// One item off the front of `buf`: the varint, the item's bytes, the
/// rest; `None` if cut short or the varint is not one.
#[inline]
pub(crate) fn split(buf: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let mut v: u64 = 0;
    for (k, &byte) in buf.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * k);
        if byte & 0x80 == 0 {
            let rest = &buf[k + 1..];
            let len = usize::try_from(v >> 1).ok()?;
            return (rest.len() >= len).then(|| {
                let (item, more) = rest.split_at(len);
                (v, item, more)
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any item lengths, any tags: each item reads back whole, and a
        /// buffer cut anywhere inside an item reads as cut short.
        #[test]
        fn varint_items_read_back(items in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..300), 0u8..2), 0..40)
        ) {
            let mut buf = Vec::new();
            for (bytes, tag) in &items {
                let start = begin(&mut buf);
                buf.extend_from_slice(bytes);
                end(&mut buf, start, *tag);
            }
            let mut rest = &buf[..];
            for (bytes, tag) in &items {
                let (v, item, more) = split(rest).unwrap();
                prop_assert_eq!(item, &bytes[..]);
                prop_assert_eq!((v & 1) as u8, *tag);
                let cut = &rest[..rest.len() - more.len() - 1];
                prop_assert!(split(cut).is_none());
                rest = more;
            }
            prop_assert!(rest.is_empty());
        }
    }

    #[test]
    fn lengths_at_the_varint_steps() {
        for len in [0, 63, 64, 127, 128, 8191, 8192, 1 << 14, 1 << 21] {
            let mut buf = vec![9];
            let start = begin(&mut buf);
            buf.extend(std::iter::repeat_n(7u8, len));
            end(&mut buf, start, 1);
            let (v, item, rest) = split(&buf[1..]).unwrap();
            assert_eq!(
                (v >> 1, v & 1, item.len(), rest.len()),
                (len as u64, 1, len, 0)
            );
        }
        // Not a varint: eleven bytes with the high bit set.
        assert!(split(&[0xff; 11]).is_none());
    }
}
