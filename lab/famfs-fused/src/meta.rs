//! Rust mirror of bpf/famfs_meta.h: the per-file meta the `famfs` BPF ops build at parse time.
//! The server needs its size for GET_FMAP's `meta_size`; the host harness test compares the
//! bytes the BPF parser writes with [`build`]. A test pins these sizes to the C header's.

use famfs_fmap::{Extents, FileMap};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const MAGIC: u32 = 0x464d_4554;

#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MetaHdr {
    pub magic: u32,
    pub ext_type: u16,
    pub nextents: u16,
    pub nstrips_total: u32,
    pub reserved: u32,
    pub file_size: u64,
    pub mapped_size: u64,
}

#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MetaExt {
    pub file_offset: u64,
    pub length: u64,
    pub dev_offset: u64,
    pub chunk_size: u64,
    pub dev_index: u32,
    pub nstrips: u16,
    pub first_strip: u16,
}

#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct MetaStrip {
    pub dev_offset: u64,
    pub dev_index: u32,
    pub reserved: u32,
}

pub const HDR_SIZE: usize = 32;
pub const EXT_SIZE: usize = 40;
pub const STRIP_SIZE: usize = 16;
pub const MAX_SIZE: usize = HDR_SIZE + 32 * EXT_SIZE + 32 * 32 * STRIP_SIZE;

const _: () = assert!(size_of::<MetaHdr>() == HDR_SIZE);
const _: () = assert!(size_of::<MetaExt>() == EXT_SIZE);
const _: () = assert!(size_of::<MetaStrip>() == STRIP_SIZE);

/// Bytes of meta the `famfs` ops need for `map`.
pub fn meta_size(map: &FileMap) -> u32 {
    (HDR_SIZE + EXT_SIZE * map.extents.len() + STRIP_SIZE * map.total_strips()) as u32
}

/// The meta the `famfs` BPF parse builds for a valid `map`.
pub fn build(map: &FileMap) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut strips = Vec::new();
    let mut pos = 0u64;
    let ext_type = match &map.extents {
        Extents::Simple(v) => {
            for e in v {
                exts.push(MetaExt {
                    file_offset: pos,
                    length: e.len,
                    dev_offset: e.offset,
                    dev_index: e.dev_index,
                    ..Default::default()
                });
                pos = pos.saturating_add(e.len);
            }
            0
        }
        Extents::Interleaved(v) => {
            for e in v {
                exts.push(MetaExt {
                    file_offset: pos,
                    length: e.nbytes,
                    chunk_size: u64::from(e.chunk_size),
                    nstrips: e.strips.len() as u16,
                    first_strip: strips.len() as u16,
                    ..Default::default()
                });
                strips.extend(e.strips.iter().map(|s| MetaStrip {
                    dev_offset: s.offset,
                    dev_index: s.dev_index,
                    reserved: 0,
                }));
                pos = pos.saturating_add(e.nbytes);
            }
            1
        }
    };
    let hdr = MetaHdr {
        magic: MAGIC,
        ext_type,
        nextents: exts.len() as u16,
        nstrips_total: strips.len() as u32,
        reserved: 0,
        file_size: map.file_size,
        mapped_size: pos,
    };
    let mut out = hdr.as_bytes().to_vec();
    exts.iter()
        .for_each(|e| out.extend_from_slice(e.as_bytes()));
    strips
        .iter()
        .for_each(|s| out.extend_from_slice(s.as_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `#define NAME VALUE` from the C header.
    fn c_define(name: &str) -> usize {
        let h = include_str!("../bpf/famfs_meta.h");
        h.lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in bpf/famfs_meta.h"))
    }

    #[test]
    fn sizes_match_the_c_header() {
        assert_eq!(c_define("FAMFS_META_HDR_SIZE"), size_of::<MetaHdr>());
        assert_eq!(c_define("FAMFS_META_EXT_SIZE"), size_of::<MetaExt>());
        assert_eq!(c_define("FAMFS_META_STRIP_SIZE"), size_of::<MetaStrip>());
        assert!(include_str!("../bpf/famfs_meta.h").contains("#define FAMFS_META_MAGIC 0x464d4554"));
    }

    #[test]
    fn built_meta_has_the_advertised_size() {
        let map = FileMap {
            file_type: famfs_fmap::FileType::Regular,
            file_size: 1,
            extents: Extents::Interleaved(vec![famfs_fmap::InterleavedExtent {
                chunk_size: 2 << 20,
                nbytes: 2 << 20,
                strips: vec![
                    famfs_fmap::SimpleExtent {
                        dev_index: 0,
                        offset: 0,
                        len: 2 << 20
                    };
                    3
                ],
            }]),
        };
        assert_eq!(build(&map).len(), meta_size(&map) as usize);
        assert_eq!(meta_size(&map), 32 + 40 + 3 * 16);
    }
}
