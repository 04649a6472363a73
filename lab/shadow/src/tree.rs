//! Loading a shadow tree from disk, with whole-tree validation (the tree itself is
//! [`crate::model`]).
//!
//! Layout: `SHADOW/daxdevs.yaml` (see [`crate::daxdevs`]) and `SHADOW/root/`, whose directories
//! are the file system's directories and whose every regular file is one file's YAML (see
//! [`crate::yaml`]), named as the file it describes. A YAML's `path:` must equal its place under
//! `root/`.

use crate::daxdevs::{DaxDevs, DAXDEVS_FILE};
use crate::error::{ShadowError, ShadowErrors};
use crate::model::{normalize, ShadowDir, ShadowFile, ShadowTree, ROOT_DIR};
use crate::yaml::{parse, range_path, to_filemap};
use lab_yaml_locate::{line_of, path, KeyPath};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Load and validate a whole tree. Every problem found is returned, not just the first.
pub fn load(shadow: &Path) -> Result<ShadowTree, ShadowErrors> {
    let mut errs = Vec::new();
    let dpath = shadow.join(DAXDEVS_FILE);
    // Without a readable table, the files' device indexes cannot be checked against it (each
    // would be one more error about the same problem).
    let (daxdevs, table_known) = match std::fs::read_to_string(&dpath) {
        Ok(src) => match DaxDevs::parse_partial(&dpath, &src) {
            Ok((devs, table_errs)) => {
                errs.extend(table_errs);
                (devs, true)
            }
            Err(e) => {
                errs.push(e);
                (DaxDevs::default(), false)
            }
        },
        Err(e) => {
            errs.push(ShadowError::io(&dpath, e));
            (DaxDevs::default(), false)
        }
    };
    let mut tree = ShadowTree {
        daxdevs,
        ..Default::default()
    };
    let mut sources: Vec<(PathBuf, String)> = Vec::new();
    walk(
        &shadow.join(ROOT_DIR),
        "",
        &mut tree,
        &mut sources,
        &mut errs,
    );
    if table_known {
        check_devices(&tree, &sources, &mut errs);
    }
    if errs.is_empty() {
        crate::overlap::check(&tree, &sources, &mut errs);
    }
    if errs.is_empty() {
        Ok(tree)
    } else {
        Err(ShadowErrors(errs))
    }
}

fn walk(
    dir: &Path,
    rel: &str,
    tree: &mut ShadowTree,
    sources: &mut Vec<(PathBuf, String)>,
    errs: &mut Vec<ShadowError>,
) {
    let md = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) => return errs.push(ShadowError::io(dir, e)),
    };
    tree.dirs.push(ShadowDir {
        path: rel.to_string(),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    });
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.map_err(|e| errs.push(ShadowError::io(dir, e))).ok())
            .collect(),
        Err(e) => return errs.push(ShadowError::io(dir, e)),
    };
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let host = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            errs.push(ShadowError::yaml(&host, None, "file name is not UTF-8"));
            continue;
        };
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&host, &child, tree, sources, errs),
            Ok(t) if t.is_file() => match load_file(&host, &child) {
                Ok((f, src)) => {
                    tree.files.push(f);
                    sources.push((host, src));
                }
                Err(e) => errs.push(e),
            },
            Ok(_) => errs.push(ShadowError::yaml(
                &host,
                None,
                "not a directory or a regular file",
            )),
            Err(err) => errs.push(ShadowError::io(&host, err)),
        }
    }
}

fn load_file(host: &Path, rel: &str) -> Result<(ShadowFile, String), ShadowError> {
    let src = std::fs::read_to_string(host).map_err(|e| ShadowError::io(host, e))?;
    let doc = parse(host, &src)?;
    if normalize(&doc.file.path) != rel {
        let line = line_of(&src, &path("file").key("path"));
        let msg = format!(
            "path {:?} does not match the YAML's place in the tree ({rel:?})",
            doc.file.path
        );
        return Err(ShadowError::yaml(host, line, msg));
    }
    let (attrs, map) = to_filemap(host, &src, &doc)?;
    Ok((
        ShadowFile {
            path: rel.to_string(),
            attrs,
            map,
        },
        src,
    ))
}

/// Every devindex is in the table, and every range ends inside a device of known size.
fn check_devices(tree: &ShadowTree, sources: &[(PathBuf, String)], errs: &mut Vec<ShadowError>) {
    for (f, (host, src)) in tree.files.iter().zip(sources) {
        for (i, s, r) in f.map.device_ranges() {
            let path = range_path(&f.map, i, s);
            let Some(dev) = tree.daxdevs.get(r.dev_index) else {
                let p = KeyPath(path.0[..path.0.len() - 1].to_vec()).key("devindex");
                let msg = format!("devindex {} is not in {DAXDEVS_FILE}", r.dev_index);
                errs.push(ShadowError::yaml(host, line_of(src, &p), msg));
                continue;
            };
            if let Some(size) = dev.size {
                let end = r.offset.saturating_add(r.len);
                if end > size {
                    let msg = format!(
                        "range {:#x}..{end:#x} ends past {} ({size:#x} bytes)",
                        r.offset, dev.path
                    );
                    errs.push(ShadowError::yaml(host, line_of(src, &path), msg));
                }
            }
        }
    }
}
