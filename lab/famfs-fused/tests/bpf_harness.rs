//! The BPF famfs logic (bpf/famfs_logic.bpf.h: the parse and resolve code of the `famfs`,
//! `famfs_maplookup` and `evil_oob` ops) run in THIS host's kernel as BPF_PROG_TYPE_SYSCALL
//! programs (bpf/test_harness.bpf.c: global buffers stand in for the kfuncs), and compared with
//! the Rust model: same errno for every blob, same meta bytes as `meta::build`, same devices and
//! size, same mapping as `famfs_fmap::resolve` for every offset. It also shows the verifier
//! accepts the loops. Needs bpf(2) with CAP_BPF or CAP_SYS_ADMIN: where a probe shows that is
//! missing (an unprivileged container), each test prints `SKIP: <test>: <why>` and passes.

use famfs_fmap::{
    decode, encode, resolve, strip_need, Extents, FileMap, FileType, InterleavedExtent,
    SimpleExtent, FMAP_ALIGN,
};
use famfs_fused::bpf::skel::test_harness::{TestHarnessSkel, TestHarnessSkelBuilder};
use famfs_fused::meta;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::ProgramInput;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::RefCell;
use std::mem::MaybeUninit;

const M2: u64 = FMAP_ALIGN;

fn load() -> TestHarnessSkel<'static> {
    famfs_fused::bpf::capture_libbpf_log(false);
    let storage = Box::leak(Box::new(MaybeUninit::uninit()));
    let open = TestHarnessSkelBuilder::default()
        .open(storage)
        .unwrap_or_else(|e| panic!("opening the harness: {e}\n{}", famfs_fused::bpf::take_log()));
    open.load().unwrap_or_else(|e| {
        panic!(
            "loading the BPF harness into the host kernel failed (this test needs root and bpf(2)): {e}\n{}",
            famfs_fused::bpf::take_log()
        )
    })
}

/// Whether this test cannot use bpf(2) here (then it has printed why).
fn no_bpf() -> bool {
    famfs_fused::probe::skip(famfs_fused::probe::bpf_unavailable())
}

fn run(prog: &libbpf_rs::ProgramMut<'_>) -> i32 {
    let out = prog
        .test_run(ProgramInput::default())
        .expect("BPF_PROG_TEST_RUN");
    out.return_value as i32
}

/// BPF parse of `blob` with a `meta_size` buffer: (return, meta bytes, device bitmap, size).
fn bpf_parse(
    skel: &mut TestHarnessSkel<'_>,
    blob: &[u8],
    meta_size: u32,
) -> (i32, Vec<u8>, u32, u64) {
    {
        let bss = skel.maps.bss_data.as_deref_mut().expect("bss mmapped");
        bss.blob_buf[..blob.len()].copy_from_slice(blob);
        bss.blob_size = blob.len() as u32;
        bss.meta_buf.fill(0);
        bss.meta_size = meta_size;
        bss.dev_bitmap = 0;
        bss.parsed_size = 0;
    }
    let ret = run(&skel.progs.harness_parse);
    let bss = skel.maps.bss_data.as_deref().expect("bss mmapped");
    (
        ret,
        bss.meta_buf[..meta_size as usize].to_vec(),
        bss.dev_bitmap,
        bss.parsed_size,
    )
}

fn bpf_resolve(skel: &mut TestHarnessSkel<'_>, off: u64) -> Result<famfs_fmap::Mapping, i32> {
    skel.maps.bss_data.as_deref_mut().expect("bss").req_offset = off;
    let ret = run(&skel.progs.harness_resolve);
    let bss = skel.maps.bss_data.as_deref().expect("bss");
    if ret == 0 {
        Ok(famfs_fmap::Mapping {
            dev_index: bss.out_dev_index,
            dev_offset: bss.out_dev_offset,
            length: bss.out_length,
        })
    } else {
        Err(ret)
    }
}

fn devs(map: &FileMap) -> u32 {
    map.device_ranges()
        .iter()
        .fold(0, |b, (_, _, r)| b | 1 << r.dev_index)
}

fn valid_map() -> impl Strategy<Value = FileMap> {
    let simple = (0u32..24, 0u64..4096, 1u64..8).prop_map(|(d, o, l)| SimpleExtent {
        dev_index: d,
        offset: o * M2,
        len: l * M2,
    });
    let ilv = (1usize..=6, 1u32..=3, 1u64..=24).prop_flat_map(|(ns, c, nb)| {
        let (chunk, nbytes) = (c * M2 as u32, nb * M2);
        proptest::collection::vec((0u32..24, 0u64..4096, 0u64..3), ns).prop_map(move |v| {
            InterleavedExtent {
                chunk_size: chunk,
                nbytes,
                strips: v
                    .into_iter()
                    .enumerate()
                    .map(|(s, (d, o, x))| SimpleExtent {
                        dev_index: d,
                        offset: o * M2,
                        len: strip_need(nbytes, u64::from(chunk), ns, s).max(M2) + x * M2,
                    })
                    .collect(),
            }
        })
    });
    let ext = prop_oneof![
        proptest::collection::vec(simple, 1..=32).prop_map(Extents::Simple),
        proptest::collection::vec(ilv, 1..=4).prop_map(Extents::Interleaved),
    ];
    (ext, any::<u64>()).prop_map(|(extents, pick)| {
        let mut m = FileMap {
            file_type: FileType::Regular,
            file_size: 0,
            extents,
        };
        m.file_size = pick % (m.mapped_size() + 1);
        m
    })
}

#[test]
fn bpf_parse_and_resolve_agree_with_the_rust_model() {
    if no_bpf() {
        return;
    }
    let cell = RefCell::new(load());
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let strat = (valid_map(), proptest::collection::vec(any::<u64>(), 16));
    runner
        .run(&strat, |(map, picks)| {
            let mut skel = cell.borrow_mut();
            let blob = encode(&map);
            let ms = meta::meta_size(&map);
            let (ret, meta_bytes, bitmap, size) = bpf_parse(&mut skel, &blob, ms);
            prop_assert_eq!(ret, 0, "parse of a valid map");
            prop_assert_eq!(meta_bytes, meta::build(&map), "meta bytes");
            prop_assert_eq!(bitmap, devs(&map));
            prop_assert_eq!(size, map.file_size);
            let span = map.mapped_size() + 2 * M2;
            for p in picks {
                let off = p % span;
                match resolve(&map, off) {
                    Some(m) => {
                        prop_assert_eq!(bpf_resolve(&mut skel, off), Ok(m), "offset {:#x}", off)
                    }
                    None => prop_assert_eq!(
                        bpf_resolve(&mut skel, off),
                        Err(-libc::EINVAL),
                        "offset {:#x}",
                        off
                    ),
                }
            }
            // a meta buffer one byte short is refused
            let (ret, ..) = bpf_parse(&mut skel, &blob, ms - 1);
            prop_assert_eq!(ret, -libc::EINVAL);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bpf_parse_errnos_agree_with_decode_on_broken_blobs() {
    if no_bpf() {
        return;
    }
    let cell = RefCell::new(load());
    let mut runner = TestRunner::new(Config {
        cases: 400,
        ..Config::default()
    });
    let strat = (
        valid_map(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        any::<Option<usize>>(),
    );
    runner
        .run(&strat, |(map, flips, cut)| {
            let mut skel = cell.borrow_mut();
            let mut blob = encode(&map);
            for (i, v) in flips {
                let n = blob.len();
                // bias towards the header and the first extents, where the counts live
                blob[i % n.min(96)] = v;
            }
            if let Some(c) = cut {
                let n = blob.len();
                blob.truncate(c % (n + 1));
            }
            let want = match decode(&blob) {
                Ok(m) => {
                    let (ret, meta_bytes, ..) = bpf_parse(&mut skel, &blob, meta::meta_size(&m));
                    prop_assert_eq!(ret, 0);
                    prop_assert_eq!(meta_bytes, meta::build(&m));
                    return Ok(());
                }
                Err(e) => -e.errno(),
            };
            let (ret, ..) = bpf_parse(&mut skel, &blob, meta::MAX_SIZE as u32);
            prop_assert_eq!(ret, want, "blob {:?}", decode(&blob));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bpf_resolve_refuses_a_meta_without_magic() {
    if no_bpf() {
        return;
    }
    let mut skel = load();
    let (ret, ..) = bpf_parse(&mut skel, &[0u8; 8], 64);
    assert_eq!(ret, -libc::EINVAL);
    assert_eq!(bpf_resolve(&mut skel, 0), Err(-libc::EIO));
}

/// The verifier's work for the parse and resolve programs stays well under its 1M-instruction
/// limit (the kernel's ops run the same code; a verifier rejection there would be hard to debug).
#[test]
fn verifier_effort_has_margin() {
    if no_bpf() {
        return;
    }
    famfs_fused::bpf::capture_libbpf_log(false);
    let storage = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = TestHarnessSkelBuilder::default()
        .open(storage)
        .expect("open");
    for mut p in open.open_object_mut().progs_mut() {
        p.set_log_level(4); // BPF_LOG_STATS
    }
    let _skel = open.load().expect("load");
    let log = famfs_fused::bpf::take_log();
    let processed: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            l.strip_prefix("processed ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    println!("verifier: {processed:?} insns processed\n{log}");
    assert_eq!(processed.len(), 2, "one stats line per program:\n{log}");
    // bpf_for() in parse: ~2.3k on 6.18 (plain nested loops needed ~242k); resolve ~2.1k.
    assert!(processed.iter().all(|n| *n < 50_000), "{processed:?}");
}
