//! GET_FMAP blobs for the negative and fuzz cases, with what opening a file served with each
//! must give. The errno of a malformed blob is the spec's (famfs-fmap's `decode` applies the
//! same rules, and for a blob it accepts the declared-range rule of [`ranges_outcome`]: a file
//! whose own ranges overlap is EINVAL; a unit test pins every table entry to them), so a
//! kernel-side parser (BPF or native) that answers differently is a bug in that parser.
//!
//! Blobs are built byte by byte (native endian, like the kernel reads them) so that they can be
//! anything, not just what the model can express.

use famfs_fmap::{decode, encode, FileMap, FMAP_ALIGN};
use lab_suite::rng::Rng;
use std::ops::Range;

pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;
pub const ENODEV: i32 = 19;
pub const EIO: i32 = 5;

const M2: u64 = FMAP_ALIGN;
/// `MAX_LFS_FILESIZE` on 64-bit: the kernel refuses a larger declared size (EINVAL).
const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// Every file the malformed-blob case serves has this size (the blob's size where valid).
pub const BAD_FILE_SIZE: u64 = 2 * M2;

fn header(file_type: u8, version: u16, ext_type: u32, nextents: u32, file_size: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(32);
    v.push(file_type);
    v.push(0);
    v.extend_from_slice(&version.to_ne_bytes());
    v.extend_from_slice(&ext_type.to_ne_bytes());
    v.extend_from_slice(&nextents.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(&file_size.to_ne_bytes());
    v.extend_from_slice(&0u64.to_ne_bytes());
    v
}

fn ext(dev: u32, offset: u64, len: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&dev.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(&offset.to_ne_bytes());
    v.extend_from_slice(&len.to_ne_bytes());
    v
}

fn iext(nstrips: u32, chunk: u32, nbytes: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&nstrips.to_ne_bytes());
    v.extend_from_slice(&chunk.to_ne_bytes());
    v.extend_from_slice(&nbytes.to_ne_bytes());
    v.extend_from_slice(&0u64.to_ne_bytes());
    v
}

/// One malformed (or, for the controls, valid) blob and the errno an open must fail with
/// (0: the open succeeds).
#[derive(Debug, Clone)]
pub struct BadBlob {
    pub name: &'static str,
    pub blob: Vec<u8>,
    pub errno: i32,
}

/// The table of the open suite. Valid parts use slot 0 at device offset `off` (and the next
/// 2 MiB-aligned ranges up to `off + 4 MiB`), for files of [`BAD_FILE_SIZE`] bytes.
pub fn malformed(off: u64) -> Vec<BadBlob> {
    let s = BAD_FILE_SIZE;
    let simple = |n: u32, exts: &[(u32, u64, u64)], size: u64| {
        let mut b = header(0, 1, 0, n, size);
        for &(d, o, l) in exts {
            b.extend(ext(d, o, l));
        }
        b
    };
    let good = simple(1, &[(0, off, s)], s);
    let interleaved = |nstrips: u32, chunk: u32, nbytes: u64, strips: &[(u32, u64, u64)]| {
        let mut b = header(0, 1, 1, 1, s);
        b.extend(iext(nstrips, chunk, nbytes));
        for &(d, o, l) in strips {
            b.extend(ext(d, o, l));
        }
        b
    };
    let good_il = interleaved(2, M2 as u32, s, &[(0, off, M2), (0, off + M2, M2)]);
    let with_header = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let t = |name, blob, errno| BadBlob { name, blob, errno };
    let ext33: Vec<(u32, u64, u64)> = (0..33).map(|i| (0, off + (i % 2) * M2, M2)).collect();
    let strips33: Vec<(u32, u64, u64)> = (0..33).map(|_| (0, off, M2)).collect();
    vec![
        t("valid_simple", good.clone(), 0),
        t("valid_interleaved", good_il.clone(), 0),
        t("empty", Vec::new(), EINVAL),
        t("short_header", good[..16].to_vec(), EINVAL),
        t("short_extent", good[..32 + 12].to_vec(), EINVAL),
        t("missing_extent", simple(2, &[(0, off, s)], s), EINVAL),
        t("bad_file_type", with_header(&|b| b[0] = 3), EINVAL),
        t(
            "bad_version_0",
            with_header(&|b| b[2..4].copy_from_slice(&0u16.to_ne_bytes())),
            EINVAL,
        ),
        t(
            "bad_version_2",
            with_header(&|b| b[2..4].copy_from_slice(&2u16.to_ne_bytes())),
            EINVAL,
        ),
        t(
            "bad_ext_type",
            with_header(&|b| b[4..8].copy_from_slice(&2u32.to_ne_bytes())),
            EINVAL,
        ),
        t("extents_0", header(0, 1, 0, 0, s), ERANGE),
        t("extents_33", simple(33, &ext33, s), ERANGE),
        t("extents_33_no_body", header(0, 1, 0, 33, s), ERANGE),
        t("strips_0", interleaved(0, M2 as u32, s, &[]), EINVAL),
        t(
            "strips_33",
            interleaved(33, M2 as u32, s, &strips33),
            EINVAL,
        ),
        t(
            "misaligned_offset",
            simple(1, &[(0, off + 4096, s)], s),
            EINVAL,
        ),
        t(
            "misaligned_length",
            simple(1, &[(0, off, s + 4096)], s),
            EINVAL,
        ),
        t(
            "zero_length",
            simple(2, &[(0, off, s), (0, off, 0)], s),
            EINVAL,
        ),
        t(
            "misaligned_chunk",
            interleaved(2, (M2 + 4096) as u32, s, &[(0, off, s), (0, off + s, s)]),
            EINVAL,
        ),
        t(
            "zero_chunk",
            interleaved(2, 0, s, &[(0, off, M2), (0, off + M2, M2)]),
            EINVAL,
        ),
        t(
            "misaligned_nbytes",
            interleaved(2, M2 as u32, s + 4096, &[(0, off, s), (0, off + s, s)]),
            EINVAL,
        ),
        t(
            "strip_too_short",
            interleaved(2, M2 as u32, 2 * s, &[(0, off, M2), (0, off + M2, M2)]),
            EINVAL,
        ),
        t("not_covering_size", simple(1, &[(0, off, M2)], s), EINVAL),
        t(
            "not_covering_size_il",
            interleaved(1, M2 as u32, M2, &[(0, off, M2)]),
            EINVAL,
        ),
        t("devindex_24", simple(1, &[(24, off, s)], s), EINVAL),
        t("devindex_max", simple(1, &[(u32::MAX, off, s)], s), EINVAL),
        t(
            "strip_devindex_24",
            interleaved(2, M2 as u32, s, &[(0, off, M2), (24, off + M2, M2)]),
            EINVAL,
        ),
        t(
            "offset_overflow",
            simple(1, &[(0, u64::MAX / M2 * M2, s)], s),
            EINVAL,
        ),
        // Declared ranges: an fmap whose own ranges overlap (two extents on the same device
        // bytes) is EINVAL right after the parse. The third extent, past EOF (declared as a
        // slot, not as a range), names a slot the mount does not have: a kernel that found the
        // overlap only later would first send GET_DAXDEV for it and fail with ENODEV.
        t(
            "overlapping_extents",
            simple(3, &[(0, off, M2), (0, off, M2), (5, off + M2, M2)], s),
            EINVAL,
        ),
        t(
            "trailing_bytes",
            with_header(&|b| b.extend([0u8; 8])),
            EINVAL,
        ),
        t(
            "trailing_byte_il",
            {
                let mut b = good_il.clone();
                b.push(0);
                b
            },
            EINVAL,
        ),
    ]
}

/// What opening a file whose GET_FMAP reply carries `blob` must give, for a file whose
/// attributes say `i_size`, on a mount whose device table resolves the slots `present` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    Fails(i32),
    Opens(FileMap),
}

pub fn expected_open(blob: &[u8], i_size: u64, present: &dyn Fn(u32) -> bool) -> OpenOutcome {
    let map = match decode(blob) {
        Ok(m) => m,
        Err(e) => return OpenOutcome::Fails(e.errno()),
    };
    if map.file_size > MAX_LFS_FILESIZE {
        return OpenOutcome::Fails(EINVAL);
    }
    // Declared ranges: the file's own ranges overlapping is EINVAL right after the parse.
    if ranges_outcome(&map, &[]).is_err() {
        return OpenOutcome::Fails(EINVAL);
    }
    if map
        .device_ranges()
        .iter()
        .any(|(_, _, r)| !present(r.dev_index))
    {
        return OpenOutcome::Fails(ENODEV);
    }
    if map.file_size != i_size {
        return OpenOutcome::Fails(EIO);
    }
    OpenOutcome::Opens(map)
}

pub const EBUSY: i32 = 16;

/// The device ranges `[start, end)` per slot the lab's ops declare for `map` (series v2
/// "declared ranges", kernels/famfs-bpf/README.md): every simple extent, and for interleaved
/// extents the chunks each strip holds, unless the range starts at or past EOF.
pub fn declared_ranges(map: &FileMap) -> Vec<(u32, Range<u64>)> {
    let mut out = Vec::new();
    let mut base = 0u64;
    match &map.extents {
        famfs_fmap::Extents::Simple(v) => {
            for e in v {
                if e.len > 0 && base < map.file_size {
                    out.push((e.dev_index, e.offset..e.offset.saturating_add(e.len)));
                }
                base = base.saturating_add(e.len);
            }
        }
        famfs_fmap::Extents::Interleaved(v) => {
            for ie in v {
                let c = u64::from(ie.chunk_size);
                let ns = ie.strips.len() as u64;
                let chunks = if c == 0 { 0 } else { ie.nbytes.div_ceil(c) };
                for (s, st) in ie.strips.iter().enumerate() {
                    let s = s as u64;
                    let need = if s >= chunks {
                        0
                    } else {
                        (chunks - s).div_ceil(ns)
                    };
                    let file_offset = base.saturating_add(s * c);
                    if need > 0 && file_offset < map.file_size {
                        out.push((st.dev_index, st.offset..st.offset.saturating_add(need * c)));
                    }
                }
                base = base.saturating_add(ie.nbytes);
            }
        }
    }
    out
}

/// What the open of a file the model lets open gives with declared ranges, next to the
/// ranges of the live files `live`: EINVAL if its own ranges overlap, EBUSY if they overlap a
/// live file's, else it opens (and its ranges are live after).
pub fn ranges_outcome(
    map: &FileMap,
    live: &[(u32, Range<u64>)],
) -> std::result::Result<Vec<(u32, Range<u64>)>, i32> {
    let mine = declared_ranges(map);
    let hit = |a: &(u32, Range<u64>), b: &(u32, Range<u64>)| {
        a.0 == b.0 && a.1.start < b.1.end && b.1.start < a.1.end
    };
    for (i, r) in mine.iter().enumerate() {
        if mine[..i].iter().any(|o| hit(r, o)) {
            return Err(EINVAL);
        }
    }
    if mine.iter().any(|r| live.iter().any(|o| hit(r, o))) {
        return Err(EBUSY);
    }
    Ok(mine)
}

/// What the fuzz generator draws from.
#[derive(Debug, Clone)]
pub struct FuzzEnv {
    /// Size of every fuzzed file (what GETATTR says).
    pub file_size: u64,
    /// Slots the device table resolves.
    pub slots: Vec<u32>,
    /// Device offsets valid maps mostly use (inside the host's fill).
    pub area: Range<u64>,
    /// Size of the smallest dax device behind `slots`: some maps point past it.
    pub dev_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzKind {
    Valid,
    Mutated,
    Random,
}

/// Blob number `i` of the run seeded `seed`: the same pair gives the same blob.
pub fn fuzz_blob(seed: u64, i: u64, env: &FuzzEnv) -> (FuzzKind, Vec<u8>) {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0xd134_2543_de82_ef95));
    match r.below(10) {
        0..=3 => (FuzzKind::Valid, encode(&valid_map(&mut r, env))),
        4..=7 => {
            let mut b = encode(&valid_map(&mut r, env));
            mutate(&mut r, &mut b);
            (FuzzKind::Mutated, b)
        }
        _ => (FuzzKind::Random, random_blob(&mut r)),
    }
}

/// A map that passes the spec's rules; most of the time on present slots, inside the area and
/// of the file's size.
pub fn valid_map(r: &mut Rng, env: &FuzzEnv) -> FileMap {
    use famfs_fmap::{Extents, FileType, InterleavedExtent, SimpleExtent};
    let area_chunks = ((env.area.end - env.area.start) / M2).max(1);
    let offset = |r: &mut Rng, len: u64| -> u64 {
        if r.chance(5) {
            // at or past the device's end: access must fail, never map
            (env.dev_size / M2).saturating_sub(r.below(2)) * M2
        } else {
            let max = area_chunks.saturating_sub(len / M2).max(1);
            env.area.start + r.below(max) * M2
        }
    };
    let slot = |r: &mut Rng| {
        if r.chance(4) {
            r.below(24) as u32
        } else {
            *r.pick(&env.slots)
        }
    };
    let size = if r.chance(5) {
        r.below(4) * M2 + r.below(3) * 4096
    } else {
        env.file_size
    };
    let need = size.max(1).div_ceil(M2);
    let extents = if r.chance(50) {
        let n = r.below(need.min(4)) + 1;
        let mut v = Vec::new();
        let mut left = need;
        for k in 0..n {
            let chunks = if k + 1 == n {
                left.max(1)
            } else {
                (r.below(left.max(1)) + 1).min(left.max(1))
            };
            left = left.saturating_sub(chunks);
            let len = chunks * M2;
            v.push(SimpleExtent {
                dev_index: slot(r),
                offset: offset(r, len),
                len,
            });
        }
        Extents::Simple(v)
    } else {
        let chunk = *r.pick(&[M2, 2 * M2]);
        let nstrips = r.below(4) as usize + 1;
        let nbytes = (need * M2).div_ceil(chunk) * chunk;
        let strips = (0..nstrips)
            .map(|s| {
                let len = famfs_fmap::strip_need(nbytes, chunk, nstrips, s).max(chunk);
                SimpleExtent {
                    dev_index: slot(r),
                    offset: offset(r, len),
                    len,
                }
            })
            .collect();
        Extents::Interleaved(vec![InterleavedExtent {
            chunk_size: chunk as u32,
            nbytes,
            strips,
        }])
    };
    FileMap {
        file_type: FileType::Regular,
        file_size: size,
        extents,
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    23,
    24,
    32,
    33,
    4096,
    M2,
    M2 + 4096,
    u32::MAX as u64,
    u64::MAX,
];

fn mutate(r: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..=r.below(2) {
        match r.below(5) {
            0 if !b.is_empty() => {
                let i = r.below(b.len() as u64) as usize;
                b[i] ^= 1 << r.below(8);
            }
            1 if b.len() >= 4 => {
                let i = (r.below(b.len() as u64 / 4) * 4) as usize;
                let v = *r.pick(INTERESTING) as u32;
                b[i..i + 4].copy_from_slice(&v.to_ne_bytes());
            }
            2 if b.len() >= 8 => {
                let i = (r.below(b.len() as u64 / 8) * 8) as usize;
                let v = *r.pick(INTERESTING);
                b[i..i + 8].copy_from_slice(&v.to_ne_bytes());
            }
            3 => {
                let n = r.below(b.len() as u64 + 1) as usize;
                b.truncate(n);
            }
            _ => {
                for _ in 0..=r.below(48) {
                    b.push(r.next_u64() as u8);
                }
            }
        }
    }
}

fn random_blob(r: &mut Rng) -> Vec<u8> {
    let len = r.below(400) as usize;
    let mut b: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
    if r.chance(50) && b.len() >= 32 {
        // a plausible header, so that the parser gets past it
        b[0] = r.below(3) as u8;
        b[2..4].copy_from_slice(&1u16.to_ne_bytes());
        b[4..8].copy_from_slice(&(r.below(2) as u32).to_ne_bytes());
        b[8..12].copy_from_slice(&(r.below(34) as u32).to_ne_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_errno_is_the_models() {
        let table = malformed(16 << 20);
        let mut names: Vec<_> = table.iter().map(|b| b.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), table.len(), "names are unique");
        for b in &table {
            let got = match decode(&b.blob) {
                Ok(m) => {
                    assert_eq!(m.file_size, BAD_FILE_SIZE, "{}", b.name);
                    ranges_outcome(&m, &[]).err().unwrap_or(0)
                }
                Err(e) => e.errno(),
            };
            assert_eq!(got, b.errno, "{}: {:?}", b.name, decode(&b.blob));
            let want = if b.errno == 0 {
                OpenOutcome::Opens(decode(&b.blob).unwrap())
            } else {
                OpenOutcome::Fails(b.errno)
            };
            assert_eq!(expected_open(&b.blob, BAD_FILE_SIZE, &|s| s == 0), want);
        }
        for want in [
            "short_header",
            "extents_33",
            "strips_33",
            "misaligned_chunk",
            "devindex_24",
            "overlapping_extents",
        ] {
            assert!(names.contains(&want), "{want} is in the table");
        }
    }

    #[test]
    fn expected_open_orders_parse_devices_then_size() {
        let table = malformed(16 << 20);
        let good = &table[0].blob;
        assert_eq!(
            expected_open(good, BAD_FILE_SIZE, &|_| false),
            OpenOutcome::Fails(ENODEV)
        );
        assert_eq!(
            expected_open(good, 4096, &|_| true),
            OpenOutcome::Fails(EIO)
        );
        assert_eq!(
            expected_open(&[], 4096, &|_| false),
            OpenOutcome::Fails(EINVAL)
        );
    }

    fn env() -> FuzzEnv {
        FuzzEnv {
            file_size: 4 << 20,
            slots: vec![0, 1],
            area: (16 << 20)..(48 << 20),
            dev_size: 1 << 30,
        }
    }

    #[test]
    fn fuzz_is_deterministic_and_mixes_outcomes() {
        let e = env();
        assert_eq!(fuzz_blob(7, 3, &e), fuzz_blob(7, 3, &e));
        let (mut opens, mut fails, mut erange, mut enodev, mut eio) = (0, 0, 0, 0, 0);
        for i in 0..2000 {
            let (_, b) = fuzz_blob(1, i, &e);
            match expected_open(&b, e.file_size, &|s| e.slots.contains(&s)) {
                OpenOutcome::Opens(_) => opens += 1,
                OpenOutcome::Fails(ERANGE) => erange += 1,
                OpenOutcome::Fails(ENODEV) => enodev += 1,
                OpenOutcome::Fails(EIO) => eio += 1,
                OpenOutcome::Fails(_) => fails += 1,
            }
        }
        for (what, n) in [
            ("opens", opens),
            ("EINVAL", fails),
            ("ERANGE", erange),
            ("ENODEV", enodev),
            ("EIO", eio),
        ] {
            assert!(n > 10, "{what}: {n} of 2000");
        }
    }

    #[test]
    fn valid_maps_are_valid() {
        let e = env();
        let mut r = Rng::new(42);
        for _ in 0..500 {
            let m = valid_map(&mut r, &e);
            famfs_fmap::validate(&m).unwrap_or_else(|err| panic!("{err}: {m:?}"));
        }
    }
}
