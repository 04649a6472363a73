//! The crate's one error type. Every message about a file starts with
//! `FILE:LINE:` (compiler style) so editors and CI logs can jump to it.

use std::fmt;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One semantic problem in a file: its line, its key path, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending node (or its nearest existing parent).
    pub line: Option<usize>,
    /// Key path such as `exclude[1].accel`.
    pub key: String,
    pub message: String,
}

impl Problem {
    /// `FILE:LINE: KEY: MESSAGE`.
    pub fn render(&self, file: &str) -> String {
        match self.line {
            Some(line) => format!("{file}:{line}: {}: {}", self.key, self.message),
            None => format!("{file}: {}: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not the expected shape (unknown or missing key, wrong
    /// type): serde_norway's own message, with its position.
    #[error("{file}:{}: {message}", position(*line, *column))]
    Parse {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Well-formed, but wrong: one line per problem.
    #[error("{}", render_all(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
    /// `ci run --entry ID` with an id the matrix does not have.
    #[error("{file} has no cell {id:?}; the cells are:\n{}", list(valid))]
    UnknownCell {
        file: String,
        id: String,
        valid: Vec<String>,
    },
}

impl Error {
    /// The lines this error points at (empty when it has none).
    pub fn lines(&self) -> Vec<usize> {
        match self {
            Error::Parse { line, .. } => line.iter().copied().collect(),
            Error::Invalid { problems, .. } => problems.iter().filter_map(|p| p.line).collect(),
            _ => Vec::new(),
        }
    }

    /// Turns a serde_norway error on `file` into [`Error::Parse`].
    pub(crate) fn parse(file: &str, e: &serde_norway::Error) -> Error {
        let loc = e.location();
        Error::Parse {
            file: file.to_string(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: strip_position(e.to_string()),
        }
    }
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => l.to_string(),
        _ => "?".to_string(),
    }
}

fn render_all(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.render(file))
        .collect::<Vec<_>>()
        .join("\n")
}

fn list(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("  {id}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// serde_norway ends its messages with ` at line L column C`, and starts
/// them with the key path (`.[0].ops: ...`): the position moves to the
/// front, the path keeps its place without the leading dot.
fn strip_position(message: String) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message,
    };
    match message.strip_prefix('.') {
        Some(rest) if !rest.starts_with(' ') => rest.to_string(),
        _ => message,
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_positions_move_to_the_front() {
        assert_eq!(
            strip_position(".[0].ops: invalid type at line 2 column 8".into()),
            "[0].ops: invalid type"
        );
        assert_eq!(
            strip_position("EOF while parsing".into()),
            "EOF while parsing"
        );
    }

    #[test]
    fn problems_render_one_line_each_with_file_and_line() {
        let e = Error::Invalid {
            file: "ci/matrix.yaml".into(),
            problems: vec![
                Problem {
                    line: Some(3),
                    key: "axes.ops".into(),
                    message: "empty".into(),
                },
                Problem {
                    line: None,
                    key: "exclude".into(),
                    message: "x".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "ci/matrix.yaml:3: axes.ops: empty\nci/matrix.yaml: exclude: x"
        );
        assert_eq!(e.lines(), [3]);
    }
}
