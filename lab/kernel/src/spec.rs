//! `kernels/<name>/kernel.yaml`: what one kernel is made of.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file as written (serde's view; validated into [`KernelSpec`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelFile {
    #[serde(default)]
    description: String,
    source: SourceFile,
    #[serde(default)]
    base: BaseConfig,
    #[serde(default)]
    fragments: Vec<String>,
    #[serde(default = "default_targets")]
    targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    debian: Option<String>,
    path: Option<PathBuf>,
    git: Option<GitSource>,
}

/// A local git repository and a ref to check out into a worktree.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    pub dir: PathBuf,
    #[serde(rename = "ref")]
    pub reference: String,
}

/// Where a kernel's source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Debian source package (`linux-source-7.3`), fetched with apt.
    Debian(String),
    /// A tree the user has; built out of tree and never modified.
    Path(PathBuf),
    /// A ref of a local git repository, checked out into a worktree.
    Git(GitSource),
}

/// The config target the fragments are merged onto.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BaseConfig {
    /// Everything off but what the fragments ask for (measured fastest).
    #[default]
    Allnoconfig,
    /// The architecture's defconfig, plus the fragments.
    Defconfig,
}

impl BaseConfig {
    pub fn make_target(self) -> &'static str {
        match self {
            BaseConfig::Allnoconfig => "allnoconfig",
            BaseConfig::Defconfig => "defconfig",
        }
    }
}

fn default_targets() -> Vec<String> {
    ["bzImage", "vmlinux", "modules"].map(String::from).to_vec()
}

/// One kernel, validated: the directory it lives in, and its parts.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    pub name: String,
    pub dir: PathBuf,
    pub description: String,
    pub source: Source,
    pub base: BaseConfig,
    /// Fragment files, in merge order.
    pub fragments: Vec<PathBuf>,
    pub targets: Vec<String>,
}

impl KernelSpec {
    /// Loads `kernels_dir/<name>/kernel.yaml`.
    pub fn load(kernels_dir: &Path, name: &str) -> Result<Self> {
        let dir = kernels_dir.join(name);
        let file = dir.join("kernel.yaml");
        if !file.exists() {
            let known = list(kernels_dir).unwrap_or_default().join(", ");
            bail!(
                "no kernel named {name:?}: {} does not exist (known: {known})",
                file.display()
            );
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        Self::parse(&text, name, &dir, kernels_dir)
            .with_context(|| format!("invalid {}", file.display()))
    }

    /// Parses and validates the text of a kernel.yaml.
    pub fn parse(text: &str, name: &str, dir: &Path, kernels_dir: &Path) -> Result<Self> {
        let raw: KernelFile = serde_norway::from_str(text)?;
        let source = match (raw.source.debian, raw.source.path, raw.source.git) {
            (Some(pkg), None, None) => Source::Debian(pkg),
            (None, Some(path), None) => Source::Path(path),
            (None, None, Some(git)) => Source::Git(git),
            (None, None, None) => bail!("source: needs one of `debian`, `path` or `git`"),
            _ => bail!("source: give only one of `debian`, `path` or `git`"),
        };
        if raw.targets.is_empty() {
            bail!("targets: must list at least one make target (e.g. bzImage)");
        }
        let fragments = raw
            .fragments
            .iter()
            .map(|f| resolve_fragment(f, dir, kernels_dir))
            .collect::<Result<Vec<_>>>()?;
        Ok(KernelSpec {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            description: raw.description,
            source,
            base: raw.base,
            fragments,
            targets: raw.targets,
        })
    }

    /// The patch series directory (`patches/`, with its `series` file).
    pub fn patches_dir(&self) -> PathBuf {
        self.dir.join("patches")
    }
}

/// A fragment reference: a bare name is `kernels/config/<name>.config`;
/// anything ending in `.config` is a path relative to the kernel's
/// directory (or absolute).
pub fn resolve_fragment(reference: &str, kernel_dir: &Path, kernels_dir: &Path) -> Result<PathBuf> {
    let path = if reference.ends_with(".config") {
        kernel_dir.join(reference)
    } else {
        kernels_dir
            .join("config")
            .join(format!("{reference}.config"))
    };
    if !path.is_file() {
        bail!(
            "fragments: {reference:?} not found (looked for {})",
            path.display()
        );
    }
    Ok(path)
}

/// The kernels defined under `kernels_dir`, sorted.
pub fn list(kernels_dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(kernels_dir)
        .with_context(|| format!("reading {}", kernels_dir.display()))?
        .flatten()
        .filter(|e| e.path().join("kernel.yaml").is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("config")).unwrap();
        std::fs::create_dir_all(d.path().join("k")).unwrap();
        std::fs::write(d.path().join("config/base.config"), "CONFIG_A=y\n").unwrap();
        std::fs::write(d.path().join("k/own.config"), "CONFIG_B=y\n").unwrap();
        d
    }

    fn parse(text: &str, d: &Path) -> Result<KernelSpec> {
        KernelSpec::parse(text, "k", &d.join("k"), d)
    }

    #[test]
    fn parses_a_debian_kernel_with_defaults() {
        let d = tree();
        let spec = parse(
            "source: { debian: linux-source-7.3 }\nfragments: [base, own.config]\n",
            d.path(),
        )
        .unwrap();
        assert_eq!(spec.source, Source::Debian("linux-source-7.3".into()));
        assert_eq!(spec.base, BaseConfig::Allnoconfig);
        assert_eq!(spec.targets, ["bzImage", "vmlinux", "modules"]);
        assert!(spec.fragments[0].ends_with("config/base.config"));
        assert!(spec.fragments[1].ends_with("k/own.config"));
    }

    #[test]
    fn parses_git_and_path_sources() {
        let d = tree();
        let git = parse(
            "source: { git: { dir: /src/linux, ref: v7.3 } }\n",
            d.path(),
        )
        .unwrap();
        assert_eq!(
            git.source,
            Source::Git(GitSource {
                dir: "/src/linux".into(),
                reference: "v7.3".into()
            })
        );
        let path = parse("source: { path: /src/linux }\nbase: defconfig\n", d.path()).unwrap();
        assert_eq!(path.source, Source::Path("/src/linux".into()));
        assert_eq!(path.base, BaseConfig::Defconfig);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let d = tree();
        let err = parse("source: { debian: x }\nfragmens: [base]\n", d.path()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("fragmens") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn missing_or_ambiguous_source_is_an_error() {
        let d = tree();
        let err = parse("fragments: [base]\n", d.path()).unwrap_err();
        assert!(format!("{err:#}").contains("source"), "{err:#}");
        let err = parse("source: {}\n", d.path()).unwrap_err();
        assert!(format!("{err:#}").contains("needs one of"), "{err:#}");
        let err = parse("source: { debian: x, path: /y }\n", d.path()).unwrap_err();
        assert!(format!("{err:#}").contains("only one"), "{err:#}");
    }

    #[test]
    fn missing_fragment_is_named() {
        let d = tree();
        let err = parse("source: { debian: x }\nfragments: [nope]\n", d.path()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("\"nope\"") && msg.contains("nope.config"),
            "{msg}"
        );
    }

    #[test]
    fn load_names_the_file_and_known_kernels() {
        let d = tree();
        std::fs::write(
            d.path().join("k/kernel.yaml"),
            "source: { debian: x }\nbogus: 1\n",
        )
        .unwrap();
        let msg = format!("{:#}", KernelSpec::load(d.path(), "k").unwrap_err());
        assert!(
            msg.contains("k/kernel.yaml") && msg.contains("bogus"),
            "{msg}"
        );
        let msg = format!("{:#}", KernelSpec::load(d.path(), "zz").unwrap_err());
        assert!(msg.contains("known: k"), "{msg}");
    }
}
