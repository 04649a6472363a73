//! File offset -> device location, the spec's formula. Every BPF and native implementation of
//! `iomap_begin` for the famfs format must give the same answer (the suites compare them).

use crate::model::{Extents, FileMap};

/// Where a file offset lives: `length` bytes from `dev_offset` on device slot `dev_index` are
/// contiguous file data (up to the end of the simple extent or of the interleave chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub dev_index: u32,
    pub dev_offset: u64,
    pub length: u64,
}

/// Resolve `off`. `None` at or past `file_size` or where the map holds no data (only possible for
/// a map that fails [`crate::validate`]). Length is not capped at `file_size`: the last page of
/// a file with an unaligned size still maps whole.
///
/// Simple: walk the extents to the one holding `off`. Interleaved, with `off` relative to the
/// extent and c = chunk_size: chunk = off / c, strip = chunk % nstrips, stripe = chunk / nstrips,
/// addr = strip.offset + stripe * c + off % c, length = c - off % c (capped at the extent's end).
pub fn resolve(map: &FileMap, off: u64) -> Option<Mapping> {
    if off >= map.file_size {
        return None;
    }
    let mut base: u64 = 0;
    match &map.extents {
        Extents::Simple(v) => {
            for e in v {
                let end = base.checked_add(e.len)?;
                if off < end {
                    let local = off - base;
                    return Some(Mapping {
                        dev_index: e.dev_index,
                        dev_offset: e.offset.checked_add(local)?,
                        length: e.len - local,
                    });
                }
                base = end;
            }
            None
        }
        Extents::Interleaved(v) => {
            for e in v {
                let end = base.checked_add(e.nbytes)?;
                if off < end {
                    let local = off - base;
                    let c = u64::from(e.chunk_size);
                    let n = e.strips.len() as u64;
                    if c == 0 || n == 0 {
                        return None;
                    }
                    let chunk = local / c;
                    let strip = e.strips.get(usize::try_from(chunk % n).ok()?)?;
                    let stripe = chunk / n;
                    let in_chunk = local % c;
                    let dev_offset = strip
                        .offset
                        .checked_add(stripe.checked_mul(c)?)?
                        .checked_add(in_chunk)?;
                    return Some(Mapping {
                        dev_index: strip.dev_index,
                        dev_offset,
                        length: (c - in_chunk).min(end - off),
                    });
                }
                base = end;
            }
            None
        }
    }
}
