//! Tailing the guest serial log (`RUN/serial.log`) that QEMU writes.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Line the kernel prints on a panic.
pub const KERNEL_PANIC_MARK: &str = "Kernel panic - not syncing";

/// How often a wait reads the log again: the console lags the kmsg write that a marker is (the
/// kernel prints from its printk thread), and every case waits for its end marker, so a coarse
/// poll costs each case most of a poll (a read of the new bytes is cheap).
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct SerialLog {
    path: PathBuf,
}

impl SerialLog {
    pub fn new(path: impl Into<PathBuf>) -> SerialLog {
        SerialLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current length in bytes (0 while the file does not exist).
    pub fn len(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes from `offset` to the current end (empty while the file does not exist).
    pub fn read_from(&self, offset: u64) -> Result<Vec<u8>> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("open {}", self.path.display()), e)),
        };
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_to_end(&mut buf))
            .map_err(|e| Error::io(format!("read {}", self.path.display()), e))?;
        Ok(buf)
    }

    /// The last `n` lines, lossily decoded (empty if unreadable).
    pub fn last_lines(&self, n: usize) -> String {
        let text = self.read_from(0).unwrap_or_default();
        last_lines_of(&String::from_utf8_lossy(&text), n)
    }

    /// The kernel panic line, if the guest panicked.
    pub fn find_panic(&self) -> Option<String> {
        let text = self.read_from(0).ok()?;
        String::from_utf8_lossy(&text)
            .lines()
            .find(|l| l.contains(KERNEL_PANIC_MARK))
            .map(|l| l.trim().to_string())
    }

    /// Waits for `pattern` anywhere in the log; see [`SerialLog::wait_for_from`].
    pub async fn wait_for(
        &self,
        pattern: &str,
        timeout: Duration,
        exited: impl FnMut() -> bool,
    ) -> Result<u64> {
        self.wait_for_from(0, pattern, timeout, exited).await
    }

    /// Waits until `pattern` appears at or after byte `from`; returns the offset where it starts
    /// (continue after it with `offset + pattern.len()`). Fails on timeout, or as soon as
    /// `exited()` reports that QEMU is gone and the rest of the log does not hold the pattern.
    pub async fn wait_for_from(
        &self,
        from: u64,
        pattern: &str,
        timeout: Duration,
        mut exited: impl FnMut() -> bool,
    ) -> Result<u64> {
        let pat = pattern.as_bytes();
        if pat.is_empty() {
            return Ok(from);
        }
        let start = Instant::now();
        let mut base = from; // file offset of buf[0]
        let mut buf: Vec<u8> = Vec::new();
        loop {
            // Look at "exited" before reading, so output written just before the exit is seen.
            let gone = exited();
            buf.extend(self.read_from(base + buf.len() as u64)?);
            if let Some(i) = buf.windows(pat.len()).position(|w| w == pat) {
                return Ok(base + i as u64);
            }
            let keep = pat.len() - 1;
            if buf.len() > keep {
                let drop_n = buf.len() - keep;
                buf.drain(..drop_n);
                base += drop_n as u64;
            }
            let reason = if gone {
                "QEMU exited".to_string()
            } else if start.elapsed() >= timeout {
                format!("timed out after {timeout:?}")
            } else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            return Err(Error::SerialPatternMissing {
                path: self.path.clone(),
                pattern: pattern.to_string(),
                reason,
                tail: self.last_lines(40),
            });
        }
    }
}

fn last_lines_of(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn waits_for_pattern_written_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SerialLog::new(dir.path().join("serial.log"));
        let path = log.path().to_path_buf();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            let mut f = File::create(&path).expect("create");
            f.write_all(b"booting\nfamfs-lab agent ").expect("write");
            f.flush().expect("flush");
            tokio::time::sleep(Duration::from_millis(120)).await;
            f.write_all(b"ready\nmore\n").expect("write");
        });
        let at = log
            .wait_for("agent ready", Duration::from_secs(5), || false)
            .await
            .expect("pattern seen");
        assert_eq!(at, 18); // after "booting\nfamfs-lab "
        writer.await.expect("writer");
        assert_eq!(log.read_from(at).expect("read"), b"agent ready\nmore\n");
        assert_eq!(log.last_lines(2), "famfs-lab agent ready\nmore");
        let err = log
            .wait_for_from(at + 1, "agent ready", Duration::from_secs(5), || true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("QEMU exited"), "{err}");
        let err = log
            .wait_for("never", Duration::from_millis(100), || false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    #[test]
    fn finds_panic_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serial.log");
        std::fs::write(
            &path,
            "x\n[ 1.0] Kernel panic - not syncing: Attempted to kill init!\n",
        )
        .expect("write");
        let log = SerialLog::new(&path);
        assert_eq!(
            log.find_panic().as_deref(),
            Some("[ 1.0] Kernel panic - not syncing: Attempted to kill init!")
        );
        assert_eq!(SerialLog::new(dir.path().join("none")).find_panic(), None);
    }
}
