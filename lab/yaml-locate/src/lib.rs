//! Where a node of a YAML document is, for errors about valid YAML with invalid content: the one
//! YAML locator of the lab (topologies in lab-vm; the CI matrix, expectations and action
//! metadata in lab-ci; shadow trees and `daxdevs.yaml` in famfs-shadow).
//!
//! serde_norway values carry no positions, but an error raised inside one
//! of its `deserialize_*` calls is stamped with the position of the node
//! being read. [`line_of`] walks the document along a key path with a
//! `DeserializeSeed` and fails on purpose at the target node: the error's
//! position is the node's line. [`key_lines`] does the same for each key of
//! a mapping in turn (a duplicated key keeps its own line), and
//! [`UniqueMap`] is a mapping that rejects a duplicated key at its line.

mod unique_map;

pub use unique_map::UniqueMap;

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

/// 1-based lines of the keys of the mapping at `map`, in file order, a duplicated key once for
/// each time it is written (a `BTreeMap` would keep only its last value). Empty when there is no
/// mapping there. The n-th line belongs to the n-th entry a visitor of that mapping is given.
pub fn key_lines(src: &str, map: &KeyPath) -> Vec<usize> {
    (0..)
        .map_while(|n| locate(src, &map.0, Target::Key(n)))
        .collect()
}

fn exact_line(src: &str, segs: &[Seg]) -> Option<usize> {
    locate(src, segs, Target::Node)
}

fn locate(src: &str, segs: &[Seg], target: Target) -> Option<usize> {
    let de = serde_norway::Deserializer::from_str(src);
    match (Nav { segs, target }).deserialize(de) {
        Ok(()) => None,
        // A key is found only by its own rejection (not by a node that is no mapping).
        Err(e) if matches!(target, Target::Key(_)) && !e.to_string().contains(KEY_FOUND) => None,
        Err(e) => e.location().map(|l| l.line()),
    }
}

/// What the rejection of a located key says.
const KEY_FOUND: &str = "nothing (locating a key)";

/// What to fail on once the path is walked: the node itself, or the n-th key of the mapping.
#[derive(Clone, Copy)]
enum Target {
    Node,
    Key(usize),
}

#[derive(Clone, Copy)]
struct Nav<'p> {
    segs: &'p [Seg],
    target: Target,
}

impl<'de> DeserializeSeed<'de> for Nav<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let target = self.target;
        match self.segs.split_first() {
            // Fail inside the node's own deserialize call: the error gets its position.
            None => match target {
                Target::Node => d.deserialize_any(Here),
                Target::Key(n) => d.deserialize_map(NthKey(n)),
            },
            Some((Seg::Key(k), rest)) => d.deserialize_map(FindKey {
                key: k,
                rest: Nav { segs: rest, target },
            }),
            Some((Seg::Index(i), rest)) => d.deserialize_seq(FindIndex {
                index: *i,
                rest: Nav { segs: rest, target },
            }),
        }
    }
}

/// Fails on the n-th key of a mapping (its position is the key's line); passes when the mapping
/// has fewer keys.
struct NthKey(usize);

impl<'de> Visitor<'de> for NthKey {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with a key number {}", self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        for _ in 0..self.0 {
            if map.next_key::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
        }
        map.next_key_seed(HereKey)?;
        Ok(())
    }
}

/// Rejects the key it is given.
struct HereKey;

impl<'de> DeserializeSeed<'de> for HereKey {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for HereKey {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(KEY_FOUND)
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
    rest: Nav<'p>,
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with key {}", self.key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<serde_norway::Value>()? {
            if k.as_str() == Some(self.key) {
                map.next_value_seed(self.rest)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct FindIndex<'p> {
    index: usize,
    rest: Nav<'p>,
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
        if seq.next_element_seed(self.rest)?.is_none() {
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
    fn key_lines_keep_every_key_and_its_own_line() {
        let doc = "# devices\n0: /dev/dax0.0\n1: {path: x}\n\n0: /dev/dax1.0\n";
        assert_eq!(key_lines(doc, &KeyPath::root()), [2, 3, 5]);
        assert_eq!(key_lines(DOC, &path("axes")), [2, 3]);
        assert_eq!(key_lines(DOC, &path("exclude").index(1)), [8, 9]);
        // Not a mapping, or not there: no keys.
        assert!(key_lines(DOC, &path("exclude")).is_empty());
        assert!(key_lines("", &KeyPath::root()).is_empty());
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
