//! A patch series: `patches/series` lists `*.patch` files in order
//! (quilt's format: one name a line, `#` comments).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One patch of a series, with its bytes (hashed into the cache key).
#[derive(Debug, Clone)]
pub struct Patch {
    pub name: String,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Reads the series in `patches_dir`. A missing directory or `series` file
/// is an empty series; a listed patch that is missing is an error.
pub fn read(patches_dir: &Path) -> Result<Vec<Patch>> {
    let series = patches_dir.join("series");
    if !series.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&series)
        .with_context(|| format!("reading {}", series.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let path = patches_dir.join(name);
        if !path.is_file() {
            bail!(
                "{}:{}: patch {name} does not exist ({})",
                series.display(),
                i + 1,
                path.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        out.push(Patch {
            name: name.to_string(),
            path,
            bytes,
        });
    }
    Ok(out)
}

/// The files a patch touches (`+++ b/...` lines), for messages.
pub fn touched_files(patch: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(patch)
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|s| s.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_skipping_comments() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("series"),
            "# ours\n0002-b.patch\n\n0001-a.patch # first\n",
        )
        .unwrap();
        std::fs::write(d.path().join("0001-a.patch"), "A").unwrap();
        std::fs::write(d.path().join("0002-b.patch"), "B").unwrap();
        let names: Vec<_> = read(d.path())
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["0002-b.patch", "0001-a.patch"]);
    }

    #[test]
    fn missing_series_is_empty_and_missing_patch_is_named() {
        let d = tempfile::tempdir().unwrap();
        assert!(read(d.path()).unwrap().is_empty());
        std::fs::write(d.path().join("series"), "0001-gone.patch\n").unwrap();
        let msg = format!("{:#}", read(d.path()).unwrap_err());
        assert!(
            msg.contains("series:1") && msg.contains("0001-gone.patch"),
            "{msg}"
        );
    }

    #[test]
    fn touched_files_lists_targets() {
        let p = b"--- a/fs/fuse/file.c\n+++ b/fs/fuse/file.c\n@@ -1 +1 @@\n--- a/x\n+++ b/include/y.h\n";
        assert_eq!(touched_files(p), ["fs/fuse/file.c", "include/y.h"]);
    }
}
