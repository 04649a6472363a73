//! `generate` never overlaps and always validates; write + load round-trips; resize.

use famfs_fmap::{resolve, Extents, FMAP_ALIGN};
use famfs_shadow::{
    generate, load, resize, write, Allocator, DaxDev, DaxDevs, GenerateParams, Layout,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const M2: u64 = FMAP_ALIGN;

fn devs(n: u32, size: Option<u64>) -> DaxDevs {
    DaxDevs(
        (0..n)
            .map(|i| {
                (
                    i,
                    DaxDev {
                        path: format!("/dev/dax{i}.0"),
                        size,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
    )
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        (1u32..=32).prop_map(|extents| Layout::Simple { extents }),
        (1u32..=32, 1u32..=4).prop_map(|(nstrips, c)| Layout::Interleaved {
            nstrips,
            chunk_size: c * M2 as u32
        }),
    ]
}

/// Device ranges of all files, checked pairwise.
fn assert_no_overlap(t: &famfs_shadow::ShadowTree) {
    let mut all: Vec<(u32, u64, u64, usize)> = Vec::new();
    for (i, f) in t.files.iter().enumerate() {
        for (_, _, r) in f.map.device_ranges() {
            all.push((r.dev_index, r.offset, r.offset + r.len, i));
        }
    }
    for (n, a) in all.iter().enumerate() {
        for b in &all[n + 1..] {
            assert!(
                a.0 != b.0 || a.2 <= b.1 || b.2 <= a.1,
                "{a:?} overlaps {b:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_trees_never_overlap_and_round_trip(
        files in 1usize..24,
        layout in layout(),
        sizes in proptest::collection::vec(0u64..(40 * M2), 1..5),
        ndev in 1u32..5,
        dirs in 0usize..3,
    ) {
        let p = GenerateParams { files, layout, sizes, devices: devs(ndev, None), dirs, ..Default::default() };
        let t = generate(&p).expect("generates");
        prop_assert_eq!(t.files.len(), files);
        assert_no_overlap(&t);
        for (i, f) in t.files.iter().enumerate() {
            prop_assert_eq!(f.map.file_size, p.sizes[i % p.sizes.len()]);
        }
        let d = tempfile::tempdir().expect("tempdir");
        write(&t, d.path()).expect("writes");
        let back = load(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut want = t.files.clone();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        prop_assert_eq!(back.files, want);
    }
}

#[test]
fn full_devices_are_an_error_not_an_overlap() {
    let p = GenerateParams {
        files: 3,
        sizes: vec![4 * M2],
        devices: devs(1, Some(8 * M2)),
        ..Default::default()
    };
    let e = generate(&p).expect_err("12 MiB on an 8 MiB device");
    assert!(e.to_string().contains("is full"), "{e}");
}

#[test]
fn bad_params_are_refused() {
    let base = GenerateParams {
        devices: devs(1, None),
        ..Default::default()
    };
    for p in [
        GenerateParams {
            layout: Layout::Simple { extents: 0 },
            ..base.clone()
        },
        GenerateParams {
            layout: Layout::Interleaved {
                nstrips: 33,
                chunk_size: M2 as u32,
            },
            ..base.clone()
        },
        GenerateParams {
            layout: Layout::Interleaved {
                nstrips: 2,
                chunk_size: 4096,
            },
            ..base.clone()
        },
        GenerateParams {
            sizes: vec![],
            ..base.clone()
        },
        GenerateParams {
            devices: DaxDevs::default(),
            ..base.clone()
        },
    ] {
        assert!(generate(&p).is_err(), "{p:?}");
    }
}

#[test]
fn write_refuses_an_existing_tree() {
    let t = generate(&GenerateParams {
        devices: devs(1, None),
        ..Default::default()
    })
    .expect("generates");
    let d = tempfile::tempdir().expect("tempdir");
    write(&t, d.path()).expect("first write");
    assert!(write(&t, d.path()).is_err());
}

fn one_file(layout: Layout, size: u64) -> (famfs_shadow::ShadowTree, Allocator) {
    let p = GenerateParams {
        layout,
        sizes: vec![size],
        devices: devs(2, None),
        ..Default::default()
    };
    let t = generate(&p).expect("generates");
    let mut a = Allocator::new(t.daxdevs.clone(), 0);
    t.files.iter().for_each(|f| a.reserve(&f.map));
    (t, a)
}

#[test]
fn resize_shrinks_by_truncating_and_grows_with_a_new_extent() {
    for layout in [
        Layout::Simple { extents: 4 },
        Layout::Interleaved {
            nstrips: 2,
            chunk_size: M2 as u32,
        },
    ] {
        let (t, mut a) = one_file(layout, 8 * M2);
        let m = &t.files[0].map;
        let small = resize(m, M2 + 1, &mut a).expect("shrink");
        assert_eq!(small.file_size, M2 + 1);
        assert!(small.mapped_size() > M2 && small.mapped_size() <= m.mapped_size());
        assert_eq!(
            resolve(&small, 0),
            resolve(m, 0),
            "shrinking keeps the data where it was"
        );
        let big = resize(m, 13 * M2, &mut a).expect("grow");
        assert_eq!(big.extents.len(), m.extents.len() + 1);
        assert!(big.mapped_size() >= 13 * M2);
        // The new extent is fresh space: no overlap with the old map.
        let mut t2 = t.clone();
        t2.files.push(famfs_shadow::ShadowFile {
            path: "x".into(),
            attrs: t.files[0].attrs,
            map: big.clone(),
        });
        let old: Vec<_> = m.device_ranges().into_iter().map(|r| r.2).collect();
        let new: Vec<_> = big
            .device_ranges()
            .into_iter()
            .skip(old.len())
            .map(|r| r.2)
            .collect();
        for o in &old {
            for n in &new {
                assert!(
                    o.dev_index != n.dev_index
                        || o.offset + o.len <= n.offset
                        || n.offset + n.len <= o.offset
                );
            }
        }
        let zero = resize(m, 0, &mut a).expect("to zero");
        assert_eq!((zero.file_size, zero.extents.len()), (0, 1));
        assert!(matches!(
            (&zero.extents, &m.extents),
            (Extents::Simple(_), Extents::Simple(_))
                | (Extents::Interleaved(_), Extents::Interleaved(_))
        ));
    }
}
