//! Every error class of `decode`, with its errno.
#![cfg(target_endian = "little")]

use famfs_fmap::wire::{FmapHeader, InterleavedExtWire, SimpleExtWire};
use famfs_fmap::{decode, Field, FmapError, Loc, EINVAL, ERANGE, FMAP_ALIGN};
use zerocopy::IntoBytes;

const M2: u64 = FMAP_ALIGN;

fn hdr(ext_type: u32, nextents: u32, file_size: u64) -> FmapHeader {
    FmapHeader {
        fmap_version: 1,
        ext_type,
        nextents,
        file_size,
        ..Default::default()
    }
}

fn ext(devindex: u32, offset: u64, len: u64) -> SimpleExtWire {
    SimpleExtWire {
        devindex,
        reserved: 0,
        offset,
        len,
    }
}

fn blob(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn simple(file_size: u64, exts: &[SimpleExtWire]) -> Vec<u8> {
    let h = hdr(0, exts.len() as u32, file_size);
    let mut b = h.as_bytes().to_vec();
    exts.iter().for_each(|e| b.extend_from_slice(e.as_bytes()));
    b
}

fn err(b: &[u8]) -> FmapError {
    match decode(b) {
        Err(e) => e,
        Ok(m) => panic!("decoded {m:?}"),
    }
}

#[test]
fn empty_and_short_header_are_einval() {
    for n in [0, 1, 31] {
        let e = err(&vec![0u8; n]);
        assert!(matches!(e, FmapError::Short { need: 32, .. }), "{e}");
        assert_eq!(e.errno(), EINVAL);
    }
}

#[test]
fn wrong_version_file_type_and_ext_type_are_einval() {
    let mut h = hdr(0, 1, M2);
    h.fmap_version = 2;
    assert_eq!(err(h.as_bytes()), FmapError::Version(2));
    let mut h = hdr(0, 1, M2);
    h.file_type = 3;
    assert_eq!(err(h.as_bytes()), FmapError::FileType(3));
    let e = err(hdr(2, 1, M2).as_bytes());
    assert_eq!((e.clone(), e.errno()), (FmapError::ExtType(2), EINVAL));
}

#[test]
fn extent_count_outside_1_to_32_is_erange() {
    for n in [0u32, 33, u32::MAX] {
        let e = err(hdr(0, n, 0).as_bytes());
        assert_eq!(
            (e.clone(), e.errno()),
            (FmapError::ExtentCount(n as usize), ERANGE)
        );
    }
    // 32 is fine
    let exts: Vec<_> = (0..32).map(|i| ext(0, i * M2, M2)).collect();
    assert!(decode(&simple(M2, &exts)).is_ok());
}

#[test]
fn truncated_extent_is_einval() {
    let mut b = simple(M2, &[ext(0, 0, M2)]);
    b.truncate(b.len() - 1);
    let e = err(&b);
    assert!(
        matches!(
            e,
            FmapError::Short {
                need: 56,
                got: 55,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.errno(), EINVAL);
}

#[test]
fn trailing_bytes_are_einval() {
    let mut b = simple(M2, &[ext(0, 0, M2)]);
    b.extend_from_slice(&[0; 8]);
    assert_eq!(err(&b), FmapError::Trailing { extra: 8 });
}

#[test]
fn misaligned_offset_length_are_einval() {
    let e = err(&simple(M2, &[ext(0, 4096, M2)]));
    assert_eq!(
        e,
        FmapError::Misaligned {
            at: Loc::ext(0),
            field: Field::Offset,
            value: 4096
        }
    );
    assert_eq!(e.errno(), EINVAL);
    let e = err(&simple(M2, &[ext(0, 0, M2), ext(0, M2, M2 + 4096)]));
    assert_eq!(
        e,
        FmapError::Misaligned {
            at: Loc::ext(1),
            field: Field::Length,
            value: M2 + 4096
        }
    );
}

#[test]
fn zero_length_is_einval() {
    let e = err(&simple(0, &[ext(0, 0, 0)]));
    assert_eq!(
        e,
        FmapError::Zero {
            at: Loc::ext(0),
            field: Field::Length
        }
    );
}

#[test]
fn devindex_24_is_einval_23_is_fine() {
    let e = err(&simple(M2, &[ext(24, 0, M2)]));
    assert_eq!(
        (e.clone(), e.errno()),
        (
            FmapError::DevIndex {
                at: Loc::ext(0),
                index: 24
            },
            EINVAL
        )
    );
    assert!(decode(&simple(M2, &[ext(23, 0, M2)])).is_ok());
}

#[test]
fn overflowing_range_is_einval() {
    let off = u64::MAX - (u64::MAX % M2);
    let e = err(&simple(M2, &[ext(0, off, M2)]));
    assert_eq!(e, FmapError::Overflow { at: Loc::ext(0) });
}

#[test]
fn uncovered_file_size_is_einval() {
    let e = err(&simple(M2 + 1, &[ext(0, 0, M2)]));
    assert_eq!(
        (e.clone(), e.errno()),
        (
            FmapError::Uncovered {
                covered: M2,
                file_size: M2 + 1
            },
            EINVAL
        )
    );
}

fn ilv(nstrips: u32, chunk_size: u32, nbytes: u64) -> InterleavedExtWire {
    InterleavedExtWire {
        nstrips,
        chunk_size,
        nbytes,
        reserved: 0,
    }
}

#[test]
fn interleaved_strip_count_outside_1_to_32_is_einval() {
    for n in [0u32, 33] {
        let b = blob(&[hdr(1, 1, 0).as_bytes(), ilv(n, M2 as u32, M2).as_bytes()]);
        let e = err(&b);
        assert_eq!(
            (e.clone(), e.errno()),
            (
                FmapError::StripCount {
                    extent: 0,
                    nstrips: n as usize
                },
                EINVAL
            )
        );
    }
}

#[test]
fn interleaved_chunk_and_nbytes_must_be_aligned_and_nonzero() {
    let s = ext(0, 0, M2);
    let b = blob(&[
        hdr(1, 1, 0).as_bytes(),
        ilv(1, 4096, M2).as_bytes(),
        s.as_bytes(),
    ]);
    assert_eq!(
        err(&b),
        FmapError::Misaligned {
            at: Loc::ext(0),
            field: Field::ChunkSize,
            value: 4096
        }
    );
    let b = blob(&[
        hdr(1, 1, 0).as_bytes(),
        ilv(1, 0, M2).as_bytes(),
        s.as_bytes(),
    ]);
    assert_eq!(
        err(&b),
        FmapError::Zero {
            at: Loc::ext(0),
            field: Field::ChunkSize
        }
    );
    let b = blob(&[
        hdr(1, 1, 0).as_bytes(),
        ilv(1, M2 as u32, 0).as_bytes(),
        s.as_bytes(),
    ]);
    assert_eq!(
        err(&b),
        FmapError::Zero {
            at: Loc::ext(0),
            field: Field::Nbytes
        }
    );
}

#[test]
fn interleaved_strip_too_short_is_einval() {
    // 3 chunks over 2 strips: strip 0 needs 2 chunks.
    let b = blob(&[
        hdr(1, 1, 3 * M2).as_bytes(),
        ilv(2, M2 as u32, 3 * M2).as_bytes(),
        ext(0, 0, M2).as_bytes(),
        ext(1, 0, M2).as_bytes(),
    ]);
    let e = err(&b);
    assert_eq!(
        e,
        FmapError::StripTooShort {
            at: Loc::strip(0, 0),
            len: M2,
            need: 2 * M2
        }
    );
    assert_eq!(e.errno(), EINVAL);
}

#[test]
fn interleaved_truncated_strip_list_is_einval() {
    let b = blob(&[
        hdr(1, 1, M2).as_bytes(),
        ilv(2, M2 as u32, M2).as_bytes(),
        ext(0, 0, M2).as_bytes(),
    ]);
    assert!(matches!(
        err(&b),
        FmapError::Short {
            what: "a strip",
            ..
        }
    ));
}

#[test]
fn strip_devindex_and_alignment_are_checked() {
    let b = blob(&[
        hdr(1, 1, M2).as_bytes(),
        ilv(1, M2 as u32, M2).as_bytes(),
        ext(30, 0, M2).as_bytes(),
    ]);
    assert_eq!(
        err(&b),
        FmapError::DevIndex {
            at: Loc::strip(0, 0),
            index: 30
        }
    );
    let b = blob(&[
        hdr(1, 1, M2).as_bytes(),
        ilv(1, M2 as u32, M2).as_bytes(),
        ext(0, 512, M2).as_bytes(),
    ]);
    assert_eq!(
        err(&b),
        FmapError::Misaligned {
            at: Loc::strip(0, 0),
            field: Field::Offset,
            value: 512
        }
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap fuzz: every prefix and a few byte flips of a valid interleaved blob.
    let good = blob(&[
        hdr(1, 1, 3 * M2).as_bytes(),
        ilv(2, M2 as u32, 3 * M2).as_bytes(),
        ext(0, 0, 2 * M2).as_bytes(),
        ext(1, 0, M2).as_bytes(),
    ]);
    assert!(decode(&good).is_ok());
    for n in 0..good.len() {
        assert!(decode(&good[..n]).is_err());
    }
    for i in 0..good.len() {
        for v in [0u8, 1, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            let _ = decode(&b);
        }
    }
}
