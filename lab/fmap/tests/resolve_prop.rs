//! resolve() against a naive reference: walk the file from offset 0, laying down simple extents
//! and interleave chunks one after another (per-strip cursors, round-robin, no division), and
//! read the answer off the run that holds the offset.

use famfs_fmap::{
    decode, encode, resolve, strip_need, validate, Extents, FileMap, FileType, InterleavedExtent,
    Mapping, SimpleExtent, FMAP_ALIGN,
};
use proptest::prelude::*;

const M2: u64 = FMAP_ALIGN;

/// One contiguous run of file data: file [start, end) at dev_offset on dev.
struct Run {
    start: u64,
    end: u64,
    dev: u32,
    dev_offset: u64,
}

fn runs(map: &FileMap) -> Vec<Run> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    match &map.extents {
        Extents::Simple(v) => {
            for e in v {
                out.push(Run {
                    start: pos,
                    end: pos + e.len,
                    dev: e.dev_index,
                    dev_offset: e.offset,
                });
                pos += e.len;
            }
        }
        Extents::Interleaved(v) => {
            for e in v {
                let end = pos + e.nbytes;
                let mut cursors: Vec<u64> = e.strips.iter().map(|s| s.offset).collect();
                let mut strip = 0usize;
                while pos < end {
                    let chunk_end = (pos + u64::from(e.chunk_size)).min(end);
                    let s = &e.strips[strip];
                    out.push(Run {
                        start: pos,
                        end: chunk_end,
                        dev: s.dev_index,
                        dev_offset: cursors[strip],
                    });
                    cursors[strip] += u64::from(e.chunk_size);
                    pos = chunk_end;
                    strip += 1;
                    if strip == e.strips.len() {
                        strip = 0;
                    }
                }
            }
        }
    }
    out
}

fn reference(map: &FileMap, off: u64) -> Option<Mapping> {
    if off >= map.file_size {
        return None;
    }
    runs(map)
        .iter()
        .find(|r| r.start <= off && off < r.end)
        .map(|r| Mapping {
            dev_index: r.dev,
            dev_offset: r.dev_offset + (off - r.start),
            length: r.end - off,
        })
}

fn simple_ext() -> impl Strategy<Value = SimpleExtent> {
    (0u32..24, 0u64..4096, 1u64..8).prop_map(|(d, o, l)| SimpleExtent {
        dev_index: d,
        offset: o * M2,
        len: l * M2,
    })
}

fn interleaved_ext() -> impl Strategy<Value = InterleavedExtent> {
    (1usize..=6, 1u32..=3, 1u64..=24).prop_flat_map(|(ns, c, nb)| {
        let chunk = c * M2 as u32;
        let nbytes = nb * M2;
        proptest::collection::vec((0u32..24, 0u64..4096, 0u64..3), ns).prop_map(move |strips| {
            let strips = strips
                .into_iter()
                .enumerate()
                .map(|(s, (d, o, extra))| {
                    let need = strip_need(nbytes, u64::from(chunk), ns, s);
                    SimpleExtent {
                        dev_index: d,
                        offset: o * M2,
                        len: need.max(M2) + extra * M2,
                    }
                })
                .collect();
            InterleavedExtent {
                chunk_size: chunk,
                nbytes,
                strips,
            }
        })
    })
}

fn valid_map() -> impl Strategy<Value = FileMap> {
    let ext = prop_oneof![
        proptest::collection::vec(simple_ext(), 1..=32).prop_map(Extents::Simple),
        proptest::collection::vec(interleaved_ext(), 1..=6).prop_map(Extents::Interleaved),
    ];
    (ext, any::<u64>(), 0u8..3).prop_map(|(extents, size_pick, ft)| {
        let mut m = FileMap {
            file_type: FileType::from_wire(ft).unwrap(),
            file_size: 0,
            extents,
        };
        m.file_size = size_pick % (m.mapped_size() + 1);
        m
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resolve_matches_the_reference_walk(map in valid_map(), picks in proptest::collection::vec(any::<u64>(), 32)) {
        prop_assert_eq!(validate(&map), Ok(()));
        let span = map.mapped_size() + 4 * M2;
        for p in picks {
            let off = p % span;
            prop_assert_eq!(resolve(&map, off), reference(&map, off), "offset {:#x}", off);
        }
        // The edges: first and last byte of every run, and the file's last byte.
        for r in runs(&map) {
            for off in [r.start, r.end - 1] {
                prop_assert_eq!(resolve(&map, off), reference(&map, off), "offset {:#x}", off);
            }
        }
        if map.file_size > 0 {
            prop_assert_eq!(resolve(&map, map.file_size - 1), reference(&map, map.file_size - 1));
        }
    }

    #[test]
    fn mapped_lengths_are_contiguous(map in valid_map(), pick in any::<u64>()) {
        prop_assume!(map.file_size > 0);
        let off = pick % map.file_size;
        let m = resolve(&map, off).expect("inside file_size");
        prop_assert!(m.length > 0);
        // Every byte of the returned range is where the mapping says it is.
        for step in [0, m.length / 2, m.length - 1] {
            if off + step < map.file_size {
                let inner = resolve(&map, off + step).expect("inside");
                prop_assert_eq!((inner.dev_index, inner.dev_offset), (m.dev_index, m.dev_offset + step));
            }
        }
    }

    #[test]
    fn decode_inverts_encode(map in valid_map()) {
        prop_assert_eq!(decode(&encode(&map)), Ok(map));
    }
}
