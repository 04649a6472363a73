//! `--fmap-dump PATH`: a file's decoded fmap and the device ranges it uses, as text.

use famfs_fmap::{resolve, Extents, FileMap};
use famfs_shadow::DaxDevs;
use std::fmt::Write;

fn dev_name(devs: &DaxDevs, i: u32) -> String {
    devs.get(i)
        .map(|d| d.path.clone())
        .unwrap_or_else(|| "(not in daxdevs.yaml)".into())
}

/// What GET_FMAP would send for `map`, decoded back from the blob bytes (so the dump shows the
/// wire, not just the model), its device ranges and its first runs.
pub fn render(path: &str, map: &FileMap, devs: &DaxDevs, meta_size: u32) -> String {
    let mut s = String::new();
    let blob = famfs_fmap::encode(map);
    let _ = writeln!(
        s,
        "file {path}: blob {} bytes, meta_size {meta_size}",
        blob.len()
    );
    let map = match famfs_fmap::decode(&blob) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(s, "blob does not decode: {e} (errno {})", e.errno());
            map.clone()
        }
    };
    let map = &map;
    let _ = writeln!(
        s,
        "{:?}, size {} ({:#x}), {} bytes mapped",
        map.file_type,
        map.file_size,
        map.file_size,
        map.mapped_size()
    );
    match &map.extents {
        Extents::Simple(v) => {
            let _ = writeln!(s, "{} simple extent(s):", v.len());
            let mut pos = 0u64;
            for (i, e) in v.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  [{i}] file {pos:#x}..{:#x} -> dev {} {} {:#x}..{:#x}",
                    pos + e.len,
                    e.dev_index,
                    dev_name(devs, e.dev_index),
                    e.offset,
                    e.offset.saturating_add(e.len)
                );
                pos = pos.saturating_add(e.len);
            }
        }
        Extents::Interleaved(v) => {
            let _ = writeln!(s, "{} interleaved extent(s):", v.len());
            let mut pos = 0u64;
            for (i, e) in v.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  [{i}] file {pos:#x}..{:#x}, {} strips, chunk {:#x}",
                    pos + e.nbytes,
                    e.strips.len(),
                    e.chunk_size
                );
                for (j, st) in e.strips.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "      strip {j}: dev {} {} {:#x}..{:#x}",
                        st.dev_index,
                        dev_name(devs, st.dev_index),
                        st.offset,
                        st.offset.saturating_add(st.len)
                    );
                }
                pos = pos.saturating_add(e.nbytes);
            }
        }
    }
    let _ = writeln!(s, "runs (file range -> device range):");
    let mut off = 0u64;
    let mut n = 0;
    while let Some(m) = resolve(map, off) {
        if n == 64 {
            let _ = writeln!(s, "  ... (more runs)");
            break;
        }
        let _ = writeln!(
            s,
            "  {off:#x}+{:#x} -> dev {} {:#x}",
            m.length, m.dev_index, m.dev_offset
        );
        off = off.saturating_add(m.length);
        n += 1;
    }
    s
}
