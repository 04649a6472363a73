//! `lab up` boots on a guess: the kernel and image that the same request (checkout, kernel,
//! fragments) was given last time, read from a small record in the cache. QEMU then starts
//! before the real lookup is done (cargo's check of the guest binaries, the kernel's cache
//! key, the image's hash: 0.1-0.15 s on every run); that lookup runs beside the boot, and its
//! answer is compared with the guess before anything reaches the guest
//! ([`lab_runner::run::run_checked`]). The same kernel key and image: the run goes on. Not
//! the same (a source or a tool changed since): the guests are stopped and the run starts
//! again with what the lookup found. A failed lookup ends the run with its error, as it would
//! have without the guess. Requests that rebuild by design (a user's tree, a fresh source, a
//! mutant, a bisection step) never guess.

use crate::build_args::BuildArgs;
use lab_runner::run::Guess;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The directory of the records under the cache root.
const DIR: &str = "last-prepared";

/// What the last lookup of a request found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    kernel_key: String,
    image: PathBuf,
}

/// A guess ready to boot: the kernel's cache entry and the image file, both present.
pub(crate) struct Guessed {
    pub(crate) kernel: lab_kernel::BuiltKernel,
    pub(crate) image: PathBuf,
}

/// Whether `args` may boot on a guess at all: not a request that rebuilds by design (a
/// user's tree, a fresh source, a mutant, a bisection step, a cached-only lookup).
pub(crate) fn guesses(args: &BuildArgs) -> bool {
    !(args.source_dir.is_some()
        || args.refresh_source
        || args.mutant.is_some()
        || args.step.is_some()
        || args.cached_only)
}

/// The record file of `args` in `cache`, or None for a request that never guesses.
fn record_path(cache: &Path, repo: &Path, args: &BuildArgs) -> Option<PathBuf> {
    if !guesses(args) {
        return None;
    }
    let mut h = Sha256::new();
    h.update(repo.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(args.kernel.as_bytes());
    for f in &args.fragments {
        h.update(b"\0");
        h.update(f.as_bytes());
    }
    let key = hex::encode(&h.finalize()[..8]);
    Some(cache.join(DIR).join(format!("{key}.yaml")))
}

/// The guess for `args`, when there is a record, no source the kernel or the image is made
/// from was edited since it was written, and its kernel entry and image still exist.
pub(crate) fn load(args: &BuildArgs) -> Option<Guessed> {
    let cache = lab_host::paths::cache_root();
    let repo = lab_host::paths::repo_root();
    let path = record_path(&cache, &repo, args)?;
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if edited_since(&repo, written) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let record: Record = serde_norway::from_str(&text).ok()?;
    let entry = lab_kernel::cache::lookup(&cache, &record.kernel_key)?;
    let meta = entry.meta().ok()?;
    if meta.key != record.kernel_key || !record.image.is_file() {
        return None;
    }
    Some(Guessed {
        kernel: lab_kernel::BuiltKernel {
            entry,
            meta,
            cache_hit: true,
        },
        image: record.image,
    })
}

/// What the kernel and the image are made from, under the checkout: a file here newer than
/// the record means the guess is likely stale (an edit since the last run), and a stale guess
/// costs a boot beside the rebuild. Only a shortcut: the lookup still decides.
const SOURCES: [&str; 5] = ["lab", "images", "kernels", "Cargo.toml", "Cargo.lock"];

/// Whether a file of [`SOURCES`] under `repo` (build output and hidden files aside) was
/// modified after `t`.
fn edited_since(repo: &Path, t: std::time::SystemTime) -> bool {
    fn newer(path: &Path, t: std::time::SystemTime) -> bool {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return false;
        };
        if meta.modified().is_ok_and(|m| m > t) {
            return true;
        }
        if !meta.is_dir() {
            return false;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return false;
        };
        entries.flatten().any(|e| {
            let name = e.file_name();
            let skip = name == "target" || name.as_encoded_bytes().starts_with(b".");
            !skip && newer(&e.path(), t)
        })
    }
    SOURCES.iter().any(|s| newer(&repo.join(s), t))
}

/// Keeps what the lookup of `args` found for the next run (best effort: without the record
/// the next run waits for its own lookup).
pub(crate) fn save(args: &BuildArgs, kernel: &lab_kernel::BuiltKernel, image: &Path) {
    let cache = lab_host::paths::cache_root();
    let Some(path) = record_path(&cache, &lab_host::paths::repo_root(), args) else {
        return;
    };
    let record = Record {
        kernel_key: kernel.meta.key.clone(),
        image: image.to_path_buf(),
    };
    let Ok(text) = serde_norway::to_string(&record) else {
        return;
    };
    lab_host::cache_file::write(&path, &text);
}

/// What to do once both the run on the guess and the lookup have answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The run on the guess stands (its report, or its error on a confirmed guess).
    Keep,
    /// Boot again with what the lookup found.
    Again,
    /// The lookup failed: its error is the run's.
    LookupFailed,
}

/// `attempt`: the run on the guess (Some(true) a report, Some(false) stopped as stale, None an
/// error); `lookup`: the lookup's verdict on the guess, or None when the lookup failed.
pub(crate) fn next(attempt: Option<bool>, lookup: Option<Guess>) -> Next {
    match (attempt, lookup) {
        (_, None) => Next::LookupFailed,
        (Some(true), Some(_)) => Next::Keep,
        (Some(false), Some(_)) => Next::Again,
        // A run that failed on a guess the lookup did not confirm: again, with what it found.
        (None, Some(Guess::Stale)) => Next::Again,
        (None, Some(Guess::Confirmed)) => Next::Keep,
    }
}

/// Lowers the calling thread's priority (nice 10; the threads and processes it starts inherit
/// it): the lookup has a second before the guest needs its answer, while QEMU's firmware and
/// the kernel's boot want both of a small host's cores now.
pub(crate) fn yield_to_the_boot() {
    // SAFETY: setpriority on the calling thread (its tid) changes only its nice value.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: as above; a failure leaves the priority as it was.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, LOOKUP_NICE) };
}

/// The lookup's nice value beside the boot.
const LOOKUP_NICE: libc::c_int = 10;

/// Writes a record for `args` naming `kernel` and `image` (the stale-guess check plants one).
/// None for a request that never guesses.
pub(crate) fn plant(
    args: &BuildArgs,
    kernel: &lab_kernel::BuiltKernel,
    image: &Path,
) -> Option<()> {
    record_path(
        &lab_host::paths::cache_root(),
        &lab_host::paths::repo_root(),
        args,
    )?;
    save(args, kernel, image);
    Some(())
}

/// Whether the lookup found what was guessed.
pub(crate) fn verdict(guessed: &Guessed, kernel: &lab_kernel::BuiltKernel, image: &Path) -> Guess {
    if guessed.kernel.meta.key == kernel.meta.key && guessed.image == image {
        Guess::Confirmed
    } else {
        Guess::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kernel: &str, fragments: &[&str]) -> BuildArgs {
        BuildArgs {
            kernel: kernel.into(),
            source_dir: None,
            fragments: fragments.iter().map(|f| f.to_string()).collect(),
            no_install: false,
            refresh_source: false,
            jobs: None,
            mutant: None,
            step: None,
            cached_only: false,
        }
    }

    #[test]
    fn one_record_per_checkout_kernel_and_fragments() {
        let cache = Path::new("/c");
        let path = |repo: &str, a: &BuildArgs| record_path(cache, Path::new(repo), a);
        let plain = path("/r", &args("famfs-bpf", &[])).unwrap();
        assert!(plain.starts_with("/c/last-prepared"));
        assert_eq!(Some(plain.clone()), path("/r", &args("famfs-bpf", &[])));
        for other in [
            path("/r", &args("famfs-bpf", &["debug"])),
            path("/r", &args("upstream", &[])),
            path("/other", &args("famfs-bpf", &[])),
        ] {
            assert_ne!(other, Some(plain.clone()));
        }
    }

    #[test]
    fn requests_that_rebuild_never_guess() {
        let repo = Path::new("/r");
        let mut a = args("famfs-bpf", &[]);
        a.source_dir = Some("/src/linux".into());
        assert_eq!(record_path(Path::new("/c"), repo, &a), None);
        let mut a = args("famfs-bpf", &[]);
        a.refresh_source = true;
        assert_eq!(record_path(Path::new("/c"), repo, &a), None);
        let mut a = args("famfs-bpf", &[]);
        a.cached_only = true;
        assert_eq!(record_path(Path::new("/c"), repo, &a), None);
    }

    #[test]
    fn the_lookup_decides_what_happens_after_the_run_on_a_guess() {
        use Guess::{Confirmed, Stale};
        // A failed lookup is the run's error, whatever the run did.
        for attempt in [Some(true), Some(false), None] {
            assert_eq!(next(attempt, None), Next::LookupFailed);
        }
        assert_eq!(next(Some(true), Some(Confirmed)), Next::Keep);
        assert_eq!(next(Some(false), Some(Stale)), Next::Again);
        // An error on a confirmed guess is the run's own; on a stale one, try what was found.
        assert_eq!(next(None, Some(Confirmed)), Next::Keep);
        assert_eq!(next(None, Some(Stale)), Next::Again);
    }

    #[test]
    fn an_edit_under_the_sources_since_the_record_means_no_guess() {
        let repo = tempfile::tempdir().unwrap();
        for d in [
            "lab/guest-agent/src",
            "lab/x/target",
            "kernels/famfs-bpf",
            "xtask",
        ] {
            std::fs::create_dir_all(repo.path().join(d)).unwrap();
        }
        std::fs::write(
            repo.path().join("lab/guest-agent/src/main.rs"),
            "fn main() {}",
        )
        .unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        assert!(!edited_since(repo.path(), later));
        let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
        assert!(edited_since(repo.path(), earlier));
        // Build output, hidden files and what is not a source of the kernel or image aside.
        let source = repo.path().join("lab/guest-agent/src/main.rs");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for p in [
            "lab/guest-agent/src",
            "lab/guest-agent",
            "lab",
            "lab/x",
            "kernels/famfs-bpf",
            "kernels",
        ] {
            let f = std::fs::File::open(repo.path().join(p)).unwrap();
            f.set_modified(old).unwrap();
        }
        std::fs::File::options()
            .write(true)
            .open(&source)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::write(repo.path().join("lab/x/target/out.o"), "").unwrap();
        std::fs::write(repo.path().join("xtask/main.rs"), "").unwrap();
        let f = std::fs::File::open(repo.path().join("lab/x")).unwrap();
        f.set_modified(old).unwrap();
        let a_while_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30);
        assert!(!edited_since(repo.path(), a_while_ago));
        std::fs::write(repo.path().join("kernels/famfs-bpf/0001.patch"), "").unwrap();
        assert!(edited_since(repo.path(), a_while_ago));
    }

    #[test]
    fn only_the_same_kernel_key_and_image_confirm_a_guess() {
        let kernel = |key: &str| lab_kernel::BuiltKernel {
            entry: lab_kernel::cache::Entry {
                dir: PathBuf::from("/c/kernels").join(key),
            },
            meta: lab_kernel::cache::Meta {
                key: key.into(),
                kernel: "famfs-bpf".into(),
                label: "famfs-bpf".into(),
                source_id: String::new(),
                source_version: String::new(),
                release: String::new(),
                base: String::new(),
                fragments: Vec::new(),
                patches: Vec::new(),
                toolchain: String::new(),
                build_seconds: 0,
            },
            cache_hit: true,
        };
        let guessed = Guessed {
            kernel: kernel("k1"),
            image: "/c/images/a/initramfs.cpio".into(),
        };
        let image = |h: &str| PathBuf::from(format!("/c/images/{h}/initramfs.cpio"));
        assert_eq!(
            verdict(&guessed, &kernel("k1"), &image("a")),
            Guess::Confirmed
        );
        assert_eq!(verdict(&guessed, &kernel("k2"), &image("a")), Guess::Stale);
        assert_eq!(verdict(&guessed, &kernel("k1"), &image("b")), Guess::Stale);
    }
}
