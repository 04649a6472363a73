//! `cargo xtask shadow new`: a synthetic famfs shadow tree (N files, simple or interleaved, on
//! the given dax devices, allocated without overlap) for suites, benchmarks and hand runs of
//! famfs-fused (`famfs-fused --shadow DIR --mountpoint MNT`).
//! `cargo xtask shadow check DIR`: the validation `lab up --shadow DIR` does before it builds
//! anything, alone: every error with its file and line, or one line saying the tree is valid.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use famfs_shadow::{DaxDev, DaxDevs, GenerateParams, Layout};
use lab_vm::size::ByteSize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum Shadow {
    /// Generates a shadow tree into a new directory.
    New(NewArgs),
    /// Validates a shadow tree as `lab up --shadow` does (nothing is built or booted): prints
    /// one line if it is valid, else fails with every error (file:line).
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The shadow tree (daxdevs.yaml + root/).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Also check a device image as `lab up --daxdev-data` would take it (the index is in
    /// daxdevs.yaml, the file opens).
    #[arg(long = "daxdev-data", value_name = "INDEX=FILE")]
    daxdev_data: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayoutKind {
    Simple,
    Interleaved,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// Directory to create the tree in (must not hold one already).
    #[arg(long)]
    out: PathBuf,
    /// Device slots, `INDEX=PATH` or `INDEX=PATH:SIZE` (e.g. `0=/dev/dax0.0:1G`); repeat per
    /// device. With a size, nothing is allocated past the device's end.
    #[arg(long = "dev", required = true)]
    devs: Vec<String>,
    /// Number of files.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// File sizes (K, M, G suffixes), used in turn; multiples of 2 MiB are mapped exactly.
    #[arg(long = "size", default_values_t = vec!["2M".to_string()])]
    sizes: Vec<String>,
    #[arg(long, value_enum, default_value = "simple")]
    layout: LayoutKind,
    /// Simple layout: extents per file.
    #[arg(long, default_value_t = 1)]
    extents: u32,
    /// Interleaved layout: strips per file.
    #[arg(long, default_value_t = 2)]
    strips: u32,
    /// Interleaved layout: chunk size.
    #[arg(long, default_value = "2M")]
    chunk: String,
    /// Spread the files over this many directories (0: all at the root).
    #[arg(long, default_value_t = 0)]
    dirs: usize,
    /// First device offset to allocate from.
    #[arg(long, default_value = "0")]
    base: String,
    /// Mark the files famfs "shared" (they may overlap other shared files).
    #[arg(long)]
    shared: bool,
}

impl Shadow {
    pub fn run(self) -> Result<()> {
        match self {
            Shadow::New(a) => new(&a),
            Shadow::Check(a) => {
                println!("{}", check(&a.dir, &a.daxdev_data)?);
                Ok(())
            }
        }
    }
}

/// Validates the tree at `dir` (and the device images of `data`, `INDEX=FILE`); the one-line
/// summary when valid, else an error listing every problem with its file and line.
fn check(dir: &Path, data: &[String]) -> Result<String> {
    let mut images = std::collections::BTreeMap::new();
    for arg in data {
        let (i, file) = lab_runner::user_tree::parse_data_arg(arg)?;
        if images.insert(i, file).is_some() {
            bail!("--daxdev-data: index {i} given twice");
        }
    }
    if !dir.is_dir() {
        bail!(
            "{}: not a directory (a shadow tree holds daxdevs.yaml and root/)",
            dir.display()
        );
    }
    let tree = famfs_shadow::load(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let user = lab_runner::user_tree::UserTree {
        dir: dir.to_path_buf(),
        data: images,
    };
    user.check_data(&tree)?;
    Ok(format!(
        "{}: valid shadow tree: {} files, {} directories, {} devices",
        dir.display(),
        tree.files.len(),
        tree.dirs.len(),
        tree.daxdevs.0.len()
    ))
}

fn size(what: &str, v: &str) -> Result<u64> {
    v.parse::<ByteSize>()
        .map(|b| b.0)
        .map_err(|e| anyhow::anyhow!("{what} {v:?}: {e} (use e.g. 4096, 2M, 1G)"))
}

/// `INDEX=PATH[:SIZE]`.
fn parse_dev(s: &str) -> Result<(u32, DaxDev)> {
    let (index, rest) = s
        .split_once('=')
        .with_context(|| format!("--dev {s:?}: expected INDEX=PATH or INDEX=PATH:SIZE"))?;
    let index: u32 = index
        .trim()
        .parse()
        .with_context(|| format!("--dev {s:?}: index {index:?} is not a number"))?;
    let (path, dev_size) = match rest.rsplit_once(':') {
        Some((p, sz)) => (p, Some(size(&format!("--dev {s:?} size"), sz)?)),
        None => (rest, None),
    };
    if path.is_empty() {
        bail!("--dev {s:?}: the path is empty");
    }
    Ok((
        index,
        DaxDev {
            path: path.to_string(),
            size: dev_size,
        },
    ))
}

fn params(a: &NewArgs) -> Result<GenerateParams> {
    let mut devices = DaxDevs::default();
    for d in &a.devs {
        let (i, dev) = parse_dev(d)?;
        if devices.0.insert(i, dev).is_some() {
            bail!("--dev: slot {i} is given twice");
        }
    }
    let sizes = a
        .sizes
        .iter()
        .map(|s| size("--size", s))
        .collect::<Result<Vec<_>>>()?;
    let layout = match a.layout {
        LayoutKind::Simple => Layout::Simple { extents: a.extents },
        LayoutKind::Interleaved => {
            let chunk = size("--chunk", &a.chunk)?;
            let chunk_size = u32::try_from(chunk)
                .with_context(|| format!("--chunk {}: must be below 4 GiB", a.chunk))?;
            Layout::Interleaved {
                nstrips: a.strips,
                chunk_size,
            }
        }
    };
    Ok(GenerateParams {
        files: a.files,
        layout,
        sizes,
        devices,
        dirs: a.dirs,
        base_offset: size("--base", &a.base)?,
        shared: a.shared,
        ..GenerateParams::default()
    })
}

fn new(a: &NewArgs) -> Result<()> {
    let p = params(a)?;
    let tree = famfs_shadow::generate(&p).map_err(|e| anyhow::anyhow!("{e}"))?;
    famfs_shadow::write(&tree, &a.out).map_err(|e| anyhow::anyhow!("{e}"))?;
    lab_host::progress!(
        "famfs-lab: wrote a shadow tree of {} files to {} (check it with `cargo xtask shadow check {}`)",
        a.files,
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generated valid tree of `files` files on devices 0 and 1.
    fn valid_tree(files: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("t");
        let mut devices = DaxDevs::default();
        for i in 0..2 {
            let path = format!("/dev/dax{i}.0");
            devices.0.insert(i, DaxDev { path, size: None });
        }
        let p = GenerateParams {
            files,
            devices,
            ..GenerateParams::default()
        };
        let tree = famfs_shadow::generate(&p).expect("generate");
        famfs_shadow::write(&tree, &out).expect("write");
        dir
    }

    #[test]
    fn check_passes_a_valid_tree_with_one_line() {
        let d = valid_tree(3);
        let t = d.path().join("t");
        let line = check(&t, &[]).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(line.contains("valid shadow tree: 3 files"), "{line}");
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn check_fails_with_every_error_and_its_line() {
        let d = valid_tree(2);
        let t = d.path().join("t");
        // Device 1 twice, and a file whose size does not match its extents.
        std::fs::write(
            t.join("daxdevs.yaml"),
            "0: /dev/dax0.0\n1: /dev/dax1.0\n1: /dev/dax2.0\n",
        )
        .unwrap();
        let file = std::fs::read_dir(t.join("root"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_file())
            .expect("a file");
        let yaml = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, yaml.replacen("size:", "size: 99999999999 #", 1)).unwrap();
        let err = format!("{:#}", check(&t, &[]).expect_err("invalid"));
        assert!(err.contains("2 error(s)"), "{err}");
        assert!(
            err.contains("daxdevs.yaml:3: device index 1 is given twice"),
            "{err}"
        );
        assert!(err.contains(&format!("{}:", file.display())), "{err}");
    }

    #[test]
    fn check_refuses_a_missing_tree_and_bad_device_data() {
        let d = valid_tree(1);
        let missing = d.path().join("nope");
        let err = check(&missing, &[]).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        let t = d.path().join("t");
        let err = format!("{:#}", check(&t, &["7=/dev/null".into()]).unwrap_err());
        assert!(err.contains("has no index 7"), "{err}");
        assert!(check(&t, &["0=/dev/null".into()]).is_ok());
    }

    #[test]
    fn dev_slots_parse_with_and_without_size() {
        let (i, d) = parse_dev("3=/dev/dax1.0:1G").unwrap();
        assert_eq!(
            (i, d.path.as_str(), d.size),
            (3, "/dev/dax1.0", Some(1 << 30))
        );
        let (i, d) = parse_dev("0=/dev/dax0.0").unwrap();
        assert_eq!((i, d.size), (0, None));
        for bad in ["/dev/dax0.0", "x=/dev/dax0.0", "0=", "0=/dev/dax0.0:lots"] {
            let e = parse_dev(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
