//! Seeding a new work tree from a built one: `kernel mutate` builds in its
//! own tree (`work/<label>+mutate`), and a cold kernel build costs tens of
//! minutes where a copy costs one. The source and build trees are copied
//! with their modification times, and the absolute paths kbuild recorded in
//! the build tree's text files (the saved commands of `.*.cmd`, dependency
//! lists, the generated Makefile) are rewritten to the new tree, also
//! keeping their times, so make finds everything up to date. Anything
//! missed only makes make rebuild more: kbuild rebuilds an object whose
//! saved command differs.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Text files above this size are not scanned for paths (nothing kbuild
/// writes with paths in it is that large; vmlinux and archives are).
const MAX_TEXT: u64 = 32 << 20;

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// Makes `to` (which must not exist) a copy of the work dir `from`: `src` a
/// new worktree of `repo` at `from/src`'s commit with `from/src`'s files and
/// times, `build` a copy with its paths rewritten, and the state files.
pub fn seed(repo: &Path, from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        bail!("{} exists already", to.display());
    }
    let result = copy(repo, from, to);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(to);
        let _ = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(["worktree", "prune"])
            .output();
    }
    result
}

fn copy(repo: &Path, from: &Path, to: &Path) -> Result<()> {
    let (from_src, to_src) = (from.join("src"), to.join("src"));
    let head = Command::new("git")
        .arg("-C")
        .arg(&from_src)
        .args(["rev-parse", "HEAD"])
        .output()
        .context("git rev-parse")?;
    if !head.status.success() {
        bail!("{} is not a git worktree", from_src.display());
    }
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["worktree", "prune"]))?;
    run(Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["worktree", "add", "-q", "--no-checkout", "--detach"])
        .arg(&to_src)
        .arg(&head))?;
    // The files with their times, but not `.git` (the new worktree's own).
    run(Command::new("sh")
        .arg("-c")
        .arg("tar -C \"$0\" --exclude=./.git -cf - . | tar -C \"$1\" -xf -")
        .arg(&from_src)
        .arg(&to_src))?;
    // The index from HEAD; the files on disk are already HEAD's.
    run(Command::new("git")
        .arg("-C")
        .arg(&to_src)
        .args(["reset", "-q"]))?;
    run(Command::new("cp")
        .arg("-a")
        .arg(from.join("build"))
        .arg(to.join("build")))?;
    let old = format!("{}/", from.display());
    let new = format!("{}/", to.display());
    rewrite_paths(&to.join("build"), old.as_bytes(), new.as_bytes())?;
    for state in [crate::source::TREE_STATE, "objects"] {
        let f = from.join(state);
        if f.is_file() {
            std::fs::copy(&f, to.join(state))
                .with_context(|| format!("copying {}", f.display()))?;
        }
    }
    Ok(())
}

/// Replaces `old` by `new` in every text file under `dir` and in symlink
/// targets, keeping each file's modification time. Returns how many changed.
pub fn rewrite_paths(dir: &Path, old: &[u8], new: &[u8]) -> Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", d.display()))?
                .path();
            let meta = std::fs::symlink_metadata(&path)
                .with_context(|| format!("stat {}", path.display()))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path)?;
                let bytes = target.as_os_str().as_encoded_bytes();
                if let Some(t) = replace(bytes, old, new) {
                    let t = String::from_utf8_lossy(&t).into_owned();
                    std::fs::remove_file(&path)?;
                    std::os::unix::fs::symlink(&t, &path)
                        .with_context(|| format!("relinking {}", path.display()))?;
                    changed += 1;
                }
            } else if kind.is_file() && meta.len() <= MAX_TEXT {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if bytes.contains(&0) {
                    continue;
                }
                let Some(text) = replace(&bytes, old, new) else {
                    continue;
                };
                let mtime = meta.modified()?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                let f = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                f.set_modified(mtime)
                    .with_context(|| format!("keeping the time of {}", path.display()))?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

/// `hay` with every `old` replaced by `new`; None if `old` does not occur.
fn replace(hay: &[u8], old: &[u8], new: &[u8]) -> Option<Vec<u8>> {
    if old.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    let mut found = false;
    while i < hay.len() {
        if hay[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
            found = true;
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_all_or_none() {
        assert_eq!(
            replace(b"-I/w/a/src -I/w/a/src/x", b"/w/a/", b"/w/a+m/").unwrap(),
            b"-I/w/a+m/src -I/w/a+m/src/x"
        );
        assert!(replace(b"/w/a+m/src", b"/w/a/", b"/w/b/").is_none());
    }

    #[test]
    fn rewrites_text_and_links_keeping_times_and_skips_binaries() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("build");
        std::fs::create_dir_all(b.join("fs/fuse")).unwrap();
        let cmd = b.join("fs/fuse/.file.o.cmd");
        std::fs::write(&cmd, "savedcmd := gcc -I/w/a/src/include\n").unwrap();
        let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&cmd)
            .unwrap()
            .set_modified(past)
            .unwrap();
        std::fs::write(b.join("file.o"), b"\x7fELF\0/w/a/src").unwrap();
        std::os::unix::fs::symlink("/w/a/src", b.join("source")).unwrap();
        let n = rewrite_paths(&b, b"/w/a/", b"/w/a+m/").unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            std::fs::read_to_string(&cmd).unwrap(),
            "savedcmd := gcc -I/w/a+m/src/include\n"
        );
        assert_eq!(std::fs::metadata(&cmd).unwrap().modified().unwrap(), past);
        assert_eq!(
            std::fs::read(b.join("file.o")).unwrap(),
            b"\x7fELF\0/w/a/src"
        );
        assert_eq!(
            std::fs::read_link(b.join("source")).unwrap(),
            Path::new("/w/a+m/src")
        );
    }
}
