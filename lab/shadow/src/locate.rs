//! The line of a node in a YAML document, by key path, for semantic errors.
//!
//! serde_norway keeps no spans in values, but an error raised inside a `deserialize_*` call gets
//! the position of the node being read. [`line_of`] walks the document along the path with a
//! `DeserializeSeed` and fails on purpose at the target node; the error's location is its line.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(&'static str),
    Index(usize),
}

/// `file.simple_ext_list[3].offset` as steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

impl KeyPath {
    pub fn root(key: &'static str) -> KeyPath {
        KeyPath(vec![Step::Key(key)])
    }

    pub fn key(mut self, key: &'static str) -> KeyPath {
        self.0.push(Step::Key(key));
        self
    }

    pub fn index(mut self, i: usize) -> KeyPath {
        self.0.push(Step::Index(i));
        self
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in self.0.iter().enumerate() {
            match s {
                Step::Key(k) if n == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line of the node at `path`; if it does not exist, of its nearest existing ancestor.
pub fn line_of(src: &str, path: &KeyPath) -> Option<usize> {
    (1..=path.0.len())
        .rev()
        .find_map(|n| exact(src, &path.0[..n]))
}

fn exact(src: &str, steps: &[Step]) -> Option<usize> {
    let de = serde_norway::Deserializer::from_str(src);
    match Walk(steps).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| l.line()),
    }
}

struct Walk<'p>(&'p [Step]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            None => d.deserialize_any(Here),
            Some((Step::Key(k), rest)) => d.deserialize_map(InMap { key: k, rest }),
            Some((Step::Index(i), rest)) => d.deserialize_seq(InSeq { index: *i, rest }),
        }
    }
}

/// Rejects whatever it is given: the rejection carries the node's position.
struct Here;

impl Visitor<'_> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("no value (locating a node)")
    }
}

struct InMap<'p> {
    key: &'p str,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping holding {}", self.key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<serde_norway::Value>()? {
            if k.as_str() == Some(self.key) {
                map.next_value_seed(Walk(self.rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct InSeq<'p> {
    index: usize,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a sequence with item {}", self.index)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while i < self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
        if seq.next_element_seed(Walk(self.rest))?.is_some() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "file:\n  path: a\n  simple_ext_list:\n  - devindex: 0\n    offset: 0\n  - devindex: 1\n    offset: 4096\n";

    #[test]
    fn finds_nested_items_and_falls_back_to_the_parent() {
        let p = KeyPath::root("file").key("simple_ext_list");
        assert_eq!(line_of(DOC, &p.clone().index(1).key("offset")), Some(7));
        assert_eq!(line_of(DOC, &p.clone().index(0).key("devindex")), Some(4));
        // no `length` key: the item's line
        assert_eq!(line_of(DOC, &p.clone().index(1).key("length")), Some(6));
        assert_eq!(line_of(DOC, &KeyPath::root("file").key("path")), Some(2));
        assert_eq!(
            p.index(1).key("offset").to_string(),
            "file.simple_ext_list[1].offset"
        );
    }
}
