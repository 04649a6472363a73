//! The content-addressed image cache: `<cache>/images/<hash>/{initramfs.cpio,manifest.txt}`.
//! An image directory only ever appears by renaming a fully written and synced temporary
//! directory, so its existence means it is complete.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::image::{BuiltImage, Plan};
use crate::{io_err, ImageError, Result};

pub const CPIO_NAME: &str = "initramfs.cpio";
pub const MANIFEST_NAME: &str = "manifest.txt";
const TMP_PREFIX: &str = ".tmp-";
const STALE_TMP: Duration = Duration::from_secs(3600);
/// Images kept after a build: the most recently used ones (each is ~20 MiB, and every change
/// to a guest binary makes a new one).
pub const KEEP_IMAGES: usize = 12;
/// An image used this recently is never pruned, however many are newer (another run may be
/// about to boot it).
const IN_USE: Duration = Duration::from_secs(3600);

/// `$FAMFS_LAB_CACHE`, else `$XDG_CACHE_HOME/famfs-lab`, else `~/.cache/famfs-lab`.
pub fn default_cache_root() -> Result<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("FAMFS_LAB_CACHE") {
        return Ok(p);
    }
    if let Some(p) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(p.join("famfs-lab"));
    }
    match var("HOME") {
        Some(home) => Ok(home.join(".cache").join("famfs-lab")),
        None => Err(ImageError::Input(
            "no cache directory: set FAMFS_LAB_CACHE, XDG_CACHE_HOME or HOME".into(),
        )),
    }
}

pub(crate) fn materialize(plan: &Plan, cache: &Path) -> Result<BuiltImage> {
    let images = cache.join("images");
    let dir = images.join(plan.hash());
    let mut image = BuiltImage {
        path: dir.join(CPIO_NAME),
        manifest: dir.join(MANIFEST_NAME),
        hash: plan.hash().to_owned(),
        cache_hit: true,
        size: 0,
        files: plan.len(),
        notes: plan.notes().to_vec(),
    };
    if let Ok(meta) = fs::metadata(&image.path) {
        image.size = meta.len();
        tracing::info!("image {} cache hit ({} bytes)", image.hash, image.size);
        lab_host::prune::mark_used(&dir);
        return Ok(image);
    }
    let started = Instant::now();
    fs::create_dir_all(&images).map_err(io_err(&images))?;
    remove_stale_tmp(&images);
    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempdir_in(&images)
        .map_err(io_err(&images))?;
    let cpio_tmp = tmp.path().join(CPIO_NAME);
    let file = File::create(&cpio_tmp).map_err(io_err(&cpio_tmp))?;
    let (out, size) = plan
        .write_cpio(BufWriter::new(file))
        .map_err(io_err(&cpio_tmp))?;
    let file = out
        .into_inner()
        .map_err(|e| io_err(&cpio_tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&cpio_tmp))?;
    let manifest_tmp = tmp.path().join(MANIFEST_NAME);
    let mut file = File::create(&manifest_tmp).map_err(io_err(&manifest_tmp))?;
    file.write_all(plan.manifest().as_bytes())
        .map_err(io_err(&manifest_tmp))?;
    file.sync_all().map_err(io_err(&manifest_tmp))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(io_err(tmp.path()))?;
    if dir.exists() && !image.path.exists() {
        // Not made by us (we only create complete dirs): clear it so the rename can land.
        let _ = fs::remove_dir_all(&dir);
    }
    match fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            if let Ok(d) = File::open(&images) {
                let _ = d.sync_all();
            }
        }
        // Lost a race against an identical build: theirs is complete and equal; tmp is dropped.
        Err(_) if image.path.is_file() => {}
        Err(e) => return Err(io_err(&dir)(e)),
    }
    image.cache_hit = false;
    image.size = size;
    prune(&images, KEEP_IMAGES, SystemTime::now());
    tracing::info!(
        "image {} built: {} entries, {} bytes in {:.2?}",
        image.hash,
        image.files,
        size,
        started.elapsed()
    );
    Ok(image)
}

/// Best effort: removes the images beyond the `keep` most recently used, except those used
/// within [`IN_USE`] of `now` (temporary build directories are [`remove_stale_tmp`]'s).
pub fn prune(images: &Path, keep: usize, now: SystemTime) -> Vec<PathBuf> {
    let keep = lab_host::prune::Keep {
        newest: keep,
        in_use: IN_USE,
    };
    let removed = lab_host::prune::by_recency(images, keep, now, |dir| {
        let tmp = dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX));
        !tmp && dir.join(CPIO_NAME).is_file()
    });
    if !removed.is_empty() {
        tracing::info!(
            "pruned {} old images from {}",
            removed.len(),
            images.display()
        );
    }
    removed
}

/// Best effort: removes temporary dirs left by crashed builds (older than an hour).
fn remove_stale_tmp(images: &Path) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age > STALE_TMP)
        });
        if stale && e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_most_recently_used_and_the_ones_in_use() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        // Five images used 5, 4, 3, 2 and 1 days ago, one used a minute ago, and a stray
        // directory without a cpio (not an image: left alone).
        let make = |name: &str, used: SystemTime, cpio: bool| {
            let dir = root.path().join(name);
            fs::create_dir(&dir).unwrap();
            if cpio {
                fs::write(dir.join(CPIO_NAME), b"x").unwrap();
            }
            File::open(&dir).unwrap().set_modified(used).unwrap();
        };
        for d in 1..=5u32 {
            make(&format!("old{d}"), now - day * d, true);
        }
        make("fresh", now - Duration::from_secs(60), true);
        make("not-an-image", now - day * 9, false);
        let removed = prune(root.path(), 2, now);
        let mut names: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["fresh", "not-an-image", "old1"]);
        assert_eq!(removed.len(), 4);
        // Used within the hour: kept even beyond `keep`.
        assert!(prune(root.path(), 0, now)
            .iter()
            .all(|d| !d.ends_with("fresh")));
        assert!(root.path().join("fresh").is_dir());
        assert!(!root.path().join("old1").exists());
    }

    // The only test in this binary that touches these variables.
    #[test]
    fn cache_root_precedence() {
        std::env::set_var("FAMFS_LAB_CACHE", "/x/famfs");
        std::env::set_var("XDG_CACHE_HOME", "/xdg");
        assert_eq!(default_cache_root().ok(), Some(PathBuf::from("/x/famfs")));
        std::env::set_var("FAMFS_LAB_CACHE", "");
        assert_eq!(
            default_cache_root().ok(),
            Some(PathBuf::from("/xdg/famfs-lab"))
        );
        std::env::remove_var("XDG_CACHE_HOME");
        std::env::set_var("HOME", "/home/u");
        assert_eq!(
            default_cache_root().ok(),
            Some(PathBuf::from("/home/u/.cache/famfs-lab"))
        );
    }
}
