//! In-memory guest file tree: normalized guest paths in component order (a directory sorts
//! right before its contents), parent directories created implicitly, conflicts detected.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cpio;
use crate::{ImageError, Result};

/// Tree key: a normalized guest path without the leading `/`, ordered by components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key(pub String);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.split('/').cmp(other.0.split('/'))
    }
}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// `implicit`: created as a parent of something else, may be re-moded by the recipe.
    Dir {
        implicit: bool,
    },
    File(Arc<Vec<u8>>),
    Symlink(String),
    Device {
        block: bool,
        major: u32,
        minor: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub perm: u32,
    /// Where it came from, for the manifest (host path, "recipe", "busybox applet", ...).
    pub source: String,
}

impl Node {
    pub fn size(&self) -> u64 {
        match &self.kind {
            NodeKind::File(d) => d.len() as u64,
            NodeKind::Symlink(t) => t.len() as u64,
            _ => 0,
        }
    }
    fn same_content(&self, other: &Node) -> bool {
        self.kind == other.kind && self.perm == other.perm
    }
}

#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<Key, Node>,
}

impl Tree {
    pub fn get(&self, guest: &str) -> Option<&Node> {
        let key = normalize(guest).ok()?;
        self.nodes.get(&Key(key))
    }

    pub fn contains(&self, guest: &str) -> bool {
        self.get(guest).is_some()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Entries in archive order, keys without the leading `/`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, n)| (k.0.as_str(), n))
    }

    /// Inserts `node` at `guest`, creating parent directories. Re-inserting identical content
    /// is a no-op; an explicit directory may re-mode an implicit one; anything else that
    /// collides is a [`ImageError::Conflict`].
    pub fn insert(&mut self, guest: &str, node: Node) -> Result<()> {
        let key = normalize(guest).map_err(|m| conflict(guest, m))?;
        self.make_parents(&key)?;
        match self.nodes.get_mut(&Key(key.clone())) {
            None => {
                self.nodes.insert(Key(key), node);
            }
            Some(old) if old.same_content(&node) => {}
            Some(old) if matches!(old.kind, NodeKind::Dir { implicit: true }) => {
                if matches!(node.kind, NodeKind::Dir { .. }) {
                    *old = node;
                } else {
                    return Err(conflict(guest, "is a directory in the image".into()));
                }
            }
            Some(old) => {
                return Err(conflict(
                    guest,
                    format!("already holds {} from {}", describe(old), old.source),
                ))
            }
        }
        Ok(())
    }

    /// Inserts unless something is already at `guest` (or a parent is not a directory).
    /// Returns whether it was inserted.
    pub fn insert_if_absent(&mut self, guest: &str, node: Node) -> Result<bool> {
        if self.contains(guest) {
            return Ok(false);
        }
        let key = normalize(guest).map_err(|m| conflict(guest, m))?;
        let parents_ok = ancestors(&key).all(|p| match self.nodes.get(&Key(p.to_owned())) {
            None
            | Some(Node {
                kind: NodeKind::Dir { .. },
                ..
            }) => true,
            Some(_) => false,
        });
        if !parents_ok {
            return Ok(false);
        }
        self.insert(guest, node).map(|()| true)
    }

    fn make_parents(&mut self, key: &str) -> Result<()> {
        for parent in ancestors(key) {
            match self.nodes.get(&Key(parent.to_owned())) {
                None => {
                    let dir = Node {
                        kind: NodeKind::Dir { implicit: true },
                        perm: 0o755,
                        source: "(parent directory)".into(),
                    };
                    self.nodes.insert(Key(parent.to_owned()), dir);
                }
                Some(Node {
                    kind: NodeKind::Dir { .. },
                    ..
                }) => {}
                Some(other) => {
                    return Err(conflict(
                        &format!("/{key}"),
                        format!(
                            "parent /{parent} is {} from {}",
                            describe(other),
                            other.source
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Writes the whole tree as a newc archive; returns the archive size.
    pub fn write_cpio<W: std::io::Write>(&self, out: W) -> std::io::Result<(W, u64)> {
        let mut w = cpio::Writer::new(out);
        for (path, node) in self.iter() {
            let kind = match &node.kind {
                NodeKind::Dir { .. } => cpio::Kind::Dir,
                NodeKind::File(d) => cpio::Kind::File(d),
                NodeKind::Symlink(t) => cpio::Kind::Symlink(t),
                NodeKind::Device {
                    block: false,
                    major,
                    minor,
                } => cpio::Kind::CharDev {
                    major: *major,
                    minor: *minor,
                },
                NodeKind::Device {
                    block: true,
                    major,
                    minor,
                } => cpio::Kind::BlockDev {
                    major: *major,
                    minor: *minor,
                },
            };
            w.append(&cpio::Entry {
                path,
                perm: node.perm,
                kind,
            })?;
        }
        w.finish()
    }
}

fn describe(n: &Node) -> String {
    match &n.kind {
        NodeKind::Dir { .. } => "a directory".into(),
        NodeKind::File(d) => format!("a {}-byte file", d.len()),
        NodeKind::Symlink(t) => format!("a symlink to {t}"),
        NodeKind::Device { .. } => "a device node".into(),
    }
}

fn conflict(guest: &str, message: String) -> ImageError {
    ImageError::Conflict {
        guest: guest.to_owned(),
        message,
    }
}

/// Proper ancestors of a normalized key, outermost first (`a/b/c` -> `a`, `a/b`).
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').map(move |(i, _)| &key[..i])
}

/// Checks an absolute guest path and returns it without the leading `/`.
/// Rejects relative paths, `.`/`..`/empty components and the root itself.
pub(crate) fn normalize(guest: &str) -> std::result::Result<String, String> {
    let Some(rest) = guest.strip_prefix('/') else {
        return Err(format!("guest path {guest:?} is not absolute"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('\0') {
        return Err(format!("guest path {guest:?} is not a usable file path"));
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "guest path {guest:?} has an empty, . or .. component"
        ));
    }
    Ok(rest.to_owned())
}

/// Resolves symlink `target` found in directory `dir` (absolute) lexically, the way the guest
/// (where every directory is real) will. Returns an absolute path.
pub(crate) fn resolve_lexical(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let start = if target.starts_with('/') { "" } else { dir };
    for c in start.split('/').chain(target.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &[u8]) -> Node {
        Node {
            kind: NodeKind::File(Arc::new(data.to_vec())),
            perm: 0o644,
            source: "t".into(),
        }
    }

    #[test]
    fn normalize_and_lexical() {
        assert_eq!(normalize("/a/b/").as_deref(), Ok("a/b"));
        assert!(
            normalize("a").is_err() && normalize("/").is_err() && normalize("/a/../b").is_err()
        );
        assert_eq!(resolve_lexical("/lib64", "/lib/x/ld.so"), "/lib/x/ld.so");
        assert_eq!(resolve_lexical("/usr/lib64", "../lib/x"), "/usr/lib/x");
        assert_eq!(resolve_lexical("/lib", "./libc.so.6"), "/lib/libc.so.6");
    }

    #[test]
    fn parents_conflicts_and_order() -> Result<()> {
        let mut t = Tree::default();
        t.insert("/a-c", file(b"1"))?;
        t.insert("/a/b", file(b"2"))?;
        t.insert("/a/b", file(b"2"))?; // identical: fine
        assert!(t.insert("/a/b", file(b"3")).is_err());
        assert!(t.insert("/a-c/x", file(b"3")).is_err()); // parent is a file
        let dir = Node {
            kind: NodeKind::Dir { implicit: false },
            perm: 0o700,
            source: "r".into(),
        };
        t.insert("/a", dir)?; // re-modes the implicit parent
        assert_eq!(t.get("/a").map(|n| n.perm), Some(0o700));
        assert!(!t.insert_if_absent("/a/b", file(b"9"))?);
        assert!(!t.insert_if_absent("/a-c/y", file(b"9"))?);
        let order: Vec<&str> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(order, ["a", "a/b", "a-c"]);
        Ok(())
    }
}
