//! Where the lab keeps things outside the repository.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the cache root.
pub const CACHE_ENV: &str = "FAMFS_LAB_CACHE";

/// The cache root: `$FAMFS_LAB_CACHE`, else `$XDG_CACHE_HOME/famfs-lab`,
/// else `~/.cache/famfs-lab`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("famfs-lab");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("famfs-lab")
}

/// The repository root, found from this crate's manifest directory at build
/// time and checked at run time (the xtask always runs from a checkout).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// `target/lab/runs` under the repository: per-run results.
pub fn runs_dir() -> PathBuf {
    repo_root().join("target").join("lab").join("runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        let root = repo_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{}", root.display());
    }
}
