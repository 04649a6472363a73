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

/// The record file of `args` in `cache`, or None for a request that never guesses.
fn record_path(cache: &Path, repo: &Path, args: &BuildArgs) -> Option<PathBuf> {
    let rebuilds = args.source_dir.is_some()
        || args.refresh_source
        || args.mutant.is_some()
        || args.step.is_some()
        || args.cached_only;
    if rebuilds {
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
    let key: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(cache.join(DIR).join(format!("{key}.yaml")))
}

/// The guess for `args`, when there is a record and its kernel entry and image still exist.
pub(crate) fn load(args: &BuildArgs) -> Option<Guessed> {
    let cache = lab_host::paths::cache_root();
    let path = record_path(&cache, &lab_host::paths::repo_root(), args)?;
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

/// Whether the lookup found what was guessed.
pub(crate) fn verdict(guessed: &Guessed, kernel: &lab_kernel::BuiltKernel, image: &Path) -> Guess {
    if guessed.kernel.meta.key == kernel.meta.key && guessed.image == image {
        Guess::Confirmed
    } else {
        Guess::Stale
    }
}

/// `cargo xtask test`'s check that a stale guess is never run: it plants a record naming a
/// copy of the image (another path, so the lookup cannot confirm it), runs one case through
/// `lab up`, and requires that the cases ran on the image the lookup found, not the guess.
pub(crate) fn check_stale_guess(sh: &xshell::Shell, up: &crate::up::UpArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let cache = lab_host::paths::cache_root();
    let repo = lab_host::paths::repo_root();
    let path = record_path(&cache, &repo, &up.kernel)
        .context("the check's request never guesses (a user's tree or a mutant?)")?;
    let real = load(&up.kernel).context("no guess recorded by the run before the check")?;
    let planted = cache.join(DIR).join("stale-guess-check.cpio");
    std::fs::copy(&real.image, &planted)
        .with_context(|| format!("copying {} for the check", real.image.display()))?;
    let record = Record {
        kernel_key: real.kernel.meta.key.clone(),
        image: planted.clone(),
    };
    lab_host::cache_file::write(&path, &serde_norway::to_string(&record)?);
    let mut one = up.clone();
    one.suites.clear();
    one.cases = vec![CHECK_CASE.into()];
    let report = crate::up::up_report(sh, &one);
    let _ = std::fs::remove_file(&planted);
    let report = report?;
    let booted = report.meta.get("image").map(String::as_str);
    if booted != Some(&*real.image.to_string_lossy()) {
        anyhow::bail!(
            "lab up ran its cases on a stale guess: booted {booted:?}, the lookup found {}",
            real.image.display()
        );
    }
    if report.failed() {
        anyhow::bail!("{CHECK_CASE} failed after the stale guess was replaced");
    }
    Ok(())
}

/// The case the stale-guess check runs.
const CHECK_CASE: &str = "smoke.memdevs";

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
