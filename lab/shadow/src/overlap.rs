//! No two files may use the same device bytes unless both are marked shared
//! ([`crate::yaml::FLAG_SHARED`]). A file never overlaps itself.

use crate::error::ShadowError;
use crate::model::ShadowTree;
use crate::yaml::range_path;
use lab_yaml_locate::line_of;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy)]
struct Use {
    dev: u32,
    start: u64,
    end: u64,
    file: usize,
    extent: usize,
    strip: Option<usize>,
}

/// Sweep each device's ranges in start order against every range still open.
pub(crate) fn check(tree: &ShadowTree, sources: &[(PathBuf, String)], errs: &mut Vec<ShadowError>) {
    let mut uses: Vec<Use> = tree
        .files
        .iter()
        .enumerate()
        .flat_map(|(file, f)| {
            f.map
                .device_ranges()
                .into_iter()
                .map(move |(extent, strip, r)| Use {
                    dev: r.dev_index,
                    start: r.offset,
                    end: r.offset.saturating_add(r.len),
                    file,
                    extent,
                    strip,
                })
        })
        .collect();
    uses.sort_by_key(|u| (u.dev, u.start, u.end));
    let mut open: Vec<Use> = Vec::new();
    for u in uses {
        open.retain(|o| o.dev == u.dev && o.end > u.start);
        for o in &open {
            let both_shared = o.file != u.file
                && tree.files[o.file].attrs.shared()
                && tree.files[u.file].attrs.shared();
            if !both_shared {
                errs.push(overlap_error(tree, sources, &u, o));
            }
        }
        open.push(u);
    }
}

fn overlap_error(
    tree: &ShadowTree,
    sources: &[(PathBuf, String)],
    a: &Use,
    b: &Use,
) -> ShadowError {
    let line = |u: &Use| {
        let (_, src) = &sources[u.file];
        line_of(src, &range_path(&tree.files[u.file].map, u.extent, u.strip))
    };
    ShadowError::Overlap {
        a: sources[a.file].0.clone(),
        a_line: line(a),
        b: sources[b.file].0.clone(),
        b_line: line(b),
        dev: a.dev,
        start: a.start.max(b.start),
        end: a.end.min(b.end),
    }
}
