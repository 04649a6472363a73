//! Blob encoding against hand-computed bytes, and decode(encode(x)) round trips.
#![cfg(target_endian = "little")]

use famfs_fmap::{
    decode, encode, Extents, FileMap, FileType, InterleavedExtent, SimpleExtent, FMAP_ALIGN,
};

const M2: u64 = FMAP_ALIGN;

fn simple_map() -> FileMap {
    FileMap {
        file_type: FileType::Regular,
        file_size: 0x30_0000,
        extents: Extents::Simple(vec![
            SimpleExtent {
                dev_index: 0,
                offset: 0x20_0000,
                len: M2,
            },
            SimpleExtent {
                dev_index: 1,
                offset: 0x40_0000,
                len: M2,
            },
        ]),
    }
}

#[rustfmt::skip]
const SIMPLE_BYTES: [u8; 32 + 2 * 24] = [
    // header
    0x00,                                           // file_type: regular
    0x00,                                           // reserved
    0x01, 0x00,                                     // fmap_version 1
    0x00, 0x00, 0x00, 0x00,                         // ext_type 0: simple
    0x02, 0x00, 0x00, 0x00,                         // nextents 2
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, // file_size 0x300000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // reserved
    // extent 0
    0x00, 0x00, 0x00, 0x00,                         // devindex 0
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 0x200000
    0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // len 0x200000
    // extent 1
    0x01, 0x00, 0x00, 0x00,                         // devindex 1
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 0x400000
    0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // len 0x200000
];

fn interleaved_map() -> FileMap {
    FileMap {
        file_type: FileType::Log,
        file_size: 0x50_0000,
        extents: Extents::Interleaved(vec![InterleavedExtent {
            chunk_size: 0x20_0000,
            nbytes: 0x60_0000,
            strips: vec![
                // chunks 0 and 2
                SimpleExtent {
                    dev_index: 0,
                    offset: 0,
                    len: 2 * M2,
                },
                // chunk 1
                SimpleExtent {
                    dev_index: 2,
                    offset: 0x20_0000,
                    len: M2,
                },
            ],
        }]),
    }
}

#[rustfmt::skip]
const INTERLEAVED_BYTES: [u8; 32 + 3 * 24] = [
    // header
    0x02,                                           // file_type: log
    0x00,                                           // reserved
    0x01, 0x00,                                     // fmap_version 1
    0x01, 0x00, 0x00, 0x00,                         // ext_type 1: interleaved
    0x01, 0x00, 0x00, 0x00,                         // nextents 1
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, // file_size 0x500000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // reserved
    // interleaved extent 0
    0x02, 0x00, 0x00, 0x00,                         // nstrips 2
    0x00, 0x00, 0x20, 0x00,                         // chunk_size 0x200000
    0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, // nbytes 0x600000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // reserved
    // strip 0
    0x00, 0x00, 0x00, 0x00,                         // devindex 0
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 0
    0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, // len 0x400000
    // strip 1
    0x02, 0x00, 0x00, 0x00,                         // devindex 2
    0x00, 0x00, 0x00, 0x00,                         // reserved
    0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // offset 0x200000
    0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, // len 0x200000
];

#[test]
fn simple_map_encodes_to_hand_computed_bytes() {
    assert_eq!(encode(&simple_map()), SIMPLE_BYTES);
}

#[test]
fn interleaved_map_encodes_to_hand_computed_bytes() {
    assert_eq!(encode(&interleaved_map()), INTERLEAVED_BYTES);
}

#[test]
fn hand_computed_bytes_decode_to_the_maps() {
    assert_eq!(decode(&SIMPLE_BYTES), Ok(simple_map()));
    assert_eq!(decode(&INTERLEAVED_BYTES), Ok(interleaved_map()));
}

#[test]
fn reserved_fields_are_ignored_on_decode() {
    let mut b = SIMPLE_BYTES;
    b[1] = 0xff; // header reserved
    b[24] = 0x5a; // header reserved2
    b[32 + 4] = 0x77; // extent 0 reserved
    assert_eq!(decode(&b), Ok(simple_map()));
}
