//! Kernel sources: Debian's source package (downloaded, unpacked and
//! committed to a git repo once), a local git ref, or a user's tree; and
//! the per-kernel worktree with the patch series applied on top.

use crate::series::Patch;
use crate::spec::{GitSource, Source};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// Identity used for commits the lab makes in its own trees.
const GIT_ID: [&str; 4] = [
    "-c",
    "user.name=famfs-lab",
    "-c",
    "user.email=famfs-lab@localhost",
];

/// A source, resolved to something exact.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Goes into the cache key; None means "not cacheable" (a user tree
    /// that is not a git checkout).
    pub id: Option<String>,
    /// The exact version, for the build's metadata.
    pub version: String,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// A git repo and commit: the series is applied in a worktree.
    Repo { repo: PathBuf, commit: String },
    /// A tree built as it is.
    Tree(PathBuf),
}

#[derive(Debug, Serialize, Deserialize)]
struct DebianSource {
    package: String,
    version: String,
    deb: String,
}

/// Resolves `source`; a Debian source is fetched and unpacked on first use
/// (or again with `refresh`).
pub fn resolve(sh: &Shell, source: &Source, cache_root: &Path, refresh: bool) -> Result<Resolved> {
    match source {
        Source::Debian(pkg) => debian(sh, pkg, cache_root, refresh),
        Source::Git(g) => git_ref(sh, g),
        Source::Path(p) => tree(sh, p),
    }
}

fn debian(sh: &Shell, pkg: &str, cache_root: &Path, refresh: bool) -> Result<Resolved> {
    let dir = cache_root.join("sources").join("debian").join(pkg);
    let marker = dir.join("source.json");
    if refresh || !marker.is_file() {
        fetch_debian(sh, pkg, cache_root, &dir)?;
    }
    let text = std::fs::read_to_string(&marker)
        .with_context(|| format!("reading {}", marker.display()))?;
    let src: DebianSource =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", marker.display()))?;
    let repo = dir.join("linux");
    let spec = "base^{commit}";
    let commit = cmd!(sh, "git -C {repo} rev-parse {spec}").read()?;
    Ok(Resolved {
        id: Some(format!("debian:{}={}", src.package, src.version)),
        version: format!("{} {}", src.package, src.version),
        kind: Kind::Repo { repo, commit },
    })
}

/// Downloads the package, unpacks its tarball and commits it as tag `base`.
fn fetch_debian(sh: &Shell, pkg: &str, cache_root: &Path, dir: &Path) -> Result<()> {
    let downloads = cache_root.join("downloads");
    let deb = lab_host::apt::download(sh, pkg, lab_host::apt::KERNEL_SOURCE_SUITE, &downloads)?;
    let version = cmd!(sh, "dpkg-deb -f {deb} Version")
        .read()
        .context("reading the .deb's version")?;
    lab_host::progress!("famfs-lab: unpacking {pkg} {version} (once; about a minute)");
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(tmp.join("linux"))?;
    {
        let _cd = sh.push_dir(&tmp);
        let tarball = format!("./usr/src/{pkg}.tar.xz");
        lab_host::say::run(cmd!(
            sh,
            "sh -c 'dpkg-deb --fsys-tarfile \"$0\" | tar -x \"$1\"' {deb} {tarball}"
        ))
        .with_context(|| format!("extracting {tarball} from {}", deb.display()))?;
        lab_host::say::run(cmd!(sh, "tar -C linux --strip-components=1 -xf {tarball}"))?;
        std::fs::remove_dir_all(tmp.join("usr"))?;
    }
    let linux = tmp.join("linux");
    let msg = format!("{pkg} {version}");
    lab_host::say::run(cmd!(sh, "git -C {linux} init -q"))?;
    lab_host::say::run(cmd!(sh, "git -C {linux} config gc.auto 0"))?;
    // Debian's tarball ignores everything at its top level: add with -f.
    lab_host::say::run(cmd!(sh, "git -C {linux} add -A -f"))?;
    lab_host::say::run(cmd!(sh, "git {GIT_ID...} -C {linux} commit -q -m {msg}"))?;
    lab_host::say::run(cmd!(sh, "git -C {linux} tag base"))?;
    let deb_name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = DebianSource {
        package: pkg.to_string(),
        version,
        deb: deb_name,
    };
    std::fs::write(
        tmp.join("source.json"),
        serde_json::to_string(&meta)? + "\n",
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("moving {} into place", dir.display()))?;
    Ok(())
}

fn git_ref(sh: &Shell, g: &GitSource) -> Result<Resolved> {
    let (dir, reference) = (&g.dir, &g.reference);
    let spec = format!("{reference}^{{commit}}");
    let commit = cmd!(sh, "git -C {dir} rev-parse --verify {spec}")
        .read()
        .with_context(|| {
            format!(
                "git source: {reference:?} is not a commit in {}",
                dir.display()
            )
        })?;
    Ok(Resolved {
        id: Some(format!("git:{commit}")),
        version: format!("{} {reference} ({commit})", dir.display()),
        kind: Kind::Repo {
            repo: dir.clone(),
            commit,
        },
    })
}

fn tree(sh: &Shell, path: &Path) -> Result<Resolved> {
    let path = path
        .canonicalize()
        .with_context(|| format!("kernel source {} does not exist", path.display()))?;
    if !path.join("Makefile").is_file() || !path.join("Kconfig").is_file() {
        bail!(
            "{} is not a kernel tree (no Makefile and Kconfig)",
            path.display()
        );
    }
    let head = cmd!(sh, "git -C {path} rev-parse HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .ok();
    let id = match head {
        Some(head) => {
            let diff = cmd!(sh, "git -C {path} diff HEAD")
                .quiet()
                .read()
                .unwrap_or_default();
            let digest = crate::cache::KeyInputs {
                source_id: diff,
                ..Default::default()
            }
            .key();
            Some(format!("path:{}@{head}+{digest}", path.display()))
        }
        None => None,
    };
    let version = id
        .clone()
        .unwrap_or_else(|| format!("{} (not a git tree: never cached)", path.display()));
    Ok(Resolved {
        id,
        version,
        kind: Kind::Tree(path),
    })
}

/// What a worktree holds, so an unchanged series is not re-applied.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TreeState {
    commit: String,
    patches: Vec<String>,
}

/// Makes `work/src` the source's commit plus `patches`, touching only the
/// files that change (so the build tree stays incremental). Returns the
/// source directory to build.
/// The file in a kernel's work dir recording the commit and patches its tree holds.
pub const TREE_STATE: &str = "tree.json";

pub fn prepare_tree(
    sh: &Shell,
    resolved: &Resolved,
    work: &Path,
    patches: &[Patch],
) -> Result<PathBuf> {
    let (repo, commit) = match &resolved.kind {
        Kind::Tree(path) if patches.is_empty() => return Ok(path.clone()),
        Kind::Tree(path) => match user_tree_series(sh, path, patches)? {
            TreeSeries::Applied => return Ok(path.clone()),
            TreeSeries::ApplyToHead(head) => (path.clone(), head),
        },
        Kind::Repo { repo, commit } => (repo.clone(), commit.clone()),
    };
    let (repo, commit) = (&repo, &commit);
    let src = work.join("src");
    let state_file = work.join(TREE_STATE);
    let want = TreeState {
        commit: commit.clone(),
        patches: patches
            .iter()
            .map(|p| format!("{} {}", p.name, digest(&p.bytes)))
            .collect(),
    };
    if src.join(".git").exists() {
        let have: Option<TreeState> = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if have.as_ref() == Some(&want) {
            return Ok(src);
        }
    } else {
        std::fs::create_dir_all(work)?;
        lab_host::say::run(cmd!(sh, "git -C {repo} worktree prune"))?;
        lab_host::say::run(cmd!(
            sh,
            "git -C {repo} worktree add -q --detach {src} {commit}"
        ))?;
    }
    let _ = std::fs::remove_file(&state_file);
    let _ = lab_host::say::run(cmd!(sh, "git -C {src} am --abort").ignore_stderr());
    lab_host::say::run(cmd!(sh, "git -C {src} reset -q --hard {commit}"))?;
    lab_host::say::run(cmd!(sh, "git -C {src} clean -fdq"))?;
    for p in patches {
        apply(sh, &src, p, &resolved.version)?;
    }
    std::fs::write(&state_file, serde_json::to_string_pretty(&want)? + "\n")?;
    Ok(src)
}

/// What a user's tree (`--source-dir`) is to a kernel's series.
#[derive(Debug, PartialEq, Eq)]
enum TreeSeries {
    /// The tree already holds the series (its last patch reverses cleanly): built as it is.
    Applied,
    /// A git tree without it (the first patch applies) and no uncommitted change: the series
    /// goes onto a worktree of this HEAD commit, the user's tree is left alone.
    ApplyToHead(String),
}

/// Decides how a user's tree meets the series, without touching the tree; an error says why
/// neither works and what to do.
fn user_tree_series(sh: &Shell, path: &Path, patches: &[Patch]) -> Result<TreeSeries> {
    let (Some(first), Some(last)) = (patches.first(), patches.last()) else {
        return Ok(TreeSeries::Applied);
    };
    let checks = |patch: &Patch, reverse: bool| -> Result<bool> {
        let p = &patch.path;
        let flag = reverse.then_some("-R");
        let out = cmd!(sh, "git -C {path} apply --check {flag...} {p}")
            .quiet()
            .ignore_status()
            .ignore_stderr()
            .output()
            .context("running git apply --check")?;
        Ok(out.status.success())
    };
    if checks(last, true)? {
        return Ok(TreeSeries::Applied);
    }
    if !checks(first, false)? {
        bail!(
            "{} neither holds the series ({} does not reverse) nor takes it ({} does not \
             apply): a tree with its own version of the series is built as it is by a kernel \
             without one, e.g. `--kernel stock --fragment kernels/famfs-bpf/famfs-bpf.config`",
            path.display(),
            last.name,
            first.name
        );
    }
    let head = cmd!(sh, "git -C {path} rev-parse --verify HEAD")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| {
            anyhow::anyhow!(
                "{} does not hold the series and is not a git tree, and a tree given with \
                 --source-dir is never modified: apply the series there yourself (git am the \
                 files kernels/<name>/patches/series lists, in its order; not \
                 patches/*.patch, which takes the cover letter too) or make it a git tree",
                path.display()
            )
        })?;
    let dirty = cmd!(sh, "git -C {path} status --porcelain --untracked-files=no")
        .quiet()
        .read()
        .context("git status")?;
    if !dirty.is_empty() {
        bail!(
            "{} has uncommitted changes, and the series is applied to a worktree of its HEAD \
             ({head}), which would build without them: commit or stash them \
             (the tree itself is never modified)",
            path.display()
        );
    }
    lab_host::progress!(
        "famfs-lab: {} does not hold the series: applying it to a worktree of HEAD {head}",
        path.display()
    );
    Ok(TreeSeries::ApplyToHead(head))
}

/// Checks then applies one patch as a commit.
fn apply(sh: &Shell, src: &Path, patch: &Patch, base: &str) -> Result<()> {
    let path = &patch.path;
    let check = cmd!(sh, "git -C {src} apply --check {path}")
        .quiet()
        .ignore_status()
        .output()?;
    if !check.status.success() {
        bail!(
            "patch {} does not apply to {base}:\n{}",
            patch.name,
            String::from_utf8_lossy(&check.stderr).trim_end()
        );
    }
    let am = cmd!(sh, "git {GIT_ID...} -C {src} am -q --keep-cr {path}")
        .quiet()
        .ignore_status()
        .output()?;
    if !am.status.success() {
        let _ = lab_host::say::run(cmd!(sh, "git -C {src} am --abort").ignore_stderr());
        bail!(
            "patch {} applies but `git am` refused it (is it `git format-patch` output?):\n{}",
            patch.name,
            String::from_utf8_lossy(&am.stderr).trim_end()
        );
    }
    Ok(())
}

fn digest(bytes: &[u8]) -> String {
    crate::cache::KeyInputs {
        patches: vec![(String::new(), bytes.to_vec())],
        ..Default::default()
    }
    .key()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny git repo standing in for a kernel tree.
    fn repo(sh: &Shell, dir: &Path) -> String {
        std::fs::write(dir.join("a.c"), "int a;\n").unwrap();
        std::fs::write(dir.join("b.c"), "int b;\n").unwrap();
        cmd!(sh, "git -C {dir} init -q").run().unwrap();
        cmd!(sh, "git -C {dir} add -A").run().unwrap();
        cmd!(sh, "git {GIT_ID...} -C {dir} commit -q -m base")
            .run()
            .unwrap();
        cmd!(sh, "git -C {dir} rev-parse HEAD").read().unwrap()
    }

    fn patch(name: &str, file: &str, from: &str, to: &str) -> Patch {
        let text = format!(
            "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
             From: Lab <lab@localhost>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\nSubject: [PATCH] {name}\n\n\
             body\n---\n diff --git a/{file} b/{file}\n--- a/{file}\n+++ b/{file}\n@@ -1 +1 @@\n-{from}\n+{to}\n"
        )
        .replace("\n diff", "\ndiff");
        Patch {
            name: name.into(),
            path: PathBuf::new(),
            bytes: text.into_bytes(),
        }
    }

    fn write(dir: &Path, p: &mut Patch) {
        p.path = dir.join(&p.name);
        std::fs::write(&p.path, &p.bytes).unwrap();
    }

    #[test]
    fn applies_series_and_reapplies_only_on_change() {
        let sh = Shell::new().unwrap();
        let d = tempfile::tempdir().unwrap();
        let (up, work, pdir) = (
            d.path().join("up"),
            d.path().join("work"),
            d.path().join("p"),
        );
        for p in [&up, &pdir] {
            std::fs::create_dir_all(p).unwrap();
        }
        let commit = repo(&sh, &up);
        let resolved = Resolved {
            id: Some("t".into()),
            version: "test tree".into(),
            kind: Kind::Repo {
                repo: up.clone(),
                commit,
            },
        };
        let mut p1 = patch("0001-a.patch", "a.c", "int a;", "int a2;");
        write(&pdir, &mut p1);
        let src = prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p1)).unwrap();
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a2;\n"
        );
        let b_mtime = std::fs::metadata(src.join("b.c"))
            .unwrap()
            .modified()
            .unwrap();
        // Same series: nothing touched. New series: only changed files.
        prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p1)).unwrap();
        let mut p2 = patch("0001-a.patch", "a.c", "int a;", "int a3;");
        write(&pdir, &mut p2);
        prepare_tree(&sh, &resolved, &work, &[p2]).unwrap();
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a3;\n"
        );
        assert_eq!(
            std::fs::metadata(src.join("b.c"))
                .unwrap()
                .modified()
                .unwrap(),
            b_mtime
        );
        // Upstream untouched.
        assert_eq!(std::fs::read_to_string(up.join("a.c")).unwrap(), "int a;\n");
    }

    #[test]
    fn patch_that_does_not_apply_names_itself_and_the_file() {
        let sh = Shell::new().unwrap();
        let d = tempfile::tempdir().unwrap();
        let (up, work) = (d.path().join("up"), d.path().join("work"));
        std::fs::create_dir_all(&up).unwrap();
        let commit = repo(&sh, &up);
        let resolved = Resolved {
            id: None,
            version: "test tree".into(),
            kind: Kind::Repo { repo: up, commit },
        };
        let mut bad = patch("0002-bad.patch", "b.c", "int nope;", "int x;");
        write(d.path(), &mut bad);
        let msg = format!(
            "{:#}",
            prepare_tree(&sh, &resolved, &work, &[bad]).unwrap_err()
        );
        assert!(
            msg.contains("0002-bad.patch") && msg.contains("b.c"),
            "{msg}"
        );
        assert!(
            !work.join("tree.json").exists(),
            "a failed series must not be recorded as applied"
        );
    }

    /// A user's tree (`tree`, empty), a work dir and one patch of `a.c` (`int a;` -> `int a2;`).
    struct UserTree {
        sh: Shell,
        d: tempfile::TempDir,
        tree: PathBuf,
        work: PathBuf,
        resolved: Resolved,
        p: Patch,
    }

    fn user_tree() -> UserTree {
        let sh = Shell::new().unwrap();
        let d = tempfile::tempdir().unwrap();
        let (tree, work) = (d.path().join("tree"), d.path().join("work"));
        std::fs::create_dir_all(&tree).unwrap();
        let resolved = Resolved {
            id: None,
            version: "x".into(),
            kind: Kind::Tree(tree.clone()),
        };
        let mut p = patch("0001-a.patch", "a.c", "int a;", "int a2;");
        write(d.path(), &mut p);
        UserTree {
            sh,
            d,
            tree,
            work,
            resolved,
            p,
        }
    }

    #[test]
    fn user_tree_is_never_patched() {
        let UserTree {
            sh,
            d: _d,
            tree,
            work,
            resolved,
            p,
        } = user_tree();
        // Not a git tree, series not in it: refused, nothing written.
        std::fs::write(tree.join("a.c"), "int a;\n").unwrap();
        let msg = format!(
            "{:#}",
            prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p)).unwrap_err()
        );
        assert!(
            msg.contains("never modified") && msg.contains("not a git tree"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read_to_string(tree.join("a.c")).unwrap(),
            "int a;\n"
        );
        assert_eq!(prepare_tree(&sh, &resolved, &work, &[]).unwrap(), tree);
        // A tree that already holds the series is built as it is.
        std::fs::write(tree.join("a.c"), "int a2;\n").unwrap();
        assert_eq!(
            prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p)).unwrap(),
            tree
        );
        // One that neither holds nor takes it: the error names both patches' checks.
        std::fs::write(tree.join("a.c"), "int other;\n").unwrap();
        let msg = format!(
            "{:#}",
            prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p)).unwrap_err()
        );
        assert!(msg.contains("neither holds the series"), "{msg}");
    }

    #[test]
    fn user_git_tree_gets_the_series_in_a_worktree_of_head() {
        let UserTree {
            sh,
            d: _d,
            tree,
            work,
            resolved,
            p,
        } = user_tree();
        let head = repo(&sh, &tree);
        // Uncommitted changes would be missing from the worktree: refused.
        std::fs::write(tree.join("b.c"), "int b2;\n").unwrap();
        let msg = format!(
            "{:#}",
            prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p)).unwrap_err()
        );
        assert!(msg.contains("uncommitted changes"), "{msg}");
        cmd!(sh, "git -C {tree} checkout -q -- b.c").run().unwrap();
        let src = prepare_tree(&sh, &resolved, &work, std::slice::from_ref(&p)).unwrap();
        assert_ne!(src, tree);
        assert_eq!(
            std::fs::read_to_string(src.join("a.c")).unwrap(),
            "int a2;\n"
        );
        // The user's tree is untouched: same HEAD, same bytes.
        assert_eq!(
            std::fs::read_to_string(tree.join("a.c")).unwrap(),
            "int a;\n"
        );
        assert_eq!(
            cmd!(sh, "git -C {tree} rev-parse HEAD").read().unwrap(),
            head
        );
    }
}
