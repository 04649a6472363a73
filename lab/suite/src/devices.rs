//! The device map the guest reports after setup, and the translation of a
//! dax device offset to the byte of a CXL device's backing file that holds
//! it (host physical address -> interleave position -> device physical
//! address, which is the backing file's offset for a volatile device).

use serde::{Deserialize, Serialize};

/// Everything the suites need to know about the guest's CXL/DAX devices.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceMap {
    pub memdevs: Vec<Memdev>,
    pub dax: Vec<DaxDevice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Memdev {
    /// Kernel name, e.g. `mem0`.
    pub name: String,
    /// Topology id (from the serial number).
    pub id: String,
    pub serial: u64,
    pub ram_size: u64,
    /// Host path of the backing file.
    pub backing: String,
}

/// A dax device carved from one CXL region.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DaxDevice {
    /// e.g. `dax0.0`.
    pub name: String,
    /// The plan's region name and the kernel's (`region0`).
    pub region: String,
    pub kernel_region: String,
    pub size: u64,
    /// Host physical address of the dax device's first byte.
    pub hpa: u64,
    /// Host physical address of the region's first byte.
    pub region_hpa: u64,
    pub ways: u64,
    pub granularity: u64,
    /// The region's endpoint targets in interleave position order.
    pub targets: Vec<Target>,
}

impl DeviceMap {
    /// One dax device, `dax0.0` of region `r0` (the kernel's `region0`), `size` bytes at `hpa`,
    /// one way at `granularity` on `memdev` from its `dpa`: what a one-device, one-region
    /// topology sets up (and the map the host-side tests start from).
    pub fn one_device(size: u64, hpa: u64, granularity: u64, memdev: &str, dpa: u64) -> DeviceMap {
        DeviceMap {
            memdevs: Vec::new(),
            dax: vec![DaxDevice {
                name: "dax0.0".into(),
                region: "r0".into(),
                kernel_region: "region0".into(),
                size,
                hpa,
                region_hpa: hpa,
                ways: 1,
                granularity,
                targets: vec![Target {
                    memdev: memdev.into(),
                    dpa,
                }],
            }],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Target {
    /// Topology id of the memdev.
    pub memdev: String,
    /// First device physical address the region uses on this device.
    pub dpa: u64,
}

/// Where one byte of a dax device lives on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingByte {
    pub memdev: String,
    /// Offset in the memdev's backing file.
    pub offset: u64,
    /// Bytes from here to the end of this interleave chunk (so a range can
    /// be walked chunk by chunk).
    pub run: u64,
}

impl DaxDevice {
    /// The backing-file location of byte `offset` of this dax device.
    pub fn backing_of(&self, offset: u64) -> Option<BackingByte> {
        if offset >= self.size || self.ways == 0 || self.granularity == 0 {
            return None;
        }
        let h = self.hpa.checked_sub(self.region_hpa)? + offset;
        let g = self.granularity;
        let pos = ((h / g) % self.ways) as usize;
        let target = self.targets.get(pos)?;
        let dpa = target.dpa + (h / (g * self.ways)) * g + h % g;
        let run = (g - h % g).min(self.size - offset);
        Some(BackingByte {
            memdev: target.memdev.clone(),
            offset: dpa,
            run,
        })
    }

    /// The dax offset that holds byte `file_offset` of `memdev`'s backing
    /// file, if this device maps it.
    pub fn offset_of(&self, memdev: &str, file_offset: u64) -> Option<u64> {
        let pos = self.targets.iter().position(|t| t.memdev == memdev)? as u64;
        let t = &self.targets[pos as usize];
        let rel = file_offset.checked_sub(t.dpa)?;
        let g = self.granularity;
        let h = (rel / g) * g * self.ways + pos * g + rel % g;
        let off = h.checked_sub(self.hpa - self.region_hpa)?;
        (off < self.size).then_some(off)
    }
}

impl DaxDevice {
    /// `(dax offset, backing offset, length)` of each piece of backing bytes
    /// `[offset, offset + len)` of `memdev` in this dax device: a granularity chunk of the
    /// backing file is contiguous in the dax device. `None` if a byte is not in it.
    pub fn pieces_of(&self, memdev: &str, offset: u64, len: u64) -> Option<Vec<(u64, u64, u64)>> {
        let target = self.targets.iter().find(|t| t.memdev == memdev)?;
        let g = self.granularity.max(1);
        let mut out = Vec::new();
        let mut o = offset;
        while o < offset + len {
            let at = self.offset_of(memdev, o)?;
            let rel = o.checked_sub(target.dpa)?;
            let n = if self.ways == 1 {
                offset + len - o
            } else {
                (g - rel % g).min(offset + len - o)
            };
            if at + n > self.size {
                return None;
            }
            out.push((at, o, n));
            o += n;
        }
        Some(out)
    }
}

impl DeviceMap {
    pub fn dax(&self, name: &str) -> Option<&DaxDevice> {
        self.dax.iter().find(|d| d.name == name)
    }
    pub fn memdev(&self, id: &str) -> Option<&Memdev> {
        self.memdevs.iter().find(|m| m.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple() -> DaxDevice {
        DaxDevice {
            name: "dax0.0".into(),
            region: "r0".into(),
            kernel_region: "region0".into(),
            size: 1 << 30,
            hpa: 0x10_0000_0000,
            region_hpa: 0x10_0000_0000,
            ways: 1,
            granularity: 256,
            targets: vec![Target {
                memdev: "mem0".into(),
                dpa: 0,
            }],
        }
    }

    fn two_way() -> DaxDevice {
        DaxDevice {
            ways: 2,
            granularity: 4096,
            size: 1 << 30,
            targets: vec![
                Target {
                    memdev: "mem0".into(),
                    dpa: 512 << 20,
                },
                Target {
                    memdev: "mem1".into(),
                    dpa: 512 << 20,
                },
            ],
            ..simple()
        }
    }

    #[test]
    fn one_device_is_the_identity() {
        let d = simple();
        let b = d.backing_of(12345).unwrap();
        assert_eq!((b.memdev.as_str(), b.offset), ("mem0", 12345));
        assert_eq!(d.offset_of("mem0", 12345), Some(12345));
        assert_eq!(d.backing_of(1 << 30), None);
    }

    #[test]
    fn interleave_alternates_devices_by_granule() {
        let d = two_way();
        let at = |o| {
            let b = d.backing_of(o).unwrap();
            (b.memdev, b.offset)
        };
        assert_eq!(at(0), ("mem0".into(), 512 << 20));
        assert_eq!(at(4095), ("mem0".into(), (512 << 20) + 4095));
        assert_eq!(at(4096), ("mem1".into(), 512 << 20));
        assert_eq!(at(8192), ("mem0".into(), (512 << 20) + 4096));
        assert_eq!(d.backing_of(4000).unwrap().run, 96);
    }

    #[test]
    fn offset_of_inverts_backing_of() {
        let d = two_way();
        for off in [0u64, 1, 4095, 4096, 8191, 8192, 1_000_003, (1 << 30) - 1] {
            let b = d.backing_of(off).unwrap();
            assert_eq!(d.offset_of(&b.memdev, b.offset), Some(off), "offset {off}");
        }
        assert_eq!(d.offset_of("mem0", 0), None, "below the region's DPA");
        assert_eq!(d.offset_of("mem9", 512 << 20), None);
    }

    #[test]
    fn dax_device_inside_a_region_is_offset() {
        let mut d = simple();
        d.hpa += 2 << 20;
        assert_eq!(d.backing_of(0).unwrap().offset, 2 << 20);
        assert_eq!(d.offset_of("mem0", 2 << 20), Some(0));
        assert_eq!(d.offset_of("mem0", 0), None);
    }

    #[test]
    fn pieces_of_follow_the_interleave_and_round_trip() {
        let d = two_way();
        // 10 KiB of mem1 from 1 KiB into its share: the rest of chunk 0, chunk 1, part of 2.
        let p = d.pieces_of("mem1", (512 << 20) + 1024, 10 << 10).unwrap();
        assert_eq!(
            p,
            [
                (4096 + 1024, (512 << 20) + 1024, 3072),
                (3 * 4096, (512 << 20) + 4096, 4096),
                (5 * 4096, (512 << 20) + 8192, 3072),
            ]
        );
        for (at, backing, n) in &p {
            let b = d.backing_of(*at).unwrap();
            assert_eq!((b.memdev.as_str(), b.offset), ("mem1", *backing));
            assert!(b.run >= *n);
        }
        // One way: one piece; a byte past the device: none.
        assert_eq!(
            simple().pieces_of("mem0", 100, 9000),
            Some(vec![(100, 100, 9000)])
        );
        assert_eq!(simple().pieces_of("mem0", (1 << 30) - 1, 2), None);
        assert_eq!(d.pieces_of("mem9", 0, 1), None);
    }
}
