//! The one error type of `lab-vm`.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One semantic problem in a topology file, with the YAML key path and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyProblem {
    /// Key path such as `devices[1].root_port`.
    pub key: String,
    /// 1-based line of the offending item, when it could be located.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for TopologyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

fn join_problems(problems: &[TopologyProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  {p}"))
        .collect::<String>()
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read topology {path}: {source}")]
    TopologyRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("topology `{name}` not found: no file {path} (names are the files in lab/topologies without .yaml)")]
    TopologyNotFound { name: String, path: PathBuf },

    #[error("{file}:{}: {message}", line.map_or_else(|| "?".to_string(), |l| format!("{l}:{}", column.unwrap_or(0))))]
    TopologyParse {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    #[error("{file}: invalid topology:{}", join_problems(problems))]
    TopologyInvalid {
        file: String,
        problems: Vec<TopologyProblem>,
    },

    #[error("{binary} not found: install QEMU with `cargo xtask host setup`")]
    QemuMissing { binary: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    #[error("QEMU exited ({status}) {when}; last lines of {stderr_file}:\n{stderr_tail}")]
    QemuExited {
        status: String,
        when: String,
        stderr_file: PathBuf,
        stderr_tail: String,
    },

    #[error("QMP {op} failed: {message}")]
    Qmp { op: String, message: String },

    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },

    #[error("serial log {path}: pattern {pattern:?} not seen: {reason}; last lines:\n{tail}")]
    SerialPatternMissing {
        path: PathBuf,
        pattern: String,
        reason: String,
        tail: String,
    },

    #[error("FAMFS_LAB_ACCEL={value:?} is not one of kvm, tcg, auto")]
    BadAccelOverride { value: String },

    #[error("KVM was requested (FAMFS_LAB_ACCEL=kvm) but does not work here: {reason}")]
    KvmUnavailable { reason: String },

    #[error("unknown device {0:?} in the topology")]
    UnknownDevice(String),

    #[error("device {device}: range {offset}+{len} is outside its {size}-byte backing file")]
    BackingOutOfRange {
        device: String,
        offset: u64,
        len: u64,
        size: u64,
    },

    #[error("backing file {path} is {actual} bytes, larger than the device's {expected}: refusing to truncate it")]
    BackingTooLarge {
        path: PathBuf,
        actual: u64,
        expected: u64,
    },

    #[error("unix socket path {path} is {len} bytes, over the 107-byte limit: use a shorter run directory")]
    SocketPathTooLong { path: PathBuf, len: usize },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
