//! A YAML mapping whose keys must be unique, in file order.
//!
//! serde_norway keeps the last of two equal keys without a word when it
//! fills a `BTreeMap`; a duplicated `kernels: {stock: ...}` entry would
//! silently replace the first. Here the duplicate is an error stamped with
//! the second entry's line.

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueMap<V>(pub Vec<(String, V)>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        UniqueMap(Vec::new())
    }
}

impl<V> UniqueMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

struct MapVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
    type Value = UniqueMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<V>, A::Error> {
        let mut out: Vec<(String, V)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.iter().any(|(have, _)| *have == key) {
                // Fail while reading the duplicate's value: the error gets its line.
                let msg = format!("duplicate key {key:?} (each key may appear once)");
                return Err(map
                    .next_value_seed(Reject(msg.clone()))
                    .err()
                    .unwrap_or_else(|| de::Error::custom(msg)));
            }
            let value = map.next_value()?;
            out.push((key, value));
        }
        Ok(UniqueMap(out))
    }
}

/// Rejects the node it reads with its message.
struct Reject(String);

impl<'de> DeserializeSeed<'de> for Reject {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! reject {
    ($($name:ident($t:ty)),*) => {
        $(fn $name<E: de::Error>(self, _: $t) -> Result<(), E> {
            Err(E::custom(self.0))
        })*
    };
}

impl<'de> Visitor<'de> for Reject {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
    reject!(
        visit_bool(bool),
        visit_i64(i64),
        visit_u64(u64),
        visit_f64(f64),
        visit_str(&str)
    );
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(self.0))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_file_order() {
        let m: UniqueMap<u32> = serde_norway::from_str("b: 1\na: 2\n").unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(m.get("a"), Some(&2));
    }

    #[test]
    fn a_duplicate_key_is_an_error_on_its_own_line() {
        for (doc, line) in [
            ("a: 1\nb: 2\na: 3\n", 3),
            ("a: {x: 1}\nb: 2\na:\n  x: 2\n", 4),
            ("a: [1]\na: [2]\n", 2),
        ] {
            let e = serde_norway::from_str::<UniqueMap<serde_norway::Value>>(doc).unwrap_err();
            assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
            assert_eq!(e.location().map(|l| l.line()), Some(line), "{doc:?}: {e}");
        }
    }
}
