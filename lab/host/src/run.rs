//! Running a long command (a kernel build) with its whole output in a log
//! file, each line offered to a callback (progress), and the log's tail in
//! the error when it fails.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;

/// Runs `cmd` with stdout and stderr merged into `log`; `on_line` sees every
/// line as it comes. On a non-zero exit the error carries `summarize(log)`.
pub fn run_logged(
    mut cmd: Command,
    log: &Path,
    mut on_line: impl FnMut(&str),
    summarize: impl Fn(&str) -> String,
) -> Result<()> {
    let shown = format!("{cmd:?}");
    let mut log_file =
        File::create(log).with_context(|| format!("creating log {}", log.display()))?;
    writeln!(log_file, "$ {shown}")?;
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    cmd.stdout(writer.try_clone()?).stderr(writer);
    let mut child = cmd.spawn().with_context(|| format!("starting {shown}"))?;
    drop(cmd);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("reading command output")?;
        if n == 0 {
            break;
        }
        log_file.write_all(&line)?;
        on_line(String::from_utf8_lossy(&line).trim_end());
    }
    let status = child.wait().context("waiting for command")?;
    log_file.flush()?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        bail!(
            "{shown} failed ({status})\n{}\nfull log: {}",
            summarize(&text),
            log.display()
        );
    }
    Ok(())
}

/// The last `n` lines of `text`, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_both_streams_and_reports_failure_with_the_log_path() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut seen = Vec::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 4"]);
        let err = run_logged(cmd, &log, |l| seen.push(l.to_string()), |t| tail(t, 1)).unwrap_err();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.contains(&"out".to_string()) && seen.contains(&"err".to_string()));
        let msg = format!("{err:#}");
        assert!(msg.contains("x.log"), "{msg}");
        assert!(msg.contains("exit status: 4"), "{msg}");
    }

    #[test]
    fn success_writes_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ok.log");
        let mut cmd = Command::new("echo");
        cmd.arg("hello");
        run_logged(cmd, &log, |_| {}, |t| t.to_string()).unwrap();
        assert!(std::fs::read_to_string(&log).unwrap().contains("hello"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
