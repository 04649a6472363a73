//! The image recipe (`images/guest.yaml`): which host files go where, plus symlinks,
//! directories, device nodes and busybox applets. Unknown keys are errors.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{tree, ImageError, Result};

/// Library search path used when a recipe does not give `library_dirs`.
pub const DEFAULT_LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Host files to copy (symlinks on the host are followed: the guest gets a regular file).
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub symlinks: Vec<SymlinkSpec>,
    #[serde(default)]
    pub directories: Vec<DirSpec>,
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    #[serde(default)]
    pub busybox: Option<BusyboxSpec>,
    /// Where DT_NEEDED libraries are looked up, in order (host path == guest path).
    #[serde(default = "default_library_dirs")]
    pub library_dirs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub host: PathBuf,
    /// Guest path; defaults to the host path.
    #[serde(default)]
    pub guest: Option<String>,
    /// Debian package that ships `host` (named in the error when it is missing).
    pub package: String,
    /// A missing optional file is skipped with a note instead of failing the build.
    #[serde(default)]
    pub optional: bool,
    /// Permission bits as a quoted octal string ("0755"); defaults to the host file's.
    #[serde(
        default,
        deserialize_with = "opt_octal",
        skip_serializing_if = "Option::is_none"
    )]
    pub mode: Option<u32>,
}

impl FileSpec {
    pub fn guest_path(&self) -> String {
        match &self.guest {
            Some(g) => g.clone(),
            None => self.host.to_string_lossy().into_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    pub path: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    pub path: String,
    #[serde(default = "default_dir_mode", deserialize_with = "octal")]
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
    Block,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub path: String,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    #[serde(default = "default_dev_mode", deserialize_with = "octal")]
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusyboxSpec {
    /// Guest path of the busybox binary; must be the `guest` of an entry in `files`. Its host
    /// file is run with `--list-full` at build time; each listed applet becomes a symlink to
    /// it unless something (a real binary, another symlink) already has that path.
    pub binary: String,
    /// Applet paths (as `--list-full` prints them, e.g. `linuxrc`) not to link.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn default_library_dirs() -> Vec<String> {
    DEFAULT_LIBRARY_DIRS.iter().map(|s| s.to_string()).collect()
}
fn default_dir_mode() -> u32 {
    0o755
}
fn default_dev_mode() -> u32 {
    0o600
}

struct OctalVisitor;

impl serde::de::Visitor<'_> for OctalVisitor {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a quoted octal permission string such as \"0755\"")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<u32, E> {
        match u32::from_str_radix(v, 8) {
            Ok(m) if m <= 0o7777 && !v.is_empty() => Ok(m),
            _ => Err(E::custom(format!(
                "invalid mode {v:?}: expected octal digits <= 7777 such as \"0755\""
            ))),
        }
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<u32, E> {
        Err(E::custom(format!(
            "mode {v} must be a quoted octal string (YAML reads 0755 as decimal): write \"0755\""
        )))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<u32, E> {
        self.visit_u64(v.unsigned_abs())
    }
}

fn octal<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    d.deserialize_any(OctalVisitor)
}

fn opt_octal<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    octal(d).map(Some)
}

impl Recipe {
    /// Reads and validates a recipe file.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| ImageError::Recipe {
            origin: path.display().to_string(),
            message: e.to_string(),
        })?;
        Recipe::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and validates recipe text; `origin` names it in errors. Syntax and schema
    /// errors carry serde_norway's line/column and the offending key.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Recipe> {
        let err = |message: String| ImageError::Recipe {
            origin: origin.to_string(),
            message,
        };
        let recipe: Recipe = serde_norway::from_str(text).map_err(|e| err(e.to_string()))?;
        recipe.validate().map_err(err)?;
        Ok(recipe)
    }

    /// Canonical bytes of the recipe, for the content hash.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings/numbers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = BTreeSet::new();
        let mut claim = |what: String, path: &str| -> std::result::Result<(), String> {
            let norm = tree::normalize(path).map_err(|e| format!("{what}: {e}"))?;
            if !seen.insert(norm) {
                return Err(format!(
                    "{what}: guest path {path} appears twice in the recipe"
                ));
            }
            Ok(())
        };
        for (i, f) in self.files.iter().enumerate() {
            if !f.host.is_absolute() {
                return Err(format!(
                    "files[{i}].host: {} is not absolute",
                    f.host.display()
                ));
            }
            if f.package.trim().is_empty() {
                return Err(format!("files[{i}].package: empty"));
            }
            claim(format!("files[{i}].guest"), &f.guest_path())?;
        }
        for (i, s) in self.symlinks.iter().enumerate() {
            claim(format!("symlinks[{i}].path"), &s.path)?;
            if s.target.is_empty() {
                return Err(format!("symlinks[{i}].target: empty"));
            }
        }
        for (i, d) in self.directories.iter().enumerate() {
            claim(format!("directories[{i}].path"), &d.path)?;
        }
        for (i, d) in self.devices.iter().enumerate() {
            claim(format!("devices[{i}].path"), &d.path)?;
        }
        for (i, d) in self.library_dirs.iter().enumerate() {
            if !d.starts_with('/') {
                return Err(format!("library_dirs[{i}]: {d} is not absolute"));
            }
        }
        if let Some(bb) = &self.busybox {
            let target = tree::normalize(&bb.binary).map_err(|e| format!("busybox.binary: {e}"))?;
            let found = self
                .files
                .iter()
                .any(|f| tree::normalize(&f.guest_path()).is_ok_and(|g| g == target));
            if !found {
                return Err(format!(
                    "busybox.binary: {} is not the guest path of any entry in files",
                    bb.binary
                ));
            }
        }
        Ok(())
    }

    /// The `files` entry whose guest path is `guest`.
    pub fn file_for_guest(&self, guest: &str) -> Option<&FileSpec> {
        let want = tree::normalize(guest).ok()?;
        self.files
            .iter()
            .find(|f| tree::normalize(&f.guest_path()).is_ok_and(|g| g == want))
    }
}
