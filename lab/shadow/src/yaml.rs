//! The per-file shadow YAML (famfs's format): serde types, and their conversion to a
//! [`FileMap`] with every rule checked and each error put on its line.
//!
//! ```yaml
//! file:
//!   path: dir/name          # relative to the tree root; must match where the YAML lives
//!   size: 4194304
//!   flags: 0                # bit 8 (0x100) = shared: may overlap other shared files
//!   mode: 0644              # a string is octal (0644, "644"); an integer is taken as is
//!                           # (write 0o644); S_IFREG bits allowed
//!   uid: 0
//!   gid: 0
//!   nextents: 1
//!   simple_ext_list:        # or striped_ext_list (exactly one of the two)
//!   - devindex: 0
//!     offset: 0x200000
//!     length: 0x400000
//! ```
//! A `striped_ext_list` item: `nstrips`, `chunk_size`, optional `nbytes` (default: `nstrips` x
//! the shortest strip, rounded down to whole chunks) and a nested `simple_ext_list` of strips.

use crate::error::ShadowError;
use famfs_fmap::{
    validate, Extents, Field, FileMap, FileType, FmapError, InterleavedExtent, SimpleExtent,
    MAX_EXTENTS,
};
use lab_yaml_locate::{line_of, path, KeyPath};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `flags` bit marking a file whose device ranges may overlap other shared files.
pub const FLAG_SHARED: u32 = 0x100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowDoc {
    pub file: FileEntry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub flags: u32,
    pub mode: Mode,
    pub uid: u32,
    pub gid: u32,
    pub nextents: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple_ext_list: Option<Vec<YamlExtent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub striped_ext_list: Option<Vec<YamlStriped>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YamlExtent {
    pub devindex: u32,
    pub offset: u64,
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YamlStriped {
    pub nstrips: u32,
    pub chunk_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbytes: Option<u64>,
    pub simple_ext_list: Vec<YamlExtent>,
}

/// A file's attributes besides its map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    pub size: u64,
    pub flags: u32,
    /// Permission bits only (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl FileAttrs {
    pub fn shared(&self) -> bool {
        self.flags & FLAG_SHARED != 0
    }
}

/// The famfs file type implied by a path (famfs keeps its metadata files under `.meta/`).
pub fn file_type_for(path: &str) -> FileType {
    match path.trim_start_matches('/') {
        ".meta/.superblock" => FileType::Superblock,
        ".meta/.log" => FileType::Log,
        _ => FileType::Regular,
    }
}

/// Parse one YAML document (syntax and schema errors carry serde_norway's line).
pub fn parse(file: &Path, src: &str) -> Result<ShadowDoc, ShadowError> {
    serde_norway::from_str(src).map_err(|e| {
        let line = e.location().map(|l| l.line());
        ShadowError::yaml(file, line, strip_location(&e.to_string()))
    })
}

/// serde_norway appends " at line L column C" to its messages; we print the line ourselves.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Check a parsed document's own rules and build its map. `src` finds lines for errors.
pub fn to_filemap(
    file: &Path,
    src: &str,
    doc: &ShadowDoc,
) -> Result<(FileAttrs, FileMap), ShadowError> {
    let f = &doc.file;
    let at = |p: KeyPath, msg: String| ShadowError::yaml(file, line_of(src, &p), msg);
    let root = || path("file");
    let (nlist, extents) = match (&f.simple_ext_list, &f.striped_ext_list) {
        (Some(v), None) => {
            let list = root().key("simple_ext_list");
            check_count(v.len(), &list).map_err(|(p, m)| at(p, m))?;
            (v.len(), Extents::Simple(v.iter().map(simple).collect()))
        }
        (None, Some(v)) => {
            let list = root().key("striped_ext_list");
            check_count(v.len(), &list).map_err(|(p, m)| at(p, m))?;
            let mut out = Vec::with_capacity(v.len());
            for (i, s) in v.iter().enumerate() {
                out.push(striped(s).map_err(|(k, m)| at(list.clone().index(i).key(k), m))?);
            }
            (v.len(), Extents::Interleaved(out))
        }
        (Some(_), Some(_)) => {
            return Err(at(
                root().key("striped_ext_list"),
                "both simple_ext_list and striped_ext_list".into(),
            ))
        }
        (None, None) => {
            return Err(at(
                root(),
                "neither simple_ext_list nor striped_ext_list".into(),
            ))
        }
    };
    if f.nextents as usize != nlist {
        return Err(at(
            root().key("nextents"),
            format!("nextents is {} but the list has {nlist}", f.nextents),
        ));
    }
    let mode = f
        .mode
        .value()
        .and_then(check_mode)
        .map_err(|m| at(root().key("mode"), m))?;
    let map = FileMap {
        file_type: file_type_for(&f.path),
        file_size: f.size,
        extents,
    };
    validate(&map).map_err(|e| at(fmap_error_path(&map, &e), e.to_string()))?;
    let attrs = FileAttrs {
        size: f.size,
        flags: f.flags,
        mode,
        uid: f.uid,
        gid: f.gid,
    };
    Ok((attrs, map))
}

fn check_count(n: usize, list: &KeyPath) -> Result<(), (KeyPath, String)> {
    if n == 0 {
        return Err((list.clone(), "no extents (need 1..=32)".into()));
    }
    if n > MAX_EXTENTS {
        return Err((
            list.clone().index(MAX_EXTENTS),
            format!("{n} extents, at most {MAX_EXTENTS}"),
        ));
    }
    Ok(())
}

fn check_mode(mode: u32) -> Result<u32, String> {
    const S_IFMT: u32 = 0o170000;
    const S_IFREG: u32 = 0o100000;
    match mode & S_IFMT {
        0 | S_IFREG => Ok(mode & 0o7777),
        t => Err(format!(
            "mode {mode:#o} has file type bits {t:#o}, only regular files are allowed"
        )),
    }
}

fn simple(e: &YamlExtent) -> SimpleExtent {
    SimpleExtent {
        dev_index: e.devindex,
        offset: e.offset,
        len: e.length,
    }
}

fn striped(s: &YamlStriped) -> Result<InterleavedExtent, (&'static str, String)> {
    if s.nstrips as usize != s.simple_ext_list.len() {
        let n = s.simple_ext_list.len();
        return Err((
            "nstrips",
            format!("nstrips is {} but simple_ext_list has {n}", s.nstrips),
        ));
    }
    let chunk_size = u32::try_from(s.chunk_size).map_err(|_| {
        (
            "chunk_size",
            format!("chunk_size {:#x} does not fit in 32 bits", s.chunk_size),
        )
    })?;
    let strips: Vec<SimpleExtent> = s.simple_ext_list.iter().map(simple).collect();
    let nbytes = s
        .nbytes
        .unwrap_or_else(|| default_nbytes(&strips, u64::from(chunk_size)));
    Ok(InterleavedExtent {
        chunk_size,
        nbytes,
        strips,
    })
}

/// `nstrips` x the shortest strip, rounded down to whole chunks.
pub fn default_nbytes(strips: &[SimpleExtent], chunk: u64) -> u64 {
    let min = strips.iter().map(|s| s.len).min().unwrap_or(0);
    let per = min.checked_div(chunk).map_or(0, |n| n * chunk);
    per.saturating_mul(strips.len() as u64)
}

/// The YAML node an fmap rule violation is about.
fn fmap_error_path(map: &FileMap, e: &FmapError) -> KeyPath {
    let file = path("file");
    let list = match map.extents {
        Extents::Simple(_) => "simple_ext_list",
        Extents::Interleaved(_) => "striped_ext_list",
    };
    match (e, e.loc()) {
        (FmapError::Uncovered { .. }, _) => file.key("size"),
        (FmapError::ExtentCount(_), _) => file.key(list),
        (FmapError::StripCount { extent, .. }, _) => file.key(list).index(*extent).key("nstrips"),
        (_, Some(loc)) => {
            let item = match loc.strip {
                None => file.key(list).index(loc.extent),
                Some(s) => file
                    .key(list)
                    .index(loc.extent)
                    .key("simple_ext_list")
                    .index(s),
            };
            match (e, e.field()) {
                (FmapError::DevIndex { .. }, _) => item.key("devindex"),
                (_, Some(Field::Offset)) => item.key("offset"),
                (_, Some(Field::Length)) => item.key("length"),
                (_, Some(Field::ChunkSize)) => item.key("chunk_size"),
                (_, Some(Field::Nbytes)) => item.key("nbytes"),
                _ => item,
            }
        }
        _ => file,
    }
}

/// `mode:` as written: an integer (taken as is) or a string (octal). Converted, and its errors
/// placed on their line, in [`to_filemap`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Mode {
    Int(u32),
    Text(String),
}

impl Mode {
    /// The form [`crate::write`] uses: `"0644"`.
    pub fn octal(mode: u32) -> Mode {
        Mode::Text(format!("0{mode:o}"))
    }

    pub fn value(&self) -> Result<u32, String> {
        match self {
            Mode::Int(v) => Ok(*v),
            Mode::Text(s) => {
                parse_mode(s).ok_or_else(|| format!("mode {s:?} is not an octal number"))
            }
        }
    }
}

/// A mode string is octal: `0644`, `0o644` and `644` all mean rw-r--r--.
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    if t.is_empty() {
        return None;
    }
    u32::from_str_radix(t, 8).ok()
}

/// The YAML node of device range `(extent, strip)`: its `offset` key.
pub(crate) fn range_path(map: &FileMap, extent: usize, strip: Option<usize>) -> KeyPath {
    let f = path("file");
    match (&map.extents, strip) {
        (Extents::Simple(_), _) => f.key("simple_ext_list").index(extent).key("offset"),
        (Extents::Interleaved(_), None) => f.key("striped_ext_list").index(extent),
        (Extents::Interleaved(_), Some(s)) => f
            .key("striped_ext_list")
            .index(extent)
            .key("simple_ext_list")
            .index(s)
            .key("offset"),
    }
}
