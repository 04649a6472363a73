//! Kernel log scanner: finds BUG/WARNING/Oops/lockdep/... reports in serial
//! console or dmesg text.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of kernel report a splat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplatKind {
    Bug,
    Warning,
    Oops,
    GeneralProtection,
    Kasan,
    Ubsan,
    Lockdep,
    HungTask,
    RcuStall,
    SoftLockup,
    HardLockup,
    KernelPanic,
}

impl SplatKind {
    /// snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SplatKind::Bug => "bug",
            SplatKind::Warning => "warning",
            SplatKind::Oops => "oops",
            SplatKind::GeneralProtection => "general_protection",
            SplatKind::Kasan => "kasan",
            SplatKind::Ubsan => "ubsan",
            SplatKind::Lockdep => "lockdep",
            SplatKind::HungTask => "hung_task",
            SplatKind::RcuStall => "rcu_stall",
            SplatKind::SoftLockup => "soft_lockup",
            SplatKind::HardLockup => "hard_lockup",
            SplatKind::KernelPanic => "kernel_panic",
        }
    }
}

impl fmt::Display for SplatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kernel report found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splat {
    pub kind: SplatKind,
    /// 1-based line number of the report's first line in the scanned text.
    pub line: usize,
    /// The report's lines, timestamps stripped.
    pub excerpt: Vec<String>,
}

/// Longest excerpt kept per splat.
pub const MAX_EXCERPT_LINES: usize = 40;

/// The WARN() header of Linux 7.x: `WARNING: <file>:<line> at <func>+0x../0x.., CPU#N: comm/pid`.
fn is_new_style_warning(body: &str) -> bool {
    let Some(rest) = body.strip_prefix("WARNING: ") else {
        return false;
    };
    let Some((location, tail)) = rest.split_once(" at ") else {
        return false;
    };
    let has_line = location.rsplit_once(':').is_some_and(|(file, line)| {
        !file.is_empty() && !line.is_empty() && line.chars().all(|c| c.is_ascii_digit())
    });
    has_line && tail.contains(", CPU#")
}

/// Lockdep report titles, after `WARNING: `, `INFO: ` or `BUG: `.
const LOCKDEP_TITLES: &[&str] = &[
    "possible circular locking dependency detected",
    "possible recursive locking detected",
    "possible irq lock inversion",
    "inconsistent lock state",
    "bad unlock balance detected",
    "bad contention detected",
    "held lock freed",
    "lock held when returning to user space",
    "lock held at task exit",
    "Nested lock was not taken",
    "suspicious RCU usage",
    "HARDIRQ-",
    "SOFTIRQ-",
    "chain_key collision",
    "Invalid wait context",
    "trying to register non-static key",
    "MAX_LOCK",
];

/// Finds every kernel splat in `log`, in order of appearance.
pub fn scan(log: &str) -> Vec<Splat> {
    let lines: Vec<LogLine<'_>> = log.split('\n').map(LogLine::parse).collect();
    let mut splats = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        match classify(lines[i].body) {
            Some(kind) => {
                let (excerpt, next) = collect(&lines, i, kind);
                splats.push(Splat {
                    kind,
                    line: i + 1,
                    excerpt,
                });
                i = next;
            }
            None => i += 1,
        }
    }
    splats
}

/// Classifies one kernel message body (the text after timestamp and caller
/// id); `None` if it does not start a splat.
pub fn classify(body: &str) -> Option<SplatKind> {
    let watchdog = body
        .strip_prefix("NMI watchdog: ")
        .or_else(|| body.strip_prefix("watchdog: "))
        .unwrap_or(body);
    let rcu = body.strip_prefix("rcu: ").unwrap_or(body);
    let kind = if body.starts_with("Kernel panic - not syncing") {
        SplatKind::KernelPanic
    } else if is_lockdep(body) {
        SplatKind::Lockdep
    } else if watchdog.starts_with("BUG: soft lockup") {
        SplatKind::SoftLockup
    } else if watchdog.starts_with("Watchdog detected hard LOCKUP") {
        SplatKind::HardLockup
    } else if body.starts_with("BUG: KASAN: ") {
        SplatKind::Kasan
    } else if body.starts_with("BUG: ") || body.starts_with("kernel BUG at ") {
        SplatKind::Bug
    } else if body.starts_with("WARNING: CPU: ")
        || body.starts_with("WARNING: at ")
        || is_new_style_warning(body)
    {
        SplatKind::Warning
    } else if body.starts_with("general protection fault")
        || body.starts_with("Oops: general protection fault")
    {
        SplatKind::GeneralProtection
    } else if body.starts_with("Oops: ") || body.starts_with("Internal error: Oops") {
        SplatKind::Oops
    } else if body.starts_with("UBSAN: ") {
        SplatKind::Ubsan
    } else if body.starts_with("INFO: task ") && body.contains(" blocked for more than ") {
        SplatKind::HungTask
    } else if rcu
        .strip_prefix("INFO: ")
        .is_some_and(|r| r.contains("detected stall") || r.contains("detected expedited stall"))
    {
        SplatKind::RcuStall
    } else {
        return None;
    };
    Some(kind)
}

fn is_lockdep(body: &str) -> bool {
    let body = body.strip_prefix("[ ").unwrap_or(body);
    ["WARNING: ", "INFO: ", "BUG: "]
        .iter()
        .find_map(|p| body.strip_prefix(p))
        .is_some_and(|title| LOCKDEP_TITLES.iter().any(|t| title.starts_with(t)))
}

/// Collects the excerpt of the splat starting at `start`; returns it and the
/// index of the first line not consumed.
fn collect(lines: &[LogLine<'_>], start: usize, kind: SplatKind) -> (Vec<String>, usize) {
    let head = &lines[start];
    let mut excerpt = vec![head.body.to_string()];
    let mut i = start + 1;
    while i < lines.len() && excerpt.len() < MAX_EXCERPT_LINES {
        let line = &lines[i];
        if line.blank || (head.prefixed && !line.prefixed) {
            break;
        }
        match classify(line.body) {
            // "BUG: unable to handle page fault" is followed by its own "Oops:".
            Some(SplatKind::Oops) if kind == SplatKind::Bug => {}
            Some(_) => break,
            None => {}
        }
        excerpt.push(line.body.to_string());
        i += 1;
        let end = line.body.trim_start();
        if end.starts_with("---[ end trace") || end.starts_with("---[ end Kernel panic") {
            break;
        }
    }
    (excerpt, i)
}

/// The message of one log line: without the carriage returns, `<level>`, `[ seconds]` and
/// `[ Tnnn]` prefixes (the line itself when it has none).
pub fn message(line: &str) -> &str {
    LogLine::parse(line).body
}

/// One line of log, split into kernel prefix and message body.
struct LogLine<'a> {
    body: &'a str,
    /// Had a `[ timestamp ]` or `[ Tnnn]` prefix.
    prefixed: bool,
    blank: bool,
}

impl<'a> LogLine<'a> {
    fn parse(raw: &'a str) -> Self {
        // A carriage return mid-line means the terminal shows what follows it.
        let line = raw.trim_end_matches('\r');
        let line = line.rsplit('\r').next().unwrap_or(line);
        let (prefixed, body) = strip_kernel_prefix(line);
        LogLine {
            body,
            prefixed,
            blank: line.trim().is_empty(),
        }
    }
}

/// Strips `<level>`, `[ seconds.micros]` and `[ Tnnn]`/`[ Cnnn]`.
fn strip_kernel_prefix(line: &str) -> (bool, &str) {
    let mut rest = strip_syslog_level(line);
    let mut prefixed = false;
    if let Some(after) = bracketed(rest, is_timestamp) {
        rest = after;
        prefixed = true;
    }
    if let Some(after) = bracketed(rest.trim_start_matches(' '), is_caller_id) {
        rest = after;
        prefixed = true;
    }
    if !prefixed {
        return (false, line);
    }
    (true, rest.strip_prefix(' ').unwrap_or(rest))
}

fn strip_syslog_level(line: &str) -> &str {
    line.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .filter(|(level, _)| !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()))
        .map_or(line, |(_, rest)| rest)
}

fn bracketed(s: &str, accept: fn(&str) -> bool) -> Option<&str> {
    let (inside, after) = s.strip_prefix('[')?.split_once(']')?;
    accept(inside.trim_start_matches(' ')).then_some(after)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_timestamp(s: &str) -> bool {
    s.split_once('.')
        .is_some_and(|(a, b)| digits(a) && digits(b))
}

fn is_caller_id(s: &str) -> bool {
    s.strip_prefix('T')
        .or_else(|| s.strip_prefix('C'))
        .is_some_and(digits)
}

#[cfg(test)]
#[path = "splat_tests.rs"]
mod tests;
