//! Serving a size change (famfs-fused `--allow-resize`): a map for the new size, truncated when
//! it shrinks, with one more extent from the allocator when it grows past what is mapped.

use crate::alloc::{align_up, Allocator};
use crate::error::ShadowError;
use famfs_fmap::{
    strip_need, validate, Extents, FileMap, InterleavedExtent, SimpleExtent, MAX_EXTENTS,
};

pub fn resize(map: &FileMap, new_size: u64, alloc: &mut Allocator) -> Result<FileMap, ShadowError> {
    let mapped = map.mapped_size();
    let mut out = if new_size <= mapped {
        truncate(map, new_size)
    } else {
        grow(map, new_size - mapped, alloc)?
    };
    out.file_size = new_size;
    validate(&out).map_err(|e| ShadowError::Resize(format!("new map is invalid: {e}")))?;
    Ok(out)
}

/// Keep the extents holding `[0, size)` (at least one), the last cut to 2 MiB past `size`.
fn truncate(map: &FileMap, size: u64) -> FileMap {
    let mut out = map.clone();
    let mut base = 0u64;
    let mut keep = 0usize;
    for i in 0..map.extents.len() {
        let len = map.extents.file_len(i).unwrap_or(0);
        keep = i + 1;
        if base.saturating_add(len) >= size {
            break;
        }
        base = base.saturating_add(len);
    }
    let last = align_up(size.saturating_sub(base)).max(famfs_fmap::FMAP_ALIGN);
    match &mut out.extents {
        Extents::Simple(v) => {
            v.truncate(keep.max(1));
            if let Some(e) = v.last_mut() {
                e.len = e.len.min(last);
            }
        }
        Extents::Interleaved(v) => {
            v.truncate(keep.max(1));
            if let Some(e) = v.last_mut() {
                e.nbytes = e.nbytes.min(last);
            }
        }
    }
    out
}

/// Append an extent holding `more` bytes on the devices of the last extent.
fn grow(map: &FileMap, more: u64, alloc: &mut Allocator) -> Result<FileMap, ShadowError> {
    if map.extents.len() >= MAX_EXTENTS {
        return Err(ShadowError::Resize(format!(
            "the file already has {MAX_EXTENTS} extents"
        )));
    }
    let mut out = map.clone();
    match &mut out.extents {
        Extents::Simple(v) => {
            let dev = v.last().map(|e| e.dev_index).unwrap_or(0);
            let len = align_up(more);
            v.push(SimpleExtent {
                dev_index: dev,
                offset: alloc.alloc(dev, len)?,
                len,
            });
        }
        Extents::Interleaved(v) => {
            let Some(last) = v.last() else {
                return Err(ShadowError::Resize(
                    "no extent to copy the layout from".into(),
                ));
            };
            let c = u64::from(last.chunk_size);
            let nbytes = align_up(more).div_ceil(c).saturating_mul(c);
            let n = last.strips.len();
            let devs: Vec<u32> = last.strips.iter().map(|s| s.dev_index).collect();
            let mut strips = Vec::with_capacity(n);
            for (s, dev) in devs.into_iter().enumerate() {
                let len = strip_need(nbytes, c, n, s).max(c);
                strips.push(SimpleExtent {
                    dev_index: dev,
                    offset: alloc.alloc(dev, len)?,
                    len,
                });
            }
            v.push(InterleavedExtent {
                chunk_size: last.chunk_size,
                nbytes,
                strips,
            });
        }
    }
    Ok(out)
}
