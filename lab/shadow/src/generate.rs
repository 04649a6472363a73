//! `shadow new`: a synthetic shadow tree of N files, simple or interleaved, on the devices of a
//! daxdevs table, allocated without overlap. [`generate`] is pure; [`crate::write`] puts the
//! result on disk.

use crate::alloc::{align_up, Allocator};
use crate::daxdevs::DaxDevs;
use crate::error::ShadowError;
use crate::model::{ShadowDir, ShadowFile, ShadowTree};
use crate::yaml::{file_type_for, FileAttrs, FLAG_SHARED};
use famfs_fmap::{
    strip_need, validate, Extents, FileMap, InterleavedExtent, SimpleExtent, FMAP_ALIGN,
    MAX_EXTENTS, MAX_STRIPS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each file in `extents` simple extents (fewer if the file is small), devices round-robin.
    Simple { extents: u32 },
    /// Each file one interleaved extent over `nstrips` strips, devices round-robin.
    Interleaved { nstrips: u32, chunk_size: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateParams {
    pub files: usize,
    pub layout: Layout,
    /// File sizes in bytes, used in turn (file i gets `sizes[i % len]`).
    pub sizes: Vec<u64>,
    pub devices: DaxDevs,
    /// Files go to `d0 .. d{dirs-1}` round-robin; 0 puts them all at the root.
    pub dirs: usize,
    /// First device offset to allocate from (2 MiB aligned up).
    pub base_offset: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub shared: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            files: 1,
            layout: Layout::Simple { extents: 1 },
            sizes: vec![FMAP_ALIGN],
            devices: DaxDevs::default(),
            dirs: 0,
            base_offset: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            shared: false,
        }
    }
}

pub fn generate(p: &GenerateParams) -> Result<ShadowTree, ShadowError> {
    let bad = |m: String| Err(ShadowError::Generate(m));
    if p.sizes.is_empty() {
        return bad("no file sizes given".into());
    }
    let mut alloc = Allocator::new(p.devices.clone(), p.base_offset);
    let devs = alloc.devices();
    if devs.is_empty() {
        return bad("the daxdevs table is empty".into());
    }
    match p.layout {
        Layout::Simple { extents } if extents == 0 || extents as usize > MAX_EXTENTS => {
            return bad(format!("{extents} extents per file, must be 1..=32"))
        }
        Layout::Interleaved {
            nstrips,
            chunk_size,
        } => {
            if nstrips == 0 || nstrips as usize > MAX_STRIPS {
                return bad(format!("{nstrips} strips, must be 1..=32"));
            }
            if chunk_size == 0 || !u64::from(chunk_size).is_multiple_of(FMAP_ALIGN) {
                return bad(format!(
                    "chunk size {chunk_size:#x} is not a positive multiple of 2 MiB"
                ));
            }
        }
        _ => {}
    }
    let mut tree = ShadowTree {
        daxdevs: p.devices.clone(),
        ..Default::default()
    };
    let dir = |path: String| ShadowDir {
        path,
        mode: 0o755,
        uid: p.uid,
        gid: p.gid,
    };
    tree.dirs.push(dir(String::new()));
    tree.dirs.extend((0..p.dirs).map(|d| dir(format!("d{d}"))));
    for i in 0..p.files {
        let size = p.sizes[i % p.sizes.len()];
        let extents = match p.layout {
            Layout::Simple { extents } => simple(&mut alloc, &devs, i, size, extents as usize)?,
            Layout::Interleaved {
                nstrips,
                chunk_size,
            } => interleaved(&mut alloc, &devs, i, size, nstrips as usize, chunk_size)?,
        };
        // Zero-padded so that name order is creation order.
        let w = p.files.saturating_sub(1).to_string().len();
        let path = if p.dirs == 0 {
            format!("f{i:0w$}")
        } else {
            format!("d{}/f{i:0w$}", i % p.dirs)
        };
        let map = FileMap {
            file_type: file_type_for(&path),
            file_size: size,
            extents,
        };
        validate(&map)
            .map_err(|e| ShadowError::Generate(format!("{path}: generated an invalid map: {e}")))?;
        let flags = if p.shared { FLAG_SHARED } else { 0 };
        let attrs = FileAttrs {
            size,
            flags,
            mode: p.mode & 0o7777,
            uid: p.uid,
            gid: p.gid,
        };
        tree.files.push(ShadowFile { path, attrs, map });
    }
    Ok(tree)
}

fn simple(
    alloc: &mut Allocator,
    devs: &[u32],
    file: usize,
    size: u64,
    extents: usize,
) -> Result<Extents, ShadowError> {
    let chunks = (align_up(size.max(1)) / FMAP_ALIGN) as usize;
    let n = extents.min(chunks).max(1);
    let mut v = Vec::with_capacity(n);
    for e in 0..n {
        let my_chunks = chunks / n + usize::from(e < chunks % n);
        let len = my_chunks as u64 * FMAP_ALIGN;
        let dev = devs[(file + e) % devs.len()];
        v.push(SimpleExtent {
            dev_index: dev,
            offset: alloc.alloc(dev, len)?,
            len,
        });
    }
    Ok(Extents::Simple(v))
}

fn interleaved(
    alloc: &mut Allocator,
    devs: &[u32],
    file: usize,
    size: u64,
    nstrips: usize,
    chunk: u32,
) -> Result<Extents, ShadowError> {
    let c = u64::from(chunk);
    let nbytes = size.max(1).div_ceil(c).saturating_mul(c);
    let mut strips = Vec::with_capacity(nstrips);
    for s in 0..nstrips {
        let len = strip_need(nbytes, c, nstrips, s).max(c);
        let dev = devs[(file + s) % devs.len()];
        strips.push(SimpleExtent {
            dev_index: dev,
            offset: alloc.alloc(dev, len)?,
            len,
        });
    }
    Ok(Extents::Interleaved(vec![InterleavedExtent {
        chunk_size: chunk,
        nbytes,
        strips,
    }]))
}
