//! What an fmap file must read, computed without asking the host: before boot the host fills
//! the start (and the tail) of every CXL backing file's share of each region with the pattern
//! `pattern::byte(seed = memdev id, pos = backing file offset)`; a file offset then goes
//! famfs-fmap resolve -> (slot, dax offset) -> the slot's dax device -> `DaxDevice::backing_of`
//! -> (memdev, backing offset) -> the expected byte.
//!
//! Areas of every dax device (dax offsets) the suites use:
//! - `[0, 16 MiB)`: the smoke suite's own patterns (it writes at 4 and 6 MiB);
//! - [`READ_AREA`]: files that are only read; nothing may write here, so the fill pattern is
//!   what every case expects;
//! - [`WRITE_AREA`]: files the cases write; a case writes its own seed before it reads back;
//! - [`CANARY_AREA`]: never in a file; the security suite checks that it still holds the fill
//!   pattern after hostile ops tried to reach it;
//! - the device's last [`FILL_TAIL`] bytes: filled as well, for the same check at the end;
//! - [`STRESS_AREA`]: the stress suite's read files (filled only for runs with stress).

use crate::devices::DaxDevice;
use crate::pattern;
use crate::verify::VerifyRange;
use famfs_fmap::{
    resolve, strip_need, Extents, FileMap, FileType, InterleavedExtent, SimpleExtent, FMAP_ALIGN,
};
use std::collections::BTreeMap;
use std::ops::Range;

pub const MIB: u64 = 1 << 20;
/// Dax offsets of files that are only read.
pub const READ_AREA: Range<u64> = (16 * MIB)..(48 * MIB);
/// Dax offsets of files the cases write.
pub const WRITE_AREA: Range<u64> = (48 * MIB)..(72 * MIB);
/// Dax offsets that no file uses: a hostile mapping must not reach them.
pub const CANARY_AREA: Range<u64> = (72 * MIB)..(80 * MIB);
/// The host fills dax offsets `[0, FILL_HEAD)` of every dax device ...
pub const FILL_HEAD: u64 = 80 * MIB;
/// The stress suite's read files: a device page must never belong to two files (fs-dax keeps
/// one owner per page), so its 64 files get their own 160 MiB, filled only when stress runs.
pub const STRESS_AREA: Range<u64> = FILL_HEAD..(240 * MIB);
pub const STRESS_FILL_HEAD: u64 = STRESS_AREA.end;
/// ... and the last `FILL_TAIL` bytes of every device's share of a region.
pub const FILL_TAIL: u64 = 2 * MIB;

// The areas do not overlap, stay inside the fill and above the smoke suite's bytes.
const _: () = assert!(READ_AREA.start >= 16 * MIB);
const _: () = assert!(READ_AREA.end <= WRITE_AREA.start);
const _: () = assert!(WRITE_AREA.end <= CANARY_AREA.start);
const _: () = assert!(CANARY_AREA.end <= FILL_HEAD);
const _: () = assert!(STRESS_AREA.start >= FILL_HEAD);

/// The seed of the fill pattern in `memdev`'s backing file.
pub fn fill_seed(memdev: &str) -> &str {
    memdev
}

/// The dax device each device slot (fmap devindex) of a mount names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots(pub BTreeMap<u32, DaxDevice>);

impl Slots {
    pub fn get(&self, slot: u32) -> Option<&DaxDevice> {
        self.0.get(&slot)
    }
}

/// File bytes `[file_off, file_off + len)` that live contiguously in one backing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub file_off: u64,
    pub len: u64,
    pub slot: u32,
    pub dax: String,
    pub dax_off: u64,
    pub memdev: String,
    pub backing_off: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    #[error("file offset {0:#x} is not mapped by the fmap")]
    Unmapped(u64),
    #[error("the fmap uses slot {0}, which names no dax device of this run")]
    NoSlot(u32),
    #[error("{dax}+{off:#x} is outside the dax device")]
    OutsideDevice { dax: String, off: u64 },
}

/// Where file bytes `[off, off + len)` live, piece by piece. Bytes past EOF in the mapped
/// extents resolve too (the last page of a file maps whole).
pub fn pieces(map: &FileMap, slots: &Slots, off: u64, len: u64) -> Result<Vec<Piece>, ExpectError> {
    let whole = FileMap {
        file_size: map.file_size.max(map.mapped_size()),
        ..map.clone()
    };
    let mut out: Vec<Piece> = Vec::new();
    let end = off.saturating_add(len);
    let mut pos = off;
    while pos < end {
        let m = resolve(&whole, pos).ok_or(ExpectError::Unmapped(pos))?;
        let dax = slots
            .get(m.dev_index)
            .ok_or(ExpectError::NoSlot(m.dev_index))?;
        let run = m.length.min(end - pos);
        let mut done = 0;
        while done < run {
            let dax_off = m.dev_offset + done;
            let b = dax
                .backing_of(dax_off)
                .ok_or_else(|| ExpectError::OutsideDevice {
                    dax: dax.name.clone(),
                    off: dax_off,
                })?;
            let n = b.run.min(run - done);
            let p = Piece {
                file_off: pos + done,
                len: n,
                slot: m.dev_index,
                dax: dax.name.clone(),
                dax_off,
                memdev: b.memdev,
                backing_off: b.offset,
            };
            match out.last_mut() {
                Some(last)
                    if last.memdev == p.memdev
                        && last.dax == p.dax
                        && last.file_off + last.len == p.file_off
                        && last.dax_off + last.len == p.dax_off
                        && last.backing_off + last.len == p.backing_off =>
                {
                    last.len += p.len
                }
                _ => out.push(p),
            }
            done += n;
        }
        pos += run;
    }
    Ok(out)
}

/// The bytes of `[off, off + len)` when piece `p` holds pattern `seed(p)` (at backing offsets).
pub fn expected_with(
    map: &FileMap,
    slots: &Slots,
    off: u64,
    len: u64,
    seed: &dyn Fn(&Piece) -> String,
) -> Result<Vec<u8>, ExpectError> {
    let mut out = vec![0u8; usize::try_from(len).unwrap_or(0)];
    for p in pieces(map, slots, off, len)? {
        let at = (p.file_off - off) as usize;
        pattern::fill_into(&seed(&p), p.backing_off, &mut out[at..at + p.len as usize]);
    }
    Ok(out)
}

/// The bytes of `[off, off + len)` as the host filled them.
pub fn expected_fill(
    map: &FileMap,
    slots: &Slots,
    off: u64,
    len: u64,
) -> Result<Vec<u8>, ExpectError> {
    expected_with(map, slots, off, len, &|p| fill_seed(&p.memdev).to_string())
}

/// The bytes of `[off, off + len)` once a case wrote pattern `seed` there (at backing offsets,
/// so the host can check them without knowing the file).
pub fn expected_seed(
    map: &FileMap,
    slots: &Slots,
    off: u64,
    len: u64,
    seed: &str,
) -> Result<Vec<u8>, ExpectError> {
    expected_with(map, slots, off, len, &|_| seed.to_string())
}

/// The backing ranges of file bytes `[off, off + len)`, each to hold pattern `seed` (the fill
/// pattern if `None`), for the host's check after the case.
pub fn verify_ranges(
    map: &FileMap,
    slots: &Slots,
    off: u64,
    len: u64,
    seed: Option<&str>,
) -> Result<Vec<VerifyRange>, ExpectError> {
    Ok(pieces(map, slots, off, len)?
        .into_iter()
        .map(|p| VerifyRange {
            seed: seed.unwrap_or(fill_seed(&p.memdev)).to_string(),
            memdev: p.memdev,
            offset: p.backing_off,
            len: p.len,
        })
        .collect())
}

/// The backing ranges of dax bytes `[off, off + len)` of `dax`, to hold the fill pattern.
pub fn dax_fill_ranges(
    dax: &DaxDevice,
    off: u64,
    len: u64,
) -> Result<Vec<VerifyRange>, ExpectError> {
    dax_ranges(dax, off, len, None)
}

/// The backing ranges of dax bytes `[off, off + len)` of `dax`, in dax order, each to hold
/// pattern `seed` (the fill pattern if `None`) at its backing offsets.
pub fn dax_ranges(
    dax: &DaxDevice,
    off: u64,
    len: u64,
    seed: Option<&str>,
) -> Result<Vec<VerifyRange>, ExpectError> {
    let mut out = Vec::new();
    let mut pos = off;
    while pos < off + len {
        let b = dax
            .backing_of(pos)
            .ok_or_else(|| ExpectError::OutsideDevice {
                dax: dax.name.clone(),
                off: pos,
            })?;
        let n = b.run.min(off + len - pos);
        out.push(VerifyRange {
            seed: seed.unwrap_or(fill_seed(&b.memdev)).to_string(),
            memdev: b.memdev,
            offset: b.offset,
            len: n,
        });
        pos += n;
    }
    Ok(crate::verify::coalesce(out))
}

/// The bytes `ranges` (consecutive in dax order) must hold, one after the other.
pub fn range_bytes(ranges: &[VerifyRange]) -> Vec<u8> {
    let total: u64 = ranges.iter().map(|r| r.len).sum();
    let mut out = vec![0u8; usize::try_from(total).unwrap_or(0)];
    let mut at = 0usize;
    for r in ranges {
        let n = r.len as usize;
        pattern::fill_into(&r.seed, r.offset, &mut out[at..at + n]);
        at += n;
    }
    out
}

/// File offsets worth checking: the first and last byte of every extent and of every
/// interleave chunk (below `file_size`), sorted.
pub fn boundaries(map: &FileMap) -> Vec<u64> {
    let mut v = Vec::new();
    let mut base = 0u64;
    match &map.extents {
        Extents::Simple(exts) => {
            for e in exts {
                v.extend([base, base + e.len - 1]);
                base += e.len;
            }
        }
        Extents::Interleaved(exts) => {
            for e in exts {
                let c = u64::from(e.chunk_size).max(1);
                let mut k = 0;
                while k < e.nbytes {
                    v.extend([base + k, base + (k + c).min(e.nbytes) - 1]);
                    k += c;
                }
                base += e.nbytes;
            }
        }
    }
    v.retain(|&o| o < map.file_size);
    v.sort_unstable();
    v.dedup();
    v
}

/// Hands out 2 MiB-aligned device ranges of one area, per slot, bottom up.
#[derive(Debug, Clone)]
pub struct AreaAlloc {
    next: BTreeMap<u32, u64>,
    area: Range<u64>,
}

impl AreaAlloc {
    pub fn new(area: Range<u64>) -> AreaAlloc {
        AreaAlloc {
            next: BTreeMap::new(),
            area,
        }
    }

    /// `len` bytes (rounded up to 2 MiB) on `slot`; None when the area is full.
    pub fn take(&mut self, slot: u32, len: u64) -> Option<u64> {
        let len = len.div_ceil(FMAP_ALIGN) * FMAP_ALIGN;
        let at = *self.next.get(&slot).unwrap_or(&self.area.start);
        let end = at.checked_add(len)?;
        if end > self.area.end {
            return None;
        }
        self.next.insert(slot, end);
        Some(at)
    }

    /// The first offset not handed out on `slot`.
    pub fn high_water(&self, slot: u32) -> u64 {
        *self.next.get(&slot).unwrap_or(&self.area.start)
    }
}

/// A simple map with one extent per `(slot, len)`, allocated from `alloc`.
pub fn simple_map(alloc: &mut AreaAlloc, exts: &[(u32, u64)], size: u64) -> Option<FileMap> {
    let mut v = Vec::new();
    for &(slot, len) in exts {
        v.push(SimpleExtent {
            dev_index: slot,
            offset: alloc.take(slot, len)?,
            len: len.div_ceil(FMAP_ALIGN) * FMAP_ALIGN,
        });
    }
    Some(FileMap {
        file_type: FileType::Regular,
        file_size: size,
        extents: Extents::Simple(v),
    })
}

/// One interleaved extent: `nbytes` in `chunk`-byte chunks over strips on `slots` (in order).
#[derive(Debug, Clone)]
pub struct Stripe<'a> {
    pub chunk: u64,
    pub nbytes: u64,
    pub slots: &'a [u32],
}

/// An interleaved map, strips allocated from `alloc`.
pub fn interleaved_map(alloc: &mut AreaAlloc, exts: &[Stripe<'_>], size: u64) -> Option<FileMap> {
    let mut v = Vec::new();
    for e in exts {
        let n = e.slots.len();
        let mut strips = Vec::new();
        for (s, &slot) in e.slots.iter().enumerate() {
            let len = strip_need(e.nbytes, e.chunk, n, s).max(e.chunk);
            strips.push(SimpleExtent {
                dev_index: slot,
                offset: alloc.take(slot, len)?,
                len,
            });
        }
        v.push(InterleavedExtent {
            chunk_size: u32::try_from(e.chunk).ok()?,
            nbytes: e.nbytes,
            strips,
        });
    }
    Some(FileMap {
        file_type: FileType::Regular,
        file_size: size,
        extents: Extents::Interleaved(v),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Target;
    use famfs_fmap::validate;

    fn dax(name: &str, ways: u64) -> DaxDevice {
        DaxDevice {
            name: name.into(),
            region: "r".into(),
            kernel_region: "region0".into(),
            size: 1 << 30,
            hpa: 0x1000_0000,
            region_hpa: 0x1000_0000,
            ways,
            granularity: 4096,
            targets: (0..ways)
                .map(|i| Target {
                    memdev: format!("mem{i}"),
                    dpa: 512 << 20,
                })
                .collect(),
        }
    }

    fn slots(devs: &[DaxDevice]) -> Slots {
        Slots(
            devs.iter()
                .enumerate()
                .map(|(i, d)| (i as u32, d.clone()))
                .collect(),
        )
    }

    #[test]
    fn simple_extents_out_of_order_resolve_piece_by_piece() {
        let s = slots(&[dax("dax0.0", 1)]);
        let map = FileMap {
            file_type: FileType::Regular,
            file_size: 4 * MIB - 100,
            extents: Extents::Simple(vec![
                SimpleExtent {
                    dev_index: 0,
                    offset: 20 * MIB,
                    len: 2 * MIB,
                },
                SimpleExtent {
                    dev_index: 0,
                    offset: 16 * MIB,
                    len: 2 * MIB,
                },
            ]),
        };
        let p = pieces(&map, &s, 2 * MIB - 10, 20).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].backing_off, p[0].len),
            ((512 << 20) + 22 * MIB - 10, 10)
        );
        assert_eq!((p[1].backing_off, p[1].len), (16 * MIB + (512 << 20), 10));
        // past EOF but inside the last extent: still resolves (the last page maps whole)
        assert!(pieces(&map, &s, 4 * MIB - 50, 10).is_ok());
        assert_eq!(
            pieces(&map, &s, 4 * MIB, 1),
            Err(ExpectError::Unmapped(4 * MIB))
        );
        let want = expected_fill(&map, &s, 2 * MIB - 10, 20).unwrap();
        assert_eq!(want[0], pattern::byte("mem0", (512 << 20) + 22 * MIB - 10));
        assert_eq!(want[10], pattern::byte("mem0", (512 << 20) + 16 * MIB));
    }

    #[test]
    fn interleave_over_a_cxl_interleaved_device_walks_both_levels() {
        let s = slots(&[dax("dax0.0", 1), dax("dax2.0", 2)]);
        let mut a = AreaAlloc::new(READ_AREA);
        let map = interleaved_map(
            &mut a,
            &[Stripe {
                chunk: 2 * MIB,
                nbytes: 6 * MIB,
                slots: &[0, 1, 0],
            }],
            6 * MIB,
        )
        .unwrap();
        validate(&map).unwrap();
        // chunk 1 -> strip 1 on slot 1 (2-way CXL interleave, 4 KiB granules)
        let p = pieces(&map, &s, 2 * MIB, 8192).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].memdev.as_str(), p[0].len), ("mem0", 4096));
        assert_eq!((p[1].memdev.as_str(), p[1].len), ("mem1", 4096));
        assert_eq!(p[0].dax_off, READ_AREA.start);
        // chunk 2 -> strip 2, the second allocation on slot 0
        let p = pieces(&map, &s, 4 * MIB, 1).unwrap();
        assert_eq!((p[0].slot, p[0].dax_off), (0, READ_AREA.start + 2 * MIB));
        // every byte of expected_seed is the seed pattern at its backing offset
        let got = expected_seed(&map, &s, 2 * MIB - 3, 8200, "w").unwrap();
        for (i, piece) in pieces(&map, &s, 2 * MIB - 3, 8200)
            .unwrap()
            .iter()
            .enumerate()
        {
            let at = (piece.file_off - (2 * MIB - 3)) as usize;
            assert_eq!(got[at], pattern::byte("w", piece.backing_off), "piece {i}");
        }
        let r = verify_ranges(&map, &s, 0, 6 * MIB, Some("w")).unwrap();
        assert_eq!(r.iter().map(|r| r.len).sum::<u64>(), 6 * MIB);
    }

    #[test]
    fn boundaries_are_extent_and_chunk_edges_below_eof() {
        let mut a = AreaAlloc::new(READ_AREA);
        let map = interleaved_map(
            &mut a,
            &[Stripe {
                chunk: 2 * MIB,
                nbytes: 4 * MIB,
                slots: &[0, 0],
            }],
            3 * MIB,
        )
        .unwrap();
        assert_eq!(boundaries(&map), [0, 2 * MIB - 1, 2 * MIB]);
        let m = simple_map(&mut a, &[(0, 2 * MIB), (0, 2 * MIB)], 4 * MIB).unwrap();
        assert_eq!(boundaries(&m), [0, 2 * MIB - 1, 2 * MIB, 4 * MIB - 1]);
    }

    #[test]
    fn area_alloc_stays_inside_its_area() {
        let mut a = AreaAlloc::new(CANARY_AREA);
        assert_eq!(a.take(0, 1), Some(CANARY_AREA.start));
        assert_eq!(a.take(1, 3 * MIB), Some(CANARY_AREA.start));
        assert_eq!(a.high_water(1), CANARY_AREA.start + 4 * MIB);
        assert_eq!(a.take(0, 6 * MIB), Some(CANARY_AREA.start + 2 * MIB));
        assert_eq!(a.take(0, 1), None);
    }

    #[test]
    fn dax_fill_ranges_follow_the_interleave() {
        let d = dax("dax2.0", 2);
        let r = dax_fill_ranges(&d, 0, 16384).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!((r[1].memdev.as_str(), r[1].seed.as_str()), ("mem1", "mem1"));
    }

    #[test]
    fn range_bytes_follow_each_range_seed_and_backing_offset() {
        let d = dax("dax2.0", 2);
        let r = dax_ranges(&d, 4096, 16384, Some("s")).unwrap();
        assert!(r.iter().all(|r| r.seed == "s"));
        let bytes = range_bytes(&r);
        assert_eq!(bytes.len(), 16384);
        // Each piece holds the pattern at its own backing offset, not at its dax offset.
        let first = &r[0];
        assert_eq!(
            &bytes[..first.len as usize],
            pattern::fill("s", first.offset, first.len as usize).as_slice()
        );
        let second = &r[1];
        let at = first.len as usize;
        assert_eq!(bytes[at], pattern::fill("s", second.offset, 1)[0], "{r:?}");
        assert_ne!(first.memdev, second.memdev, "{r:?}");
    }
}
