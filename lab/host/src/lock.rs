//! Cross-process locks: the machine has two cores, so two kernel builds
//! must never run at once (a second one waits for the first).

use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Holds an exclusive `flock` until dropped.
pub struct Lock {
    _file: File,
}

/// Takes an exclusive lock on `path`, waiting (and saying so) if another
/// process holds it.
pub fn exclusive(path: &Path, what: &str) -> Result<Lock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        crate::progress!(
            "famfs-lab: waiting for {what} in another process ({})",
            path.display()
        );
        // SAFETY: as above, blocking this time.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_until_the_first_drops() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.lock");
        let first = exclusive(&path, "test").unwrap();
        let p2 = path.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _second = exclusive(&p2, "test").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "must wait"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("gets the lock after release");
        t.join().unwrap();
    }
}
