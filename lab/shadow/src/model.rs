//! A shadow tree in memory: its directories, its files with their maps, and its device table.
//! Loading ([`crate::tree`]), generating, checking and writing all work on these.

use crate::daxdevs::DaxDevs;
use crate::yaml::FileAttrs;
use famfs_fmap::FileMap;

/// Directory holding the file tree inside a shadow tree.
pub const ROOT_DIR: &str = "root";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowDir {
    /// Relative to the root, `/`-separated, no leading slash; `""` is the root itself.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowFile {
    /// Relative to the root, `/`-separated, no leading slash.
    pub path: String,
    pub attrs: FileAttrs,
    pub map: FileMap,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShadowTree {
    pub daxdevs: DaxDevs,
    /// Parents before children; includes the root (`""`).
    pub dirs: Vec<ShadowDir>,
    pub files: Vec<ShadowFile>,
}

/// `a//b/./c/` -> `a/b/c`.
pub fn normalize(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}
