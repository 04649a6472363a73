//! Kconfig fragments: parsing, merging in order, and checking that the
//! final `.config` kept every option that was asked for (Kconfig drops an
//! option silently when its dependencies are not met).

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The value a fragment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `# CONFIG_X is not set`
    NotSet,
    /// `CONFIG_X=<text>` (y, m, a number or a quoted string).
    Set(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::NotSet => f.write_str("is not set"),
            Value::Set(v) => write!(f, "={v}"),
        }
    }
}

/// Where a request came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

/// One requested option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub value: Value,
    pub origin: Origin,
}

/// Parses one `.config`-style text into `(name, value, line)` entries.
/// Comments other than `# CONFIG_X is not set` and blank lines are skipped;
/// anything else is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<(String, Value, usize)>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let no = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") {
                    out.push((name.to_string(), Value::NotSet, no));
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if name.starts_with("CONFIG_") && !value.is_empty() => {
                out.push((name.to_string(), Value::Set(value.to_string()), no));
            }
            _ => {
                return Err(format!(
                "line {no}: expected CONFIG_NAME=value or `# CONFIG_NAME is not set`, got {raw:?}"
            ))
            }
        }
    }
    Ok(out)
}

/// Fragments merged in order: a later fragment overrides an earlier one.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub options: BTreeMap<String, Request>,
    /// Options set by more than one fragment: (name, overridden, winner).
    pub overrides: Vec<(String, Request, Request)>,
}

impl Merged {
    /// Merges fragment files in order.
    pub fn from_files(files: &[PathBuf]) -> Result<Self> {
        let mut merged = Merged::default();
        for file in files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading fragment {}", file.display()))?;
            merged
                .add(&text, file)
                .map_err(|e| anyhow::anyhow!("fragment {}: {e}", file.display()))?;
        }
        Ok(merged)
    }

    /// Adds one fragment's text.
    pub fn add(&mut self, text: &str, file: &Path) -> Result<(), String> {
        for (name, value, line) in parse(text)? {
            let req = Request {
                value,
                origin: Origin {
                    file: file.to_path_buf(),
                    line,
                },
            };
            if let Some(old) = self.options.insert(name.clone(), req.clone()) {
                if old.value != req.value {
                    self.overrides.push((name, old, req));
                }
            }
        }
        Ok(())
    }

    /// The merged fragment as `.config` text (the `KCONFIG_ALLCONFIG` input).
    pub fn render(&self) -> String {
        self.options
            .iter()
            .map(|(name, req)| match &req.value {
                Value::NotSet => format!("# {name} is not set\n"),
                Value::Set(v) => format!("{name}={v}\n"),
            })
            .collect()
    }

    /// Compares the requests with the final `.config` text.
    pub fn check(&self, final_config: &str) -> Result<Vec<Dropped>, String> {
        let fin: BTreeMap<String, Value> = parse(final_config)?
            .into_iter()
            .map(|(n, v, _)| (n, v))
            .collect();
        Ok(self
            .options
            .iter()
            .filter_map(|(name, req)| {
                let got = fin.get(name).cloned().unwrap_or(Value::NotSet);
                (got != req.value).then(|| Dropped {
                    name: name.clone(),
                    wanted: req.clone(),
                    got,
                })
            })
            .collect())
    }
}

/// An option the final config does not have as requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub name: String,
    pub wanted: Request,
    pub got: Value,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Dropped { name, wanted, got } = self;
        let file = wanted
            .origin
            .file
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match &wanted.value {
            Value::NotSet => write!(f, "# {name} is not set"),
            Value::Set(v) => write!(f, "{name}={v}"),
        }?;
        let got = match got {
            Value::NotSet => "not set".to_string(),
            Value::Set(v) => format!("{name}={v}"),
        };
        write!(
            f,
            " (asked by {file}:{}) ended up {got}",
            wanted.origin.line
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(frags: &[(&str, &str)]) -> Merged {
        let mut m = Merged::default();
        for (name, text) in frags {
            m.add(text, Path::new(name)).unwrap();
        }
        m
    }

    #[test]
    fn parses_values_not_set_and_skips_comments() {
        let got = parse(
            "# a comment\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=16\n",
        )
        .unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], ("CONFIG_B".into(), Value::NotSet, 4));
        assert_eq!(got[2].1, Value::Set("\"x y\"".into()));
    }

    #[test]
    fn bad_line_is_named() {
        let err = parse("CONFIG_A=y\nDEV_DAX=y\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("DEV_DAX"), "{err}");
    }

    #[test]
    fn later_fragment_wins_and_override_is_recorded() {
        let m = merged(&[
            ("a.config", "CONFIG_X=y\nCONFIG_Y=y\n"),
            ("b.config", "# CONFIG_X is not set\nCONFIG_Y=y\n"),
        ]);
        assert_eq!(m.options["CONFIG_X"].value, Value::NotSet);
        assert_eq!(m.overrides.len(), 1, "same value twice is not an override");
        assert_eq!(m.render(), "# CONFIG_X is not set\nCONFIG_Y=y\n");
    }

    #[test]
    fn check_names_each_dropped_option_and_its_fragment() {
        let m = merged(&[("cxl.config", "CONFIG_DEV_DAX=y\nCONFIG_FS_DAX=y\n# CONFIG_DEV_DAX_KMEM is not set\nCONFIG_NR_CPUS=8\n")]);
        let final_cfg = "CONFIG_FS_DAX=y\n# CONFIG_DEV_DAX is not set\nCONFIG_DEV_DAX_KMEM=y\nCONFIG_NR_CPUS=64\n";
        let dropped = m.check(final_cfg).unwrap();
        let names: Vec<_> = dropped.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["CONFIG_DEV_DAX", "CONFIG_DEV_DAX_KMEM", "CONFIG_NR_CPUS"]
        );
        let text = dropped[0].to_string();
        assert!(
            text.contains("cxl.config:1") && text.contains("not set"),
            "{text}"
        );
    }

    #[test]
    fn absent_option_counts_as_not_set() {
        let m = merged(&[("a.config", "# CONFIG_GONE is not set\nCONFIG_HERE=y\n")]);
        let dropped = m.check("CONFIG_HERE=y\n").unwrap();
        assert!(dropped.is_empty(), "{dropped:?}");
        let dropped = m.check("").unwrap();
        assert_eq!(dropped.len(), 1);
    }
}
