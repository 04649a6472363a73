//! Content hash of an image: sha256 over a format version, the recipe, the init path and
//! every resolved guest entry (path, type, mode, bytes/target/device numbers, source).
//! Every field is length-prefixed, so no two different inputs share a byte stream.

use sha2::{Digest, Sha256};

use crate::tree::{NodeKind, Tree};

/// Bump whenever the archive layout or the hashed fields change, so old caches are ignored.
pub const FORMAT_VERSION: u32 = 1;

struct Fields(Sha256);

impl Fields {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }
    fn num(&mut self, n: u64) -> &mut Self {
        self.0.update(n.to_le_bytes());
        self
    }
}

/// Hex sha256 identifying the image built from these inputs.
pub(crate) fn content_hash(recipe_json: &[u8], init: &str, tree: &Tree) -> String {
    let mut h = Fields(Sha256::new());
    h.bytes(b"famfs-lab initramfs").num(FORMAT_VERSION.into());
    h.bytes(recipe_json)
        .bytes(init.as_bytes())
        .num(tree.len() as u64);
    for (path, node) in tree.iter() {
        h.bytes(path.as_bytes())
            .num(node.perm.into())
            .bytes(node.source.as_bytes());
        match &node.kind {
            NodeKind::Dir { .. } => h.bytes(b"dir"),
            NodeKind::File(d) => h.bytes(b"file").bytes(d),
            NodeKind::Symlink(t) => h.bytes(b"symlink").bytes(t.as_bytes()),
            NodeKind::Device {
                block,
                major,
                minor,
            } => h
                .bytes(if *block { b"blk" } else { b"chr" })
                .num((*major).into())
                .num((*minor).into()),
        };
    }
    hex::encode(h.0.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;
    use std::sync::Arc;

    fn tree_with(path: &str, data: &[u8], perm: u32) -> Tree {
        let mut t = Tree::default();
        let node = Node {
            kind: NodeKind::File(Arc::new(data.to_vec())),
            perm,
            source: "s".into(),
        };
        t.insert(path, node).expect("insert");
        t
    }

    #[test]
    fn every_field_matters() {
        let base = content_hash(b"r", "/init", &tree_with("/a", b"x", 0o644));
        assert_eq!(
            base,
            content_hash(b"r", "/init", &tree_with("/a", b"x", 0o644))
        );
        assert_ne!(
            base,
            content_hash(b"r2", "/init", &tree_with("/a", b"x", 0o644))
        );
        assert_ne!(
            base,
            content_hash(b"r", "/sbin/init", &tree_with("/a", b"x", 0o644))
        );
        assert_ne!(
            base,
            content_hash(b"r", "/init", &tree_with("/b", b"x", 0o644))
        );
        assert_ne!(
            base,
            content_hash(b"r", "/init", &tree_with("/a", b"y", 0o644))
        );
        assert_ne!(
            base,
            content_hash(b"r", "/init", &tree_with("/a", b"x", 0o755))
        );
    }
}
