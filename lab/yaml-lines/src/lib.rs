//! The line of a node in a YAML document, by key path, for semantic errors.
//!
//! serde_norway values carry no positions, but an error raised inside one
//! of its `deserialize_*` calls is stamped with the position of the node
//! being read. [`line_of`] walks the document along a key path with a
//! `DeserializeSeed` and fails on purpose at the target node: the error's
//! position is the node's line. Used by every YAML file the lab reads
//! (topologies, the CI matrix and expectations, action metadata).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `exclude[1].accel`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<Seg>);

/// The path of a top-level key: `path("axes").key("ops").index(2)`.
pub fn path(top: &str) -> KeyPath {
    KeyPath::default().key(top)
}

impl KeyPath {
    /// The path of the document itself (a top-level sequence's items
    /// hang off it).
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    pub fn key(&self, k: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        KeyPath(v)
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line of the node at `path` in `src`; when that node does not
/// exist (an optional key left out), the line of its nearest existing
/// ancestor.
pub fn line_of(src: &str, path: &KeyPath) -> Option<usize> {
    (0..=path.0.len())
        .rev()
        .find_map(|n| exact_line(src, &path.0[..n]))
}

fn exact_line(src: &str, segs: &[Seg]) -> Option<usize> {
    let de = serde_norway::Deserializer::from_str(src);
    match Nav(segs).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| l.line()),
    }
}

struct Nav<'p>(&'p [Seg]);

impl<'de> DeserializeSeed<'de> for Nav<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            // Fail inside the node's own deserialize call: the error gets its position.
            None => d.deserialize_any(Here),
            Some((Seg::Key(k), rest)) => d.deserialize_map(FindKey { key: k, rest }),
            Some((Seg::Index(i), rest)) => d.deserialize_seq(FindIndex { index: *i, rest }),
        }
    }
}

/// Rejects whatever node it is given.
struct Here;

impl Visitor<'_> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nothing (locating a node)")
    }
}

struct FindKey<'p> {
    key: &'p str,
    rest: &'p [Seg],
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with key {}", self.key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<serde_norway::Value>()? {
            if k.as_str() == Some(self.key) {
                map.next_value_seed(Nav(self.rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct FindIndex<'p> {
    index: usize,
    rest: &'p [Seg],
}

impl<'de> Visitor<'de> for FindIndex<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a sequence with item {}", self.index)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        if seq.next_element_seed(Nav(self.rest))?.is_none() {
            return Ok(());
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
axes:
  ops: [a, b]
  topology:
    - default
    - two
exclude:
  - { kernel: x, accel: kvm }
  - kernel: y
    accel: tcg
";

    #[test]
    fn finds_block_and_flow_nodes() {
        assert_eq!(line_of(DOC, &path("axes")), Some(2));
        assert_eq!(line_of(DOC, &path("axes").key("ops").index(1)), Some(2));
        assert_eq!(
            line_of(DOC, &path("axes").key("topology").index(1)),
            Some(5)
        );
        assert_eq!(
            line_of(DOC, &path("exclude").index(0).key("accel")),
            Some(7)
        );
        assert_eq!(
            line_of(DOC, &path("exclude").index(1).key("accel")),
            Some(9)
        );
    }

    #[test]
    fn a_missing_node_falls_back_to_its_parent() {
        assert_eq!(line_of(DOC, &path("exclude").index(1).key("ops")), Some(8));
        assert_eq!(line_of(DOC, &path("exclude").index(9)), Some(7));
        assert_eq!(line_of("- a\n- b\n", &KeyPath::root().index(1)), Some(2));
    }

    #[test]
    fn renders_paths() {
        assert_eq!(
            path("exclude").index(2).key("ops").to_string(),
            "exclude[2].ops"
        );
        assert_eq!(KeyPath::root().index(3).key("case").to_string(), "[3].case");
    }
}

#[cfg(test)]
mod vm_tests {
    use super::*;

    const DOC: &str = "\
name: x
devices:
  - id: mem0
    size: 1G
  - { id: mem1, size: 2G }
windows:
  - targets: [a, b]
    size: 4G
";

    #[test]
    fn finds_block_and_flow_items() {
        assert_eq!(line_of(DOC, &path("name")), Some(1));
        assert_eq!(line_of(DOC, &path("devices").index(0)), Some(3));
        assert_eq!(line_of(DOC, &path("devices").index(0).key("size")), Some(4));
        assert_eq!(line_of(DOC, &path("devices").index(1)), Some(5));
        assert_eq!(line_of(DOC, &path("devices").index(1).key("size")), Some(5));
        assert_eq!(
            line_of(DOC, &path("windows").index(0).key("targets").index(1)),
            Some(7)
        );
    }

    #[test]
    fn falls_back_to_parent() {
        assert_eq!(
            line_of(DOC, &path("devices").index(1).key("backing")),
            Some(5)
        );
        // The block sequence itself starts at its first `-`.
        assert_eq!(line_of(DOC, &path("devices").index(7)), Some(3));
        // A missing top-level key falls back to the document itself.
        assert_eq!(line_of(DOC, &path("regions")), Some(1));
    }

    #[test]
    fn renders_paths() {
        let p = path("host_bridges")
            .index(0)
            .key("root_ports")
            .index(2)
            .key("id");
        assert_eq!(p.to_string(), "host_bridges[0].root_ports[2].id");
    }
}
