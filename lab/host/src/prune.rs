//! Keeping the lab's accumulating directories bounded (the image cache, the run directories):
//! the most recently used entries stay, and so does anything used lately, which another
//! process may be about to read or still be writing.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How many entries stay, and how recent a use protects one beyond that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The newest this many (by mtime) stay.
    pub newest: usize,
    /// An entry whose mtime is within this of now stays too.
    pub in_use: Duration,
}

/// Best effort: removes the subdirectories of `dir` that `is_entry` accepts beyond `keep`'s
/// newest (by mtime), except those used within `keep.in_use` of `now`. Returns what it removed.
pub fn by_recency(
    dir: &Path,
    keep: Keep,
    now: SystemTime,
    is_entry: impl Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| is_entry(&e.path()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.0));
    let old = |used: SystemTime| now.duration_since(used).is_ok_and(|age| age >= keep.in_use);
    found
        .into_iter()
        .skip(keep.newest)
        .filter(|(used, _)| old(*used))
        // Looked at again just before: another process may have marked it used meanwhile.
        .filter(|(_, path)| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(old)
        })
        .filter(|(_, path)| std::fs::remove_dir_all(path).is_ok())
        .map(|(_, path)| path)
        .collect()
}

/// Marks `dir` as just used (its mtime), for [`by_recency`].
pub fn mark_used(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn make(root: &Path, name: &str, used: SystemTime) {
        let dir = root.join(name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("data"), b"x").unwrap();
        fs::File::open(&dir).unwrap().set_modified(used).unwrap();
    }

    fn names(root: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn the_newest_and_the_recently_used_stay() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        for d in 1..=5u32 {
            make(root.path(), &format!("old{d}"), now - day * d);
        }
        make(root.path(), "fresh", now - Duration::from_secs(60));
        make(root.path(), "skip-me", now - day * 9);
        fs::write(root.path().join("a-file"), b"not a dir").unwrap();
        let keep = Keep {
            newest: 2,
            in_use: Duration::from_secs(3600),
        };
        let removed = by_recency(root.path(), keep, now, |p| !p.ends_with("skip-me"));
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert_eq!(names(root.path()), ["a-file", "fresh", "old1", "skip-me"]);
        // Used within the hour: it stays even when none is to be kept.
        let none = Keep { newest: 0, ..keep };
        by_recency(root.path(), none, now, |p| !p.ends_with("skip-me"));
        assert_eq!(names(root.path()), ["a-file", "fresh", "skip-me"]);
    }

    #[test]
    fn marking_a_directory_used_moves_it_to_the_front() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        make(root.path(), "a", now - day * 3);
        make(root.path(), "b", now - day * 2);
        mark_used(&root.path().join("a"));
        let keep = Keep {
            newest: 1,
            in_use: Duration::from_secs(3600),
        };
        by_recency(root.path(), keep, SystemTime::now(), |_| true);
        assert_eq!(names(root.path()), ["a"]);
    }
}
