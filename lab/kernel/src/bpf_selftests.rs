//! The series' BPF selftests (`tools/testing/selftests/bpf/progs/fuse_dax_fmap*.c` of the
//! kernel tree), compiled when a kernel is installed into its cache entry, against that
//! kernel's own BTF (`vmlinux.h` from its vmlinux by bpftool) and the tree's libbpf headers, as
//! the selftests' Makefile would. The `bpf_selftests` suite loads them in the guest.
//!
//! The entry's `bpf-selftests/` holds `NAME.bpf.o` for every source that compiled and
//! `NAME.err` (clang's output) for every one that did not; `setup.err` when the headers
//! could not be made. No directory: the tree has no such selftests.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The directory in a cache entry.
pub const DIR: &str = "bpf-selftests";
/// Where the sources live in a kernel tree.
pub const PROGS: &str = "tools/testing/selftests/bpf/progs";
/// The sources that are the series' selftests: `PREFIX*.c` (and their `PREFIX*.h`).
pub const PREFIX: &str = "fuse_dax_fmap";
/// What failed before anything could be compiled.
pub const SETUP_ERR: &str = "setup.err";

/// libbpf's headers the selftests include as `<bpf/...>` (tools/lib/bpf).
const LIBBPF_HEADERS: [&str; 4] = [
    "bpf_helpers.h",
    "bpf_tracing.h",
    "bpf_core_read.h",
    "bpf_endian.h",
];

/// The selftests Makefile's BPF_CFLAGS that matter here (x86 only, like the lab).
const CFLAGS: [&str; 11] = [
    "-g",
    "-O2",
    "--target=bpfel",
    "-mcpu=v3",
    "-D__TARGET_ARCH_x86",
    "-Wall",
    "-std=gnu11",
    "-fno-strict-aliasing",
    "-fms-extensions",
    "-Wno-microsoft-anon-tag",
    "-Wno-compare-distinct-pointer-types",
];

/// The selftest sources of `tree` (`PREFIX*.c` in [`PROGS`]), sorted; empty when it has none.
pub fn sources(tree: &Path) -> Result<Vec<PathBuf>> {
    let dir = tree.join(PROGS);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(PREFIX) && name.ends_with(".c") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The object file name of a source: `NAME.c` -> `NAME.bpf.o`.
pub fn object_name(source: &Path) -> String {
    let stem = source.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    format!("{stem}.bpf.o")
}

/// Compiles the selftests of the kernel tree `src` against `vmlinux` into `dest/DIR`. Returns
/// how many compiled and how many did not, or `None` when the tree has no selftests. Only a
/// failure to write into `dest` is an error: a tool that fails is recorded for the suite.
pub fn compile(
    sh: &Shell,
    src: &Path,
    vmlinux: &Path,
    dest: &Path,
) -> Result<Option<(usize, usize)>> {
    let sources = sources(src)?;
    if sources.is_empty() {
        return Ok(None);
    }
    let out = dest.join(DIR);
    let include = out.join("include");
    std::fs::create_dir_all(include.join("bpf"))
        .with_context(|| format!("creating {}", include.display()))?;
    if let Err(e) = headers(sh, src, vmlinux, &include) {
        std::fs::write(out.join(SETUP_ERR), format!("{e:#}\n"))?;
        let _ = std::fs::remove_dir_all(&include);
        return Ok(Some((0, sources.len())));
    }
    let (mut ok, mut failed) = (0, 0);
    for source in &sources {
        let object = out.join(object_name(source));
        let output = cmd!(sh, "clang {CFLAGS...} -I{include} -c {source} -o {object}")
            .ignore_status()
            .output()
            .with_context(|| format!("running clang for {}", source.display()))?;
        if output.status.success() {
            ok += 1;
        } else {
            failed += 1;
            let err = out.join(object.with_extension("").with_extension("err"));
            std::fs::write(&err, &output.stderr)?;
        }
    }
    // vmlinux.h alone is megabytes: the entry keeps only the objects.
    std::fs::remove_dir_all(&include)?;
    Ok(Some((ok, failed)))
}

/// `include/`: the selftests' headers of the tree, libbpf's, the generated helper
/// definitions and this kernel's vmlinux.h.
fn headers(sh: &Shell, src: &Path, vmlinux: &Path, include: &Path) -> Result<()> {
    let progs = src.join(PROGS);
    for e in std::fs::read_dir(&progs)? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".h") && (name.starts_with(PREFIX) || name == "bpf_misc.h") {
            std::fs::copy(&path, include.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    for h in LIBBPF_HEADERS {
        let from = src.join("tools/lib/bpf").join(h);
        std::fs::copy(&from, include.join("bpf").join(h))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    // As tools/lib/bpf/Makefile makes it.
    let doc = src.join("scripts/bpf_doc.py");
    let uapi = src.join("include/uapi/linux/bpf.h");
    let defs = cmd!(sh, "python3 {doc} --header --file {uapi}")
        .quiet()
        .read()
        .context("generating bpf_helper_defs.h with scripts/bpf_doc.py")?;
    std::fs::write(include.join("bpf/bpf_helper_defs.h"), defs)?;
    let vmlinux_h = cmd!(sh, "bpftool btf dump file {vmlinux} format c")
        .quiet()
        .read()
        .with_context(|| format!("dumping the BTF of {} with bpftool", vmlinux.display()))?;
    std::fs::write(include.join("vmlinux.h"), vmlinux_h)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_the_series_selftests() {
        let tree = tempfile::tempdir().unwrap();
        assert!(sources(tree.path()).unwrap().is_empty());
        let progs = tree.path().join(PROGS);
        std::fs::create_dir_all(&progs).unwrap();
        for f in [
            "fuse_dax_fmap_fail__b.c",
            "fuse_dax_fmap.c",
            "fuse_dax_fmap_common.h",
            "bpf_misc.h",
            "other.c",
        ] {
            std::fs::write(progs.join(f), "").unwrap();
        }
        let found: Vec<String> = sources(tree.path())
            .unwrap()
            .iter()
            .map(|p| object_name(p))
            .collect();
        assert_eq!(
            found,
            ["fuse_dax_fmap.bpf.o", "fuse_dax_fmap_fail__b.bpf.o"]
        );
    }
}
