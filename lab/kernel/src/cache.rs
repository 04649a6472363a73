//! The content-addressed kernel cache: `<cache>/kernels/<key>/` holds one
//! build's artifacts. The key hashes everything that changes the output;
//! an entry appears only complete (written aside, then renamed).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bump when the cache layout or the build recipe changes meaning.
const KEY_VERSION: &str = "famfs-lab-kernel-key-v1";

/// Everything that decides a build's output.
#[derive(Debug, Clone, Default)]
pub struct KeyInputs {
    /// What the source is, exactly (package and version, or commit).
    pub source_id: String,
    pub base: String,
    /// (name, bytes) of each fragment, in merge order.
    pub fragments: Vec<(String, Vec<u8>)>,
    /// (name, bytes) of each patch, in series order.
    pub patches: Vec<(String, Vec<u8>)>,
    pub targets: Vec<String>,
    /// Compiler and pahole versions.
    pub toolchain: String,
}

impl KeyInputs {
    /// The cache key: 16 hex digits of a SHA-256 over the inputs, each
    /// length-prefixed so no two input lists hash alike.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |tag: &str, bytes: &[u8]| {
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        put("v", KEY_VERSION.as_bytes());
        put("source", self.source_id.as_bytes());
        put("base", self.base.as_bytes());
        for (name, bytes) in &self.fragments {
            put("fragment", name.as_bytes());
            put("fragment-bytes", bytes);
        }
        for (name, bytes) in &self.patches {
            put("patch", name.as_bytes());
            put("patch-bytes", bytes);
        }
        for t in &self.targets {
            put("target", t.as_bytes());
        }
        put("toolchain", self.toolchain.as_bytes());
        hex::encode(&h.finalize()[..8])
    }
}

/// What a cache entry records about its build (`meta.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub key: String,
    pub kernel: String,
    pub label: String,
    pub source_id: String,
    /// The exact version fetched (Debian package version, commit, ...).
    pub source_version: String,
    pub release: String,
    pub base: String,
    pub fragments: Vec<String>,
    pub patches: Vec<String>,
    pub toolchain: String,
    pub build_seconds: u64,
}

/// Whether a kernel `.config` has the PVH entry point (`CONFIG_PVH=y`).
pub fn has_pvh_entry(config: &str) -> bool {
    config.lines().any(|l| l.trim_end() == "CONFIG_PVH=y")
}

/// One complete cache entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
}

impl Entry {
    pub fn bzimage(&self) -> PathBuf {
        self.dir.join("bzImage")
    }
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join("vmlinux")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config")
    }
    /// `vmlinux` without symbols or debug info (`objcopy --strip-all`): the same loadable
    /// segments and notes, 20 MB instead of 150, and no symbol table for QEMU to read and sort
    /// at every start. Debuggers and `lab gdb` take [`Entry::vmlinux`].
    pub fn vmlinux_boot(&self) -> PathBuf {
        self.dir.join("vmlinux.boot")
    }
    /// The image QEMU boots, given the entry's `.config` text: the ELF through its PVH entry
    /// when the kernel has one (QEMU loads it itself: no real-mode setup, no decompression),
    /// `vmlinux.boot` if the entry has it, else `vmlinux`; without a PVH entry `bzImage`.
    pub fn boot_image(&self, config: &str) -> PathBuf {
        if !has_pvh_entry(config) {
            return self.bzimage();
        }
        [self.vmlinux_boot(), self.vmlinux()]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| self.bzimage())
    }
    /// `lib/modules/<release>` tree root (pass as INSTALL_MOD_PATH).
    pub fn modules_root(&self) -> PathBuf {
        self.dir.join("modroot")
    }
    pub fn meta_path(&self) -> PathBuf {
        self.dir.join("meta.json")
    }
    pub fn meta(&self) -> Result<Meta> {
        let path = self.meta_path();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// The directory holding all entries.
pub fn kernels_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("kernels")
}

/// The complete entry for `key`, if there is one.
pub fn lookup(cache_root: &Path, key: &str) -> Option<Entry> {
    let entry = Entry {
        dir: kernels_dir(cache_root).join(key),
    };
    entry.meta_path().is_file().then_some(entry)
}

/// A directory to fill before [`commit`]; removed on drop if not committed.
pub struct Staging {
    pub dir: PathBuf,
    final_dir: PathBuf,
    committed: bool,
}

/// Starts a new entry for `key`.
pub fn stage(cache_root: &Path, key: &str) -> Result<Staging> {
    let root = kernels_dir(cache_root);
    let dir = root.join(format!(".{key}.tmp-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing stale {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Staging {
        dir,
        final_dir: root.join(key),
        committed: false,
    })
}

impl Staging {
    /// Writes `meta.json` last and renames the directory into place.
    pub fn commit(mut self, meta: &Meta) -> Result<Entry> {
        let text = serde_json::to_string_pretty(meta)?;
        std::fs::write(self.dir.join("meta.json"), text + "\n")?;
        if self.final_dir.exists() {
            std::fs::remove_dir_all(&self.final_dir)
                .with_context(|| format!("replacing {}", self.final_dir.display()))?;
        }
        std::fs::rename(&self.dir, &self.final_dir)
            .with_context(|| format!("moving {} into place", self.final_dir.display()))?;
        self.committed = true;
        Ok(Entry {
            dir: self.final_dir.clone(),
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boots_vmlinux_only_with_a_pvh_entry_and_a_vmlinux() {
        let d = tempfile::tempdir().unwrap();
        let e = super::Entry {
            dir: d.path().to_path_buf(),
        };
        let pvh = "CONFIG_X=y\nCONFIG_PVH=y\n";
        assert_eq!(e.boot_image(pvh), e.bzimage(), "no vmlinux in the entry");
        std::fs::write(e.vmlinux(), b"elf").unwrap();
        assert_eq!(e.boot_image(pvh), e.vmlinux());
        assert_eq!(e.boot_image("# CONFIG_PVH is not set\n"), e.bzimage());
        assert_eq!(e.boot_image("CONFIG_PVH_X=y\n"), e.bzimage());
        // An entry with the stripped copy boots that.
        std::fs::write(e.vmlinux_boot(), b"elf").unwrap();
        assert_eq!(e.boot_image(pvh), e.vmlinux_boot());
        assert_eq!(e.boot_image("# CONFIG_PVH is not set\n"), e.bzimage());
    }

    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            source_id: "debian:linux-source-7.3=7.3.4-1".into(),
            base: "allnoconfig".into(),
            fragments: vec![("base".into(), b"CONFIG_A=y\n".to_vec())],
            patches: vec![("0001-x.patch".into(), b"diff\n".to_vec())],
            targets: vec!["bzImage".into()],
            toolchain: "gcc 12.2.0; pahole v1.24".into(),
        }
    }

    #[test]
    fn key_is_stable() {
        assert_eq!(inputs().key(), inputs().key());
        assert_eq!(inputs().key().len(), 16);
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = inputs().key();
        let mut variants: Vec<KeyInputs> = Vec::new();
        let mut v = inputs();
        v.source_id.push('1');
        variants.push(v);
        let mut v = inputs();
        v.base = "defconfig".into();
        variants.push(v);
        let mut v = inputs();
        v.fragments[0].1.push(b'#');
        variants.push(v);
        let mut v = inputs();
        v.fragments[0].0 = "other".into();
        variants.push(v);
        let mut v = inputs();
        v.patches[0].1.push(b' ');
        variants.push(v);
        let mut v = inputs();
        v.patches.clear();
        variants.push(v);
        let mut v = inputs();
        v.targets.push("modules".into());
        variants.push(v);
        let mut v = inputs();
        v.toolchain = "gcc 14".into();
        variants.push(v);
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v.key(), base, "variant {i} did not change the key");
        }
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_key() {
        let mut a = inputs();
        a.patches = vec![("ab".into(), b"c".to_vec())];
        let mut b = inputs();
        b.patches = vec![("a".into(), b"bc".to_vec())];
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn staged_entry_is_invisible_until_commit_and_gone_if_dropped() {
        let d = tempfile::tempdir().unwrap();
        let s = stage(d.path(), "k1").unwrap();
        std::fs::write(s.dir.join("bzImage"), b"x").unwrap();
        assert!(lookup(d.path(), "k1").is_none());
        drop(s);
        assert!(lookup(d.path(), "k1").is_none());
        assert_eq!(
            std::fs::read_dir(kernels_dir(d.path())).unwrap().count(),
            0,
            "no half-written entry"
        );
        let s = stage(d.path(), "k1").unwrap();
        std::fs::write(s.dir.join("bzImage"), b"x").unwrap();
        let meta = Meta {
            key: "k1".into(),
            kernel: "stock".into(),
            label: "stock".into(),
            source_id: "s".into(),
            source_version: "v".into(),
            release: "7.3.4".into(),
            base: "allnoconfig".into(),
            fragments: vec![],
            patches: vec![],
            toolchain: "t".into(),
            build_seconds: 1,
        };
        let entry = s.commit(&meta).unwrap();
        assert_eq!(lookup(d.path(), "k1").unwrap().meta().unwrap(), meta);
        assert!(entry.bzimage().is_file());
    }
}
