//! Writing a [`ShadowTree`] to disk in the layout [`crate::load`] reads.

use crate::daxdevs::DAXDEVS_FILE;
use crate::error::ShadowError;
use crate::model::{ShadowFile, ShadowTree, ROOT_DIR};
use crate::yaml::{FileEntry, Mode, ShadowDoc, YamlExtent, YamlStriped};
use famfs_fmap::{Extents, SimpleExtent};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The YAML text of one file.
pub fn file_yaml(f: &ShadowFile) -> String {
    let ext = |e: &SimpleExtent| YamlExtent {
        devindex: e.dev_index,
        offset: e.offset,
        length: e.len,
    };
    let (simple, striped) = match &f.map.extents {
        Extents::Simple(v) => (Some(v.iter().map(ext).collect()), None),
        Extents::Interleaved(v) => (
            None,
            Some(
                v.iter()
                    .map(|e| YamlStriped {
                        nstrips: e.strips.len() as u32,
                        chunk_size: u64::from(e.chunk_size),
                        nbytes: Some(e.nbytes),
                        simple_ext_list: e.strips.iter().map(ext).collect(),
                    })
                    .collect(),
            ),
        ),
    };
    let doc = ShadowDoc {
        file: FileEntry {
            path: f.path.clone(),
            size: f.attrs.size,
            flags: f.attrs.flags,
            mode: Mode::octal(f.attrs.mode),
            uid: f.attrs.uid,
            gid: f.attrs.gid,
            nextents: f.map.extents.len() as u32,
            simple_ext_list: simple,
            striped_ext_list: striped,
        },
    };
    serde_norway::to_string(&doc).unwrap_or_default()
}

/// Write `tree` under `dir` (created if missing). Refuses a `dir` that already has a tree.
/// Directory modes are applied; owners are the caller's.
pub fn write(tree: &ShadowTree, dir: &Path) -> Result<(), ShadowError> {
    let root = dir.join(ROOT_DIR);
    if root.exists() || dir.join(DAXDEVS_FILE).exists() {
        return Err(ShadowError::Generate(format!(
            "{} already holds a shadow tree",
            dir.display()
        )));
    }
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| ShadowError::io(p, e)
    };
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let table = dir.join(DAXDEVS_FILE);
    std::fs::write(&table, tree.daxdevs.to_yaml()).map_err(io(&table))?;
    for d in &tree.dirs {
        let p = root.join(&d.path);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    for f in &tree.files {
        let p = root.join(&f.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, file_yaml(f)).map_err(io(&p))?;
    }
    // Modes last, deepest first, so a read-only directory does not stop its own filling.
    for d in tree.dirs.iter().rev() {
        let p = root.join(&d.path);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(d.mode)).map_err(io(&p))?;
    }
    Ok(())
}
