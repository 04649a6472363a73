//! Mutants of a patch series: `kernels/<name>/mutants/<mutant>.patch`, each a
//! small unified diff against the fully applied series that removes or weakens
//! one behaviour, with a header saying which:
//!
//! ```text
//! Description: iomap_begin no longer checks that the range ends inside the device
//! Expect: security.evil_past_end, security.evil_overflow
//! Note: free text, e.g. why the suites cannot see it;
//!   continued on lines that start with white space
//! Equivalent: why no test can tell it from the series (it then does not count
//!   against the score when it survives); continued like Note
//!
//! diff --git a/fs/fuse/dax_fmap.c b/fs/fuse/dax_fmap.c
//! --- a/fs/fuse/dax_fmap.c
//! +++ b/fs/fuse/dax_fmap.c
//! @@ ...
//! ```
//!
//! The name is the file's stem. `Description` is required and one line;
//! `Expect` (the cases meant to kill it) and `Note` are optional. A mutant is
//! applied to a build tree as an uncommitted change ([`apply`]) and taken out
//! again ([`restore`]); a marker file in the work dir lets the next build
//! clean up after an interrupted one.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of a kernel's mutants, beside its `patches/`.
pub const MUTANTS_DIR: &str = "mutants";

/// While a mutant is applied, its diff sits here in the work dir (the marker).
pub const APPLIED_MARKER: &str = "mutant.patch";

/// One mutant, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    pub name: String,
    pub path: PathBuf,
    /// What the mutant removes or weakens, one line.
    pub description: String,
    /// The cases its author expects to kill it (documentation; not enforced).
    pub expect: Vec<String>,
    /// Free text, e.g. which case should catch a survivor.
    pub note: Option<String>,
    /// Why the mutant is equivalent to the series (no test can kill it): a survivor with
    /// this does not count against the score.
    pub equivalent: Option<String>,
    /// The unified diff, from its first `diff --git` or `---` line.
    pub diff: String,
    /// The files the diff changes (`+++ b/...`).
    pub files: Vec<String>,
}

/// Why a mutant kernel could not be had; the rest are lab errors.
#[derive(Debug, thiserror::Error)]
pub enum MutantError {
    #[error("mutant {name} does not apply to the series: {detail}")]
    DoesNotApply { name: String, detail: String },
    #[error("mutant {name} does not build: {detail}")]
    BuildFailed { name: String, detail: String },
}

/// A valid mutant name: what a file name and a `--mutant` argument can carry.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Parses the text of `path` (named `name`).
pub fn parse(text: &str, name: &str, path: &Path) -> Result<Mutant> {
    let where_ = |line: usize| format!("{}:{line}", path.display());
    if !valid_name(name) {
        bail!(
            "{}: mutant name {name:?} must be lower-case letters, digits, '-' or '_'",
            path.display()
        );
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut description: Option<String> = None;
    let mut expect = Vec::new();
    let mut note: Option<String> = None;
    let mut equivalent: Option<String> = None;
    let mut last_key: Option<&str> = None;
    let mut i = 0;
    while i < lines.len() && !lines[i].trim().is_empty() {
        let line = lines[i];
        let n = i + 1;
        i += 1;
        if line.starts_with([' ', '\t']) {
            let continued = match last_key {
                Some("Note") => Some(&mut note),
                Some("Equivalent") => Some(&mut equivalent),
                _ => None,
            };
            match (continued, last_key) {
                (Some(field), _) => {
                    let text = field.get_or_insert_with(String::new);
                    text.push(' ');
                    text.push_str(line.trim());
                }
                (None, Some(key)) => bail!(
                    "{}: only Note and Equivalent continue on the next line, not {key}",
                    where_(n)
                ),
                (None, None) => bail!("{}: a continuation line before any field", where_(n)),
            }
            continue;
        }
        if line.starts_with("diff --git ") || line.starts_with("--- ") {
            bail!(
                "{}: the diff must follow the header after an empty line",
                where_(n)
            );
        }
        let Some((key, value)) = line.split_once(':') else {
            bail!(
                "{}: expected `Key: value` (Description, Expect, Note or Equivalent), got {line:?}",
                where_(n)
            );
        };
        let value = value.trim();
        match key {
            "Description" => {
                if description.is_some() {
                    bail!("{}: Description given twice", where_(n));
                }
                if value.is_empty() {
                    bail!("{}: Description is empty", where_(n));
                }
                description = Some(value.to_string());
                last_key = Some("Description");
            }
            "Expect" => {
                for case in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    if !case.contains('.') {
                        bail!(
                            "{}: Expect lists case ids (SUITE.NAME), not {case:?}",
                            where_(n)
                        );
                    }
                    expect.push(case.to_string());
                }
                last_key = Some("Expect");
            }
            "Note" => {
                if note.is_some() {
                    bail!("{}: Note given twice", where_(n));
                }
                note = Some(value.to_string());
                last_key = Some("Note");
            }
            "Equivalent" => {
                if equivalent.is_some() {
                    bail!("{}: Equivalent given twice", where_(n));
                }
                if value.is_empty() {
                    bail!(
                        "{}: Equivalent needs the reason no test can kill the mutant",
                        where_(n)
                    );
                }
                equivalent = Some(value.to_string());
                last_key = Some("Equivalent");
            }
            other => bail!(
                "{}: unknown field {other:?} (known: Description, Expect, Note, Equivalent)",
                where_(n)
            ),
        }
    }
    let Some(description) = description else {
        bail!(
            "{}: no `Description:` line (one line saying what the mutant removes)",
            path.display()
        );
    };
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let Some(first) = lines.get(i) else {
        bail!("{}: no diff after the header", path.display());
    };
    if !(first.starts_with("diff --git ") || first.starts_with("--- ")) {
        bail!(
            "{}: the diff must start with `diff --git` or `---`, got {first:?}",
            where_(i + 1)
        );
    }
    let diff = lines[i..].join("\n") + "\n";
    let files = crate::series::touched_files(diff.as_bytes());
    if files.is_empty() || !diff.lines().any(|l| l.starts_with("@@ ")) {
        bail!(
            "{}: the diff has no `+++ b/FILE` line or no hunk (`@@ ... @@`)",
            path.display()
        );
    }
    Ok(Mutant {
        name: name.to_string(),
        path: path.to_path_buf(),
        description,
        expect,
        note,
        equivalent,
        diff,
        files,
    })
}

/// Reads one mutant file.
pub fn load(path: &Path) -> Result<Mutant> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&text, &name, path)
}

/// Every `*.patch` of `dir`, by name. A missing directory has no mutants;
/// other files (a README) are left alone.
pub fn list(dir: &Path) -> Result<Vec<Mutant>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "patch") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

/// The mutants of `all` named in `names`, in the order given; every name
/// must exist. No names: all of them.
pub fn select(all: &[Mutant], names: &[String]) -> Result<Vec<Mutant>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter().find(|m| &m.name == n).cloned().ok_or_else(|| {
                let known: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
                anyhow::anyhow!("no mutant {n:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

fn git(src: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(src)
        .args(args)
        .output()
        .with_context(|| format!("running git {} in {}", args.join(" "), src.display()))
}

/// Puts `src` back to its commit if a mutant was left applied (the marker in
/// `work`) or the tree has uncommitted changes; only changed files are
/// rewritten, so the build stays incremental.
pub fn restore(work: &Path) -> Result<()> {
    let src = work.join("src");
    let marker = work.join(APPLIED_MARKER);
    if !src.join(".git").exists() {
        let _ = std::fs::remove_file(&marker);
        return Ok(());
    }
    let interrupted = std::fs::read_to_string(&marker).ok();
    let dirty = interrupted.is_some() || !git(&src, &["diff", "--quiet", "HEAD"])?.status.success();
    if !dirty {
        return Ok(());
    }
    // A build killed while compiling the mutant can leave a half-written object
    // or saved command (make then fails to parse it): drop both, so the files
    // the mutant touched are compiled again.
    if let Some(diff) = &interrupted {
        for file in crate::series::touched_files(diff.as_bytes()) {
            for stale in build_products(&work.join("build"), &file) {
                let _ = std::fs::remove_file(stale);
            }
        }
    }
    for args in [
        &["reset", "-q", "--hard", "HEAD"][..],
        &["clean", "-fdq"][..],
    ] {
        let out = git(&src, args)?;
        if !out.status.success() {
            bail!(
                "git {} in {}: {}",
                args.join(" "),
                src.display(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
    }
    let _ = std::fs::remove_file(&marker);
    Ok(())
}

/// The object and saved-command files kbuild makes in `build` for the source
/// `file` (`fs/fuse/x.c` -> `fs/fuse/x.o`, `fs/fuse/.x.o.cmd`); none for headers.
pub fn build_products(build: &Path, file: &str) -> Vec<PathBuf> {
    let path = Path::new(file);
    let (Some(dir), Some(stem), Some("c")) = (
        path.parent(),
        path.file_stem().and_then(|s| s.to_str()),
        path.extension().and_then(|e| e.to_str()),
    ) else {
        return Vec::new();
    };
    vec![
        build.join(dir).join(format!("{stem}.o")),
        build.join(dir).join(format!(".{stem}.o.cmd")),
    ]
}

/// A mutant applied to a tree; restores the tree when dropped.
pub struct Applied {
    work: PathBuf,
}

impl Drop for Applied {
    fn drop(&mut self) {
        if let Err(e) = restore(&self.work) {
            eprintln!("famfs-lab: restoring the mutant tree: {e:#}");
        }
    }
}

/// Applies `m` to `work/src` as an uncommitted change (marker first, so an
/// interrupted run is cleaned up by the next [`restore`]).
pub fn apply(work: &Path, m: &Mutant) -> Result<Applied> {
    let src = work.join("src");
    let marker = work.join(APPLIED_MARKER);
    std::fs::write(&marker, &m.diff).with_context(|| format!("writing {}", marker.display()))?;
    let applied = Applied {
        work: work.to_path_buf(),
    };
    let marker_arg = marker.to_string_lossy().into_owned();
    let check = git(&src, &["apply", "--check", &marker_arg])?;
    if !check.status.success() {
        return Err(MutantError::DoesNotApply {
            name: m.name.clone(),
            detail: String::from_utf8_lossy(&check.stderr)
                .trim_end()
                .to_string(),
        }
        .into());
    }
    let out = git(&src, &["apply", &marker_arg])?;
    if !out.status.success() {
        bail!(
            "git apply {} in {}: {}",
            m.path.display(),
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str =
        "diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a;\n+int b;\n";

    fn parse_text(text: &str) -> Result<Mutant> {
        parse(text, "m1", Path::new("mutants/m1.patch"))
    }

    #[test]
    fn parses_header_and_diff() {
        let text = format!(
            "Description: a becomes b\nExpect: open.a, fault.b\nNote: first\n  second line\n\n{DIFF}"
        );
        let m = parse_text(&text).unwrap();
        assert_eq!(m.name, "m1");
        assert_eq!(m.description, "a becomes b");
        assert_eq!(m.expect, ["open.a", "fault.b"]);
        assert_eq!(m.note.as_deref(), Some("first second line"));
        assert_eq!(m.diff, DIFF);
        assert_eq!(m.files, ["a.c"]);
    }

    #[test]
    fn equivalent_takes_a_reason_on_one_or_more_lines() {
        let text = format!(
            "Description: a becomes b\nEquivalent: the type check\n  refuses it first\n\n{DIFF}"
        );
        let m = parse_text(&text).unwrap();
        assert_eq!(
            m.equivalent.as_deref(),
            Some("the type check refuses it first")
        );
        let msg = format!(
            "{:#}",
            parse_text(&format!("Description: x\nEquivalent:\n\n{DIFF}")).unwrap_err()
        );
        assert!(
            msg.contains("m1.patch:2: Equivalent needs the reason"),
            "{msg}"
        );
    }

    #[test]
    fn plain_diff_without_git_header_is_accepted() {
        let m =
            parse_text("Description: x\n\n\n--- a/b.c\n+++ b/b.c\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
        assert_eq!(m.files, ["b.c"]);
        assert!(m.note.is_none() && m.expect.is_empty() && m.equivalent.is_none());
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (format!("Expect: open.a\n\n{DIFF}"), "no `Description:`"),
            (
                format!("Description:\n\n{DIFF}"),
                "m1.patch:1: Description is empty",
            ),
            (
                format!("Description: x\nDescription: y\n\n{DIFF}"),
                "m1.patch:2: Description given twice",
            ),
            (
                format!("Description: x\nOwner: me\n\n{DIFF}"),
                "m1.patch:2: unknown field \"Owner\"",
            ),
            (
                format!("Description: x\nExpect: smoke\n\n{DIFF}"),
                "m1.patch:2: Expect lists case ids",
            ),
            (
                format!("Description: x\n  more\n\n{DIFF}"),
                "m1.patch:2: only Note and Equivalent continue",
            ),
            (
                format!("Description: x\n{DIFF}"),
                "m1.patch:2: the diff must follow",
            ),
            ("Description: x\n\n".to_string(), "no diff after the header"),
            (
                "Description: x\n\nsome text\n".to_string(),
                "m1.patch:3: the diff must start",
            ),
            (
                "Description: x\n\n--- a/b.c\n+++ b/b.c\n".to_string(),
                "no hunk",
            ),
            (
                "just words\n".to_string(),
                "m1.patch:1: expected `Key: value`",
            ),
        ];
        for (text, want) in cases {
            let msg = format!("{:#}", parse_text(&text).unwrap_err());
            assert!(msg.contains(want), "{text:?}: {msg}");
        }
        let msg = format!(
            "{:#}",
            parse("Description: x\n\n", "Bad Name", Path::new("x.patch")).unwrap_err()
        );
        assert!(msg.contains("lower-case"), "{msg}");
    }

    #[test]
    fn build_products_of_c_files_only() {
        let b = Path::new("/b");
        assert_eq!(
            build_products(b, "fs/fuse/dax_fmap.c"),
            [
                PathBuf::from("/b/fs/fuse/dax_fmap.o"),
                PathBuf::from("/b/fs/fuse/.dax_fmap.o.cmd")
            ]
        );
        assert!(build_products(b, "include/linux/fuse_dax_fmap.h").is_empty());
    }

    #[test]
    fn list_reads_patches_by_name_and_select_keeps_the_given_order() {
        let d = tempfile::tempdir().unwrap();
        assert!(list(&d.path().join("none")).unwrap().is_empty());
        for n in ["b-two", "a-one"] {
            std::fs::write(
                d.path().join(format!("{n}.patch")),
                format!("Description: {n}\n\n{DIFF}"),
            )
            .unwrap();
        }
        std::fs::write(d.path().join("README.md"), "not a mutant").unwrap();
        let all = list(d.path()).unwrap();
        let names: Vec<_> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a-one", "b-two"]);
        let picked = select(&all, &["b-two".into(), "a-one".into()]).unwrap();
        assert_eq!(picked[0].name, "b-two");
        assert_eq!(select(&all, &[]).unwrap().len(), 2);
        let msg = format!("{:#}", select(&all, &["c".into()]).unwrap_err());
        assert!(
            msg.contains("no mutant \"c\"") && msg.contains("a-one"),
            "{msg}"
        );
    }

    fn run(dir: &Path, args: &[&str]) {
        let out = git(dir, args).unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }

    #[test]
    fn apply_then_drop_restores_and_an_interrupted_apply_is_cleaned_up() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.c"), "int a;\n").unwrap();
        run(&src, &["init", "-q"]);
        run(&src, &["add", "-A"]);
        run(
            &src,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "base",
            ],
        );
        let m = parse_text(&format!("Description: x\n\n{DIFF}")).unwrap();
        {
            let _applied = apply(d.path(), &m).unwrap();
            assert_eq!(
                std::fs::read_to_string(src.join("a.c")).unwrap(),
                "int b;\n"
            );
            assert!(d.path().join(APPLIED_MARKER).exists());
        }
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a;\n"
        );
        assert!(!d.path().join(APPLIED_MARKER).exists());

        // A run killed while the mutant was in: the next restore cleans up,
        // also the half-built products of the files it touched.
        let applied = apply(d.path(), &m).unwrap();
        std::fs::write(src.join("new.c"), "junk").unwrap();
        std::fs::create_dir_all(d.path().join("build")).unwrap();
        std::fs::write(d.path().join("build/.a.o.cmd"), "savedcmd_a.o := $(wildc").unwrap();
        std::fs::write(d.path().join("build/b.o"), "kept").unwrap();
        std::mem::forget(applied);
        restore(d.path()).unwrap();
        assert!(!d.path().join("build/.a.o.cmd").exists());
        assert!(d.path().join("build/b.o").exists());
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a;\n"
        );
        assert!(!src.join("new.c").exists());
        assert!(!d.path().join(APPLIED_MARKER).exists());

        // A mutant whose context is not in the tree.
        let stale =
            parse_text("Description: x\n\n--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int zzz;\n+int y;\n")
                .unwrap();
        let err = apply(d.path(), &stale).err().unwrap();
        assert!(
            matches!(
                err.downcast_ref::<MutantError>(),
                Some(MutantError::DoesNotApply { .. })
            ),
            "{err:#}"
        );
        assert!(!d.path().join(APPLIED_MARKER).exists());
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a;\n"
        );
    }

    #[test]
    fn the_famfs_bpf_mutants_parse_and_touch_the_series_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let kernel = root.join("kernels/famfs-bpf");
        let all = list(&kernel.join(MUTANTS_DIR)).unwrap();
        assert!(all.len() >= 20, "{} mutants", all.len());
        let series = crate::series::read(&kernel.join("patches")).unwrap();
        let touched: Vec<String> = series
            .iter()
            .flat_map(|p| crate::series::touched_files(&p.bytes))
            .collect();
        for m in &all {
            for f in &m.files {
                assert!(touched.contains(f), "{}: {f} is not in the series", m.name);
            }
        }
    }
}
