//! What an image is: its resolved content with the hash ([`Plan`], from
//! [`crate::build::plan`]), and the archive in the cache ([`BuiltImage`], from
//! [`crate::cache::materialize`]).

use std::path::PathBuf;

use crate::hash;
use crate::tree::{NodeKind, Tree};

/// The resolved content of an image, with its hash; nothing written yet.
#[derive(Debug)]
pub struct Plan {
    pub(crate) hash: String,
    pub(crate) tree: Tree,
    pub(crate) notes: Vec<String>,
}

/// A built (or cached) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `<cache>/images/<hash>/initramfs.cpio`
    pub path: PathBuf,
    /// `<cache>/images/<hash>/manifest.txt`
    pub manifest: PathBuf,
    pub hash: String,
    pub cache_hit: bool,
    /// Archive size in bytes.
    pub size: u64,
    /// Number of archive entries (directories, files, symlinks, device nodes).
    pub files: usize,
    /// Non-fatal remarks, e.g. skipped optional files.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn hash(&self) -> &str {
        &self.hash
    }
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
    /// Number of archive entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tree.len() == 0
    }

    /// Writes the archive (deterministic bytes); returns the writer and the size.
    pub fn write_cpio<W: std::io::Write>(&self, out: W) -> std::io::Result<(W, u64)> {
        self.tree.write_cpio(out)
    }

    /// One line per entry: guest path, type, mode, size, source (symlinks: `-> target`).
    pub fn manifest(&self) -> String {
        let mut s = format!(
            "# famfs-lab initramfs format {} hash {} entries {}\n\
             # guest-path\ttype\tmode\tsize\tsource\n",
            hash::FORMAT_VERSION,
            self.hash,
            self.tree.len()
        );
        for (path, n) in self.tree.iter() {
            let (kind, extra) = match &n.kind {
                NodeKind::Dir { .. } => ("dir", String::new()),
                NodeKind::File(_) => ("file", String::new()),
                NodeKind::Symlink(t) => ("symlink", format!("\t-> {t}")),
                NodeKind::Device {
                    block,
                    major,
                    minor,
                } => (
                    if *block { "block" } else { "char" },
                    format!("\t{major}:{minor}"),
                ),
            };
            let (perm, size, src) = (n.perm, n.size(), &n.source);
            s.push_str(&format!(
                "/{path}\t{kind}\t{perm:04o}\t{size}\t{src}{extra}\n"
            ));
        }
        s
    }
}
