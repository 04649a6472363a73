//! Building replies: an out header followed by the payload pieces.

use crate::abi::OutHeader;
use zerocopy::IntoBytes;

/// A successful reply carrying `parts` concatenated.
pub fn ok(unique: u64, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = size_of::<OutHeader>() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    let h = OutHeader {
        len: u32::try_from(len).unwrap_or(u32::MAX),
        error: 0,
        unique,
    };
    out.extend_from_slice(h.as_bytes());
    parts.iter().for_each(|p| out.extend_from_slice(p));
    out
}

/// An error reply: `errno` positive, sent negated.
pub fn error(unique: u64, errno: i32) -> Vec<u8> {
    let h = OutHeader {
        len: size_of::<OutHeader>() as u32,
        error: -errno.abs(),
        unique,
    };
    h.as_bytes().to_vec()
}

/// A struct as a reply payload.
pub fn of<T: IntoBytes + zerocopy::Immutable>(unique: u64, v: &T) -> Vec<u8> {
    ok(unique, &[v.as_bytes()])
}
