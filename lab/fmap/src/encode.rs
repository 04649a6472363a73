//! Model -> blob. Encodes whatever it is given (an invalid map gives an invalid blob, which is
//! what negative tests want); [`crate::validate`] first if that matters.

use crate::model::{Extents, FileMap, SimpleExtent};
use crate::wire::{
    FmapHeader, InterleavedExtWire, SimpleExtWire, EXT_SIZE, EXT_TYPE_INTERLEAVED, EXT_TYPE_SIMPLE,
    FMAP_VERSION, HEADER_SIZE,
};
use zerocopy::IntoBytes;

/// The V10-compatible GET_FMAP blob for `map`.
pub fn encode(map: &FileMap) -> Vec<u8> {
    let (ext_type, nextents) = match &map.extents {
        Extents::Simple(v) => (EXT_TYPE_SIMPLE, v.len()),
        Extents::Interleaved(v) => (EXT_TYPE_INTERLEAVED, v.len()),
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + EXT_SIZE * (nextents + map.total_strips()));
    let hdr = FmapHeader {
        file_type: map.file_type.to_wire(),
        fmap_version: FMAP_VERSION,
        ext_type,
        nextents: wire_count(nextents),
        file_size: map.file_size,
        ..FmapHeader::default()
    };
    out.extend_from_slice(hdr.as_bytes());
    match &map.extents {
        Extents::Simple(v) => v.iter().for_each(|e| push_simple(&mut out, e)),
        Extents::Interleaved(v) => {
            for e in v {
                let w = InterleavedExtWire {
                    nstrips: wire_count(e.strips.len()),
                    chunk_size: e.chunk_size,
                    nbytes: e.nbytes,
                    reserved: 0,
                };
                out.extend_from_slice(w.as_bytes());
                e.strips.iter().for_each(|s| push_simple(&mut out, s));
            }
        }
    }
    out
}

fn push_simple(out: &mut Vec<u8>, e: &SimpleExtent) {
    let w = SimpleExtWire {
        devindex: e.dev_index,
        reserved: 0,
        offset: e.offset,
        len: e.len,
    };
    out.extend_from_slice(w.as_bytes());
}

fn wire_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
