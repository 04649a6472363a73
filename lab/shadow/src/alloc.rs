//! Device space allocation: a bump allocator per device, 2 MiB aligned, that never hands out
//! bytes already used by a map it was told about and never goes past a device's known size.

use crate::daxdevs::DaxDevs;
use crate::error::ShadowError;
use famfs_fmap::{FileMap, FMAP_ALIGN};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Allocator {
    devs: DaxDevs,
    /// Next free offset per device index.
    next: BTreeMap<u32, u64>,
}

/// `v` rounded up to 2 MiB (saturating).
pub fn align_up(v: u64) -> u64 {
    v.div_ceil(FMAP_ALIGN).saturating_mul(FMAP_ALIGN)
}

impl Allocator {
    /// Allocations start at `base` (rounded up to 2 MiB) on every device.
    pub fn new(devs: DaxDevs, base: u64) -> Allocator {
        let base = align_up(base);
        let next = devs.0.keys().map(|i| (*i, base)).collect();
        Allocator { devs, next }
    }

    /// Never allocate below the end of anything `map` uses.
    pub fn reserve(&mut self, map: &FileMap) {
        for (_, _, r) in map.device_ranges() {
            let end = align_up(r.offset.saturating_add(r.len));
            let n = self.next.entry(r.dev_index).or_insert(0);
            *n = (*n).max(end);
        }
    }

    /// `len` bytes (rounded up to 2 MiB) on device `dev`; returns the offset.
    pub fn alloc(&mut self, dev: u32, len: u64) -> Result<u64, ShadowError> {
        let len = align_up(len.max(1));
        let Some(d) = self.devs.get(dev) else {
            return Err(ShadowError::Generate(format!(
                "device {dev} is not in the daxdevs table"
            )));
        };
        let at = self.next.get(&dev).copied().unwrap_or(0);
        let end = at
            .checked_add(len)
            .ok_or_else(|| ShadowError::Generate(format!("device {dev}: offset overflow")))?;
        if let Some(size) = d.size {
            if end > size {
                let msg = format!(
                    "device {dev} ({}) is full: {len:#x} bytes at {at:#x} pass its size {size:#x}",
                    d.path
                );
                return Err(ShadowError::Generate(msg));
            }
        }
        self.next.insert(dev, end);
        Ok(at)
    }

    /// Device indexes in the table, in order.
    pub fn devices(&self) -> Vec<u32> {
        self.devs.0.keys().copied().collect()
    }
}
