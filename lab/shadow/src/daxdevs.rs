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

    pub fn parse(file: &Path, src: &str) -> Result<DaxDevs, ShadowError> {
        let raw: BTreeMap<u32, Entry> = serde_norway::from_str(src)
            .map_err(|e| ShadowError::yaml(file, e.location().map(|l| l.line()), e.to_string()))?;
        let mut out = BTreeMap::new();
        for (index, e) in raw {
            let dev = match e {
                Entry::Path(path) => DaxDev { path, size: None },
                Entry::Full(f) => DaxDev {
                    path: f.path,
                    size: f.size,
                },
            };
            if index >= MAX_DEVS || dev.path.is_empty() || dev.path.len() >= 256 {
                let line = key_line(src, index);
                let msg = format!("device {index}: index must be 0..24 and the path 1..255 bytes");
                return Err(ShadowError::yaml(file, line, msg));
            }
            out.insert(index, dev);
        }
        Ok(DaxDevs(out))
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

/// Line of the top-level key `index:` (the table is a flat mapping).
fn key_line(src: &str, index: u32) -> Option<usize> {
    let key = format!("{index}:");
    src.lines()
        .position(|l| l.trim_start().starts_with(&key))
        .map(|p| p + 1)
}
