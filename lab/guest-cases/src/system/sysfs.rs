//! Small helpers over sysfs and device files in the guest.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Reads a sysfs attribute, trimmed.
pub fn read(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

/// Reads a number written in decimal or `0x` hex.
pub fn read_u64(path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    let text = read(path)?;
    parse_u64(&text).with_context(|| format!("{}: not a number: {text:?}", path.display()))
}

pub fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Writes a sysfs attribute.
pub fn write(path: impl AsRef<Path>, value: &str) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
}

/// Entries of `dir` whose names start with `prefix`, sorted naturally
/// (`mem2` before `mem10`).
pub fn list(dir: impl AsRef<Path>, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.as_ref())
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_key(|n| {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        (n.len(), digits.parse::<u64>().unwrap_or(0), n.clone())
    });
    names
}

/// Polls `f` every 20 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> Result<T> {
    wait_for_every(what, timeout, Duration::from_millis(20), f)
}

/// Polls `f` every `every` until it returns Some or `timeout` passes (the setup, which every
/// run waits for, polls every 5 ms).
pub fn wait_for_every<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {:?} waiting for {what}", timeout);
        }
        std::thread::sleep(every);
    }
}

/// The driver bound to a device (the name of its `driver` link target).
pub fn driver_of(dev: &Path) -> Option<String> {
    let target = std::fs::read_link(dev.join("driver")).ok()?;
    target
        .file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
}

/// The canonical path of a sysfs device link.
pub fn real(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))
}

/// Writes `name` to a sysfs file in a thread; false if it did not return within `timeout`.
pub fn sysfs_write_timeout(
    path: &str,
    name: &str,
    timeout: Duration,
) -> std::result::Result<Result<()>, ()> {
    let (tx, rx) = mpsc::channel();
    let (p, n) = (path.to_string(), name.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::write(&p, &n).with_context(|| format!("writing {n} to {p}")));
    });
    rx.recv_timeout(timeout).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_hex_and_decimal() {
        assert_eq!(parse_u64("0x40000000"), Some(1 << 30));
        assert_eq!(parse_u64("4096"), Some(4096));
        assert_eq!(parse_u64("zz"), None);
    }

    #[test]
    fn list_sorts_naturally() {
        let d = tempfile::tempdir().unwrap();
        for n in ["mem10", "mem2", "mem1", "other"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        assert_eq!(list(d.path(), "mem"), ["mem1", "mem2", "mem10"]);
    }

    #[test]
    fn wait_for_times_out_with_the_thing_named() {
        let err = wait_for::<()>("mem0", Duration::from_millis(50), || None).unwrap_err();
        assert!(err.to_string().contains("mem0"));
        assert_eq!(
            wait_for("x", Duration::from_secs(1), || Some(3)).unwrap(),
            3
        );
    }
}
