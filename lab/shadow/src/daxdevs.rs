//! The dax device table: `daxdevs.yaml` at the shadow tree's top, mapping the fmap's device
//! index (the GET_DAXDEV `index`, 0..24) to a device path, optionally with its size in bytes:
//!
//! ```yaml
//! 0: /dev/dax0.0
//! 1: {path: /dev/dax1.0, size: 268435456}
//! ```
//! With a size, validation checks that every extent on the device ends inside it, and `generate`
//! and resize never allocate past it.

use crate::error::ShadowError;
use famfs_fmap::MAX_DEVS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the table inside a shadow tree.
pub const DAXDEVS_FILE: &str = "daxdevs.yaml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Path(String),
    Full(Full),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaxDev {
    pub path: String,
    pub size: Option<u64>,
}

/// index -> device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaxDevs(pub BTreeMap<u32, DaxDev>);

impl DaxDevs {
    pub fn get(&self, index: u32) -> Option<&DaxDev> {
        self.0.get(&index)
    }

    /// Parses the table; the first problem only (see [`DaxDevs::parse_all`]).
    pub fn parse(file: &Path, src: &str) -> Result<DaxDevs, ShadowError> {
        Self::parse_all(file, src).map_err(|mut errs| errs.remove(0))
    }

    /// Parses the table and reports every problem, each with the file and the line of its key:
    /// an index outside 0..24, an empty or too long path, an index given twice (at the second
    /// one, naming the first). A YAML syntax or schema error ends parsing there. The error list
    /// is never empty.
    pub fn parse_all(file: &Path, src: &str) -> Result<DaxDevs, Vec<ShadowError>> {
        match Self::parse_partial(file, src) {
            Ok((devs, errs)) if errs.is_empty() => Ok(devs),
            Ok((_, errs)) => Err(errs),
            Err(e) => Err(vec![e]),
        }
    }

    /// The valid entries (of an index given twice, the first) and the problems with the others;
    /// `Err` when the file is not a table at all (syntax or schema).
    pub(crate) fn parse_partial(
        file: &Path,
        src: &str,
    ) -> Result<(DaxDevs, Vec<ShadowError>), ShadowError> {
        let raw: Pairs = serde_norway::from_str(src)
            .map_err(|e| ShadowError::yaml(file, e.location().map(|l| l.line()), e.to_string()))?;
        // The n-th entry's key line; `raw` keeps the entries in file order, duplicates too.
        let lines = lab_yaml_locate::key_lines(src, &lab_yaml_locate::KeyPath::root());
        let mut out: BTreeMap<u32, DaxDev> = BTreeMap::new();
        // index -> the line of its first entry.
        let mut first_at: BTreeMap<u32, Option<usize>> = BTreeMap::new();
        let mut errs = Vec::new();
        for (n, (index, e)) in raw.0.into_iter().enumerate() {
            let line = lines.get(n).copied();
            let dev = match e {
                Entry::Path(path) => DaxDev { path, size: None },
                Entry::Full(f) => DaxDev {
                    path: f.path,
                    size: f.size,
                },
            };
            if let Some(first) = first_at.get(&index) {
                let first = match first {
                    Some(l) => format!("line {l}"),
                    None => "earlier".to_string(),
                };
                let msg = format!(
                    "device index {index} is given twice (first at {first}); \
                     each index names one device"
                );
                errs.push(ShadowError::yaml(file, line, msg));
                continue;
            }
            first_at.insert(index, line);
            if index >= MAX_DEVS || dev.path.is_empty() || dev.path.len() >= 256 {
                let msg = format!("device {index}: index must be 0..24 and the path 1..255 bytes");
                errs.push(ShadowError::yaml(file, line, msg));
                continue;
            }
            out.insert(index, dev);
        }
        Ok((DaxDevs(out), errs))
    }

    pub fn to_yaml(&self) -> String {
        let raw: BTreeMap<u32, Entry> = self
            .0
            .iter()
            .map(|(i, d)| {
                let e = match d.size {
                    None => Entry::Path(d.path.clone()),
                    Some(size) => Entry::Full(Full {
                        path: d.path.clone(),
                        size: Some(size),
                    }),
                };
                (*i, e)
            })
            .collect();
        serde_norway::to_string(&raw).unwrap_or_default()
    }
}

/// The table's entries in file order, duplicates kept (a map would keep only the last).
struct Pairs(Vec<(u32, Entry)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of device index to device path or {path, size}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut v = Vec::new();
                while let Some(pair) = m.next_entry()? {
                    v.push(pair);
                }
                Ok(Pairs(v))
            }
            // An empty file is an empty table.
            fn visit_unit<E: serde::de::Error>(self) -> Result<Pairs, E> {
                Ok(Pairs(Vec::new()))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> Vec<String> {
        DaxDevs::parse_all(Path::new("t/daxdevs.yaml"), src)
            .expect_err("invalid table")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_table_parses_both_forms() {
        let src = "# devices\n0: /dev/dax0.0\n1: {path: /dev/dax1.0, size: 4096}\n";
        let d = DaxDevs::parse_all(Path::new("d.yaml"), src).expect("valid");
        assert_eq!(d.get(0).map(|d| d.path.as_str()), Some("/dev/dax0.0"));
        assert_eq!(d.get(1).and_then(|d| d.size), Some(4096));
        assert_eq!(d.0.len(), 2);
    }

    #[test]
    fn a_duplicated_index_is_an_error_at_its_second_line() {
        let src = "0: /dev/dax0.0\n1: /dev/dax1.0\n0: /dev/dax2.0\n";
        let e = errors(src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("t/daxdevs.yaml:3: device index 0 is given twice (first at line 1)"),
            "{e:?}"
        );
        // parse (first error) refuses it too, rather than keeping one of the two paths.
        assert!(DaxDevs::parse(Path::new("t/daxdevs.yaml"), src).is_err());
    }

    #[test]
    fn indexes_spelled_differently_are_still_the_same_index() {
        let src = "2: /dev/dax0.0\n0x2: {path: /dev/dax1.0}\n";
        let e = errors(src);
        assert!(
            e[0].contains("daxdevs.yaml:2: device index 2 is given twice"),
            "{e:?}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let src = "0: /dev/dax0.0\n30: /dev/dax9.0\n0: /dev/dax1.0\n5: ''\n5: /dev/x\n";
        let e = errors(src);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("t/daxdevs.yaml:2: device 30: index must be 0..24"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("t/daxdevs.yaml:3: device index 0 is given twice"),
            "{e:?}"
        );
        assert!(e[2].starts_with("t/daxdevs.yaml:4: device 5:"), "{e:?}");
        assert!(
            e[3].starts_with("t/daxdevs.yaml:5: device index 5 is given twice"),
            "{e:?}"
        );
    }

    #[test]
    fn syntax_errors_keep_their_line() {
        let e = errors("0: /dev/dax0.0\n1: [unclosed\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t/daxdevs.yaml:"), "{e:?}");
    }

    #[test]
    fn to_yaml_round_trips() {
        let src = "0: /dev/dax0.0\n3: {path: /dev/dax1.0, size: 8192}\n";
        let d = DaxDevs::parse_all(Path::new("d.yaml"), src).expect("valid");
        let again = DaxDevs::parse_all(Path::new("d.yaml"), &d.to_yaml()).expect("valid");
        assert_eq!(d, again);
    }
}
