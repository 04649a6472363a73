//! Errors of loading, validating, generating and writing shadow trees. Everything about a YAML
//! file names the file and, where it can, the line.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A problem inside one YAML file (syntax, schema or a semantic rule).
    #[error("{}: {msg}", At(file, *line))]
    Yaml {
        file: PathBuf,
        line: Option<usize>,
        msg: String,
    },
    /// Two files use the same device bytes and are not both marked shared.
    #[error("{}: overlaps {} on device {dev} at {start:#x}..{end:#x}", At(a, *a_line), At(b, *b_line))]
    Overlap {
        a: PathBuf,
        a_line: Option<usize>,
        b: PathBuf,
        b_line: Option<usize>,
        dev: u32,
        start: u64,
        end: u64,
    },
    #[error("{0}")]
    Generate(String),
    #[error("resize: {0}")]
    Resize(String),
}

impl ShadowError {
    pub(crate) fn yaml(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        msg: impl Into<String>,
    ) -> Self {
        ShadowError::Yaml {
            file: file.into(),
            line,
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ShadowError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `file:line` (or just `file`).
struct At<'a>(&'a PathBuf, Option<usize>);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(l) => write!(f, "{}:{l}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// Every problem found while loading a tree (loading does not stop at the first).
#[derive(Debug, thiserror::Error)]
#[error("{}", list(.0))]
pub struct ShadowErrors(pub Vec<ShadowError>);

fn list(v: &[ShadowError]) -> String {
    let mut s = format!("shadow tree has {} error(s):", v.len());
    for e in v {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}
