//! The crate's single error type.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KTAP input did not follow the supported subset.
    #[error("KTAP line {line}: {message}")]
    Ktap { line: usize, message: String },
    /// Writing JUnit XML failed.
    #[error("JUnit XML: {0}")]
    Xml(#[from] std::io::Error),
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A file in the run directory could not be written.
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
