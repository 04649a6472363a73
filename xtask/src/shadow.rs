//! `cargo xtask shadow new`: a synthetic famfs shadow tree (N files, simple or interleaved, on
//! the given dax devices, allocated without overlap) for suites, benchmarks and hand runs of
//! famfs-fused (`famfs-fused --shadow DIR --mountpoint MNT`).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use famfs_shadow::{DaxDev, DaxDevs, GenerateParams, Layout};
use lab_vm::size::ByteSize;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Shadow {
    /// Generates a shadow tree into a new directory.
    New(NewArgs),
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
        }
    }
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
    println!(
        "wrote a shadow tree of {} files to {} (check it with `famfs-fused --check --shadow {}`)",
        a.files,
        a.out.display(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
