//! `cargo xtask lab up --shadow DIR [--daxdev-data INDEX=FILE]`: a shadow tree the user brings.
//!
//! Before boot the host validates the tree and copies it into the results share
//! ([`TREE_DIR`]). After the guest's setup, when the device map is known, the host writes the
//! device bytes every file's fmap uses into the CXL backing files: the user's device image
//! (`--daxdev-data`, read at the dax offset) or, without one, the pattern
//! [`pattern_seed`]`(dax)` at the dax offset. It then reads the backing files back through the
//! same fmaps and writes what each file must read as CRC32s of [`BLOCK`]-byte blocks
//! ([`EXPECT_FILE`]). The guest case `shadow.user_tree` mounts the tree with famfs-fused and
//! checks every file's attributes and bytes (mmap and pread) against that.

use crate::devices::{DaxDevice, DeviceMap};
use crate::expect::Slots;
use anyhow::{bail, Result};
use famfs_shadow::DaxDevs;
use serde::{Deserialize, Serialize};

/// The tree's copy in the results share (`RUN/results/user-shadow`, `/results/user-shadow`).
pub const TREE_DIR: &str = "user-shadow";
/// What every file of the tree must read, written by the host after setup.
pub const EXPECT_FILE: &str = "user-shadow-expect.json";
/// Bytes per checksum.
pub const BLOCK: u64 = 64 << 10;

/// The file `EXPECT_FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    pub block: u64,
    pub files: Vec<FileExpect>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileExpect {
    /// Relative to the mount, as in the tree.
    pub path: String,
    pub size: u64,
    /// CRC32 of each `block` bytes (the last block may be shorter).
    pub crc32: Vec<u32>,
}

impl FileExpect {
    /// File offset and length of block `i`.
    pub fn block_range(&self, block: u64, i: usize) -> (u64, u64) {
        let off = i as u64 * block;
        (off, block.min(self.size.saturating_sub(off)))
    }
}

/// Blocks of a file of `size` bytes.
pub fn blocks(size: u64, block: u64) -> usize {
    size.div_ceil(block.max(1)) as usize
}

/// The pattern the host writes where no `--daxdev-data` gives the bytes (position = dax offset).
pub fn pattern_seed(dax: &str) -> String {
    format!("user-shadow:{dax}")
}

/// The guest's dax device a `daxdevs.yaml` path names (`/dev/dax0.0` -> `dax0.0`).
pub fn dax_of<'a>(path: &str, map: &'a DeviceMap) -> Option<&'a DaxDevice> {
    map.dax(path.strip_prefix("/dev/")?)
}

/// The slots of `devs` as the guest's dax devices; an error naming every path that is not one.
pub fn slots(devs: &DaxDevs, map: &DeviceMap) -> Result<Slots> {
    let mut slots = Slots::default();
    let mut missing = Vec::new();
    for (&i, d) in &devs.0 {
        match dax_of(&d.path, map) {
            Some(dax) => {
                if let Some(size) = d.size {
                    if size > dax.size {
                        bail!(
                            "daxdevs.yaml index {i}: {} is {size:#x} bytes in the tree but {:#x} in the guest",
                            d.path,
                            dax.size
                        );
                    }
                }
                slots.0.insert(i, dax.clone());
            }
            None => missing.push(format!("index {i} ({})", d.path)),
        }
    }
    if !missing.is_empty() {
        let have: Vec<String> = map.dax.iter().map(|d| format!("/dev/{}", d.name)).collect();
        bail!(
            "daxdevs.yaml names devices this guest does not have: {}; the topology makes {} \
             (pick another with --topology, or name these in daxdevs.yaml)",
            missing.join(", "),
            if have.is_empty() {
                "none".to_string()
            } else {
                have.join(", ")
            }
        );
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use famfs_shadow::DaxDev;

    fn map() -> DeviceMap {
        DeviceMap::one_device(1 << 30, 0, 256, "mem0", 0)
    }

    fn devs(entries: &[(u32, &str, Option<u64>)]) -> DaxDevs {
        DaxDevs(
            entries
                .iter()
                .map(|&(i, p, size)| {
                    (
                        i,
                        DaxDev {
                            path: p.into(),
                            size,
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn slots_name_the_guest_devices() {
        let s = slots(&devs(&[(3, "/dev/dax0.0", None)]), &map()).unwrap();
        assert_eq!(s.get(3).map(|d| d.name.as_str()), Some("dax0.0"));
        assert!(s.get(0).is_none());
    }

    #[test]
    fn a_device_the_guest_lacks_is_named_with_what_it_has() {
        let e = slots(
            &devs(&[(0, "/dev/dax0.0", None), (1, "/dev/dax7.0", None)]),
            &map(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("index 1 (/dev/dax7.0)"), "{e}");
        assert!(e.contains("makes /dev/dax0.0"), "{e}");
        assert!(!e.contains("index 0"), "{e}");
    }

    #[test]
    fn a_tree_device_larger_than_the_guests_is_refused() {
        let e = slots(&devs(&[(0, "/dev/dax0.0", Some(2 << 30))]), &map())
            .unwrap_err()
            .to_string();
        assert!(e.contains("index 0") && e.contains("0x80000000"), "{e}");
    }

    #[test]
    fn blocks_cover_the_file_and_the_last_is_short() {
        let f = FileExpect {
            path: "f".into(),
            size: BLOCK * 2 + 10,
            crc32: vec![],
        };
        assert_eq!(blocks(f.size, BLOCK), 3);
        assert_eq!(blocks(0, BLOCK), 0);
        assert_eq!(blocks(BLOCK, BLOCK), 1);
        assert_eq!(f.block_range(BLOCK, 2), (BLOCK * 2, 10));
        assert_eq!(f.block_range(BLOCK, 0), (0, BLOCK));
    }
}
