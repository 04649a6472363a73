//! Known failures and known skips: `ci/expected/<kernel>.yaml`, one file per kernel of
//! `kernels/`, each a list of
//!
//! ```yaml
//! - case: SUITE.NAME          # the case id, as `--case` takes it
//!   outcome: fail             # optional: fail (the default) or skip
//!   expect: "bad bytes at"    # a substring of the case's FAIL (or SKIP) message
//!   reason: why it fails      # the human explanation, shown in the report
//!   fixed_by: "issue 16"      # the issue or commit that removes the entry
//!   ops: [famfs_native]       # optional: only with these ops
//!   topologies: [two-devices] # optional: only on these topologies
//!   fragments: [debug]        # optional: only on kernels built with one of these
//!                             # fragments (`--fragment debug`: label famfs-bpf+debug)
//!   splat: "fs/dax.c:223 at get_next_unlocked_entry"
//!                             # optional: the bug shows as this kernel splat
//! ```
//!
//! [`ExpectedFailures::apply`] judges every case of a finished run against its kernel's list:
//!
//! - a listed failure is XFAIL only when the case FAILed with a message containing `expect`
//!   and no kernel splat (or, with `splat:`, only splats with a line containing that text, a
//!   panic that follows one of them included: bugs that WARN or oops are listed with it); a different failure, another splat, a
//!   TIMEOUT or an ERROR stays a real
//!   failure (its reason says why the entry did not match); a pass is XPASS, which fails the
//!   run, so a fixed bug gets its entry removed;
//! - a SKIP is fine without an entry only when the run's [`RunFacts::excuse`] gives a reason:
//!   the kernel's `.config` lacks a feature the case needs (the case catalog's `needs`, read
//!   against `KernelFeatures` by the runner's plan) or the topology has the wrong number of
//!   guests. On a kernel that has what the case needs, a SKIP fails the run unless an
//!   `outcome: skip` entry lists the case and its SKIP message contains `expect`; a listed skip
//!   that passes is XPASS.
//!
//! A kernel with no file has no entries. Every label of a kernel reads its file: the debug
//! build of famfs-bpf (`famfs-bpf+debug`) reads `famfs-bpf.yaml`, where an entry with
//! `fragments: [debug]` applies to it alone (a lockdep report exists only with lockdep).

use crate::error::{Error, Problem, Result};
use crate::locate::{line_of, KeyPath};
use crate::matrix::Known;
use lab_report::{CaseReport, Outcome};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The directory, relative to the repository root.
pub const EXPECTED_DIR: &str = "ci/expected";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    case: Option<String>,
    #[serde(default)]
    outcome: Option<Listed>,
    expect: Option<String>,
    reason: Option<String>,
    fixed_by: Option<String>,
    #[serde(default)]
    ops: Option<Vec<String>>,
    #[serde(default)]
    topologies: Option<Vec<String>>,
    #[serde(default)]
    fragments: Option<Vec<String>>,
    #[serde(default)]
    splat: Option<String>,
}

/// What an entry says the case does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listed {
    /// It FAILs with the expected message: XFAIL.
    Fail,
    /// It SKIPs with the expected message on a kernel that has what it needs.
    Skip,
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Listed::Fail => "failure",
            Listed::Skip => "skip",
        })
    }
}

/// One entry: a known failure or a known skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFailure {
    /// `SUITE.NAME`.
    pub case: String,
    pub outcome: Listed,
    /// A substring of the FAIL or SKIP message the case must give.
    pub expect: String,
    /// Why, for people.
    pub reason: String,
    /// The issue or commit that removes the entry.
    pub fixed_by: String,
    /// Only with these ops; None: with any ops, and without.
    pub ops: Option<Vec<String>>,
    /// Only on these topologies; None: on any.
    pub topologies: Option<Vec<String>>,
    /// Only on kernels built with one of these extra fragments (read from the label:
    /// `famfs-bpf+debug` has `debug`); None: on any.
    pub fragments: Option<Vec<String>>,
    /// The known failure shows as kernel splats whose first line contains this; None: no
    /// splat is allowed.
    pub splat: Option<String>,
    /// Where it is written, `FILE:LINE`, for the report.
    pub origin: String,
}

impl ExpectedFailure {
    fn applies(&self, label: &str, ops: Option<&str>, topology: Option<&str>) -> bool {
        let within = |list: &Option<Vec<String>>, v: Option<&str>| match (list, v) {
            (None, _) => true,
            (Some(list), Some(v)) => list.iter().any(|x| x == v),
            (Some(_), None) => false,
        };
        let built_with = match &self.fragments {
            None => true,
            Some(list) => fragments_of_label(label).any(|f| list.iter().any(|x| x == f)),
        };
        within(&self.ops, ops) && within(&self.topologies, topology) && built_with
    }

    /// `ORIGIN: reason (fixed by X)`.
    fn cite(&self) -> String {
        format!(
            "{}: {} (fixed by {})",
            self.origin, self.reason, self.fixed_by
        )
    }
}

/// What [`ExpectedFailures::apply`] needs to know about the run besides its report.
pub struct RunFacts<'a> {
    /// The run's ops (None for kernels without the ops axis).
    pub ops: Option<&'a str>,
    /// The run's topology (entries with `topologies:` apply only there).
    pub topology: Option<&'a str>,
    /// For a case id: why this run's kernel or topology cannot run it, known before boot (the
    /// kernel's `.config` lacks a feature the case needs; the topology has the wrong number of
    /// guests); None when it has everything the case needs. Only an excused SKIP needs no entry.
    pub excuse: &'a dyn Fn(&str) -> Option<String>,
    /// The command that reruns the run; ` --case ID` is added for a case this makes a failure.
    pub reproduce: &'a str,
}

/// Every kernel's known failures and skips.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFailures {
    by_kernel: BTreeMap<String, Vec<ExpectedFailure>>,
}

/// The extra fragments of a label: `famfs-bpf+debug+kasan@tree` has `debug` and `kasan`
/// (a mutant's `+mutate:NAME` gives `mutate`, which names no fragment).
pub fn fragments_of_label(label: &str) -> impl Iterator<Item = &str> {
    let before_tree = label.split('@').next().unwrap_or(label);
    before_tree
        .split('+')
        .skip(1)
        .map(|f| f.split(':').next().unwrap_or(f))
}

/// The kernel (a directory of `kernels/`) of a label: `famfs-bpf+debug`
/// and `famfs-bpf@tree` are `famfs-bpf`.
pub fn kernel_of_label(label: &str) -> &str {
    label.split(['+', '@']).next().unwrap_or(label)
}

impl ExpectedFailures {
    /// Reads every `*.yaml` of `dir` (usually [`EXPECTED_DIR`]); a missing
    /// directory is no expected failures. Names are checked against `known`.
    pub fn load_dir(dir: &Path, known: &Known) -> Result<ExpectedFailures> {
        let mut out = ExpectedFailures::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(Error::Read {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for path in files {
            let kernel = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let list = parse(&kernel, &text, &path.display().to_string(), known)?;
            out.by_kernel.insert(kernel, list);
        }
        Ok(out)
    }

    /// Adds (replaces) one kernel's list, parsed from `text` (named `file`
    /// in messages).
    pub fn add(&mut self, kernel: &str, text: &str, file: &str, known: &Known) -> Result<()> {
        let list = parse(kernel, text, file, known)?;
        self.by_kernel.insert(kernel.to_string(), list);
        Ok(())
    }

    /// Whether `case_id` (`SUITE.NAME`) is a known failure of `kernel` (a
    /// kernel name or label) run with `ops` (None for kernels without the
    /// ops axis); the reason if it is.
    pub fn expected_failure(&self, kernel: &str, ops: Option<&str>, case_id: &str) -> Option<&str> {
        self.lookup(kernel, ops, case_id)
            .filter(|e| e.outcome == Listed::Fail)
            .map(|e| e.reason.as_str())
    }

    /// The entry (failure or skip) for `case_id` on `kernel` with `ops`.
    pub fn lookup(
        &self,
        kernel: &str,
        ops: Option<&str>,
        case_id: &str,
    ) -> Option<&ExpectedFailure> {
        self.lookup_on(kernel, ops, None, case_id)
    }

    /// [`Self::lookup`] on a topology (None: only entries for every topology).
    pub fn lookup_on(
        &self,
        kernel: &str,
        ops: Option<&str>,
        topology: Option<&str>,
        case_id: &str,
    ) -> Option<&ExpectedFailure> {
        self.by_kernel
            .get(kernel_of_label(kernel))?
            .iter()
            .find(|e| e.case == case_id && e.applies(kernel, ops, topology))
    }

    /// Judges a finished run against the list of its kernel (module doc): known failures
    /// become XFAIL, stale entries XPASS, unexcused and unlisted SKIPs FAIL, and a failure an
    /// entry does not match says so in its reason. Returns how many cases changed.
    pub fn apply(&self, report: &mut lab_report::RunReport, run: &RunFacts<'_>) -> usize {
        let kernel = report.kernel.clone();
        let file = format!("{EXPECTED_DIR}/{}.yaml", kernel_of_label(&kernel));
        let mut changed = 0;
        for suite in &mut report.suites {
            for case in &mut suite.cases {
                let id = format!("{}.{}", suite.name, case.name);
                let entry = self.lookup_on(&kernel, run.ops, run.topology, &id);
                let excuse = (run.excuse)(&id);
                let Some((outcome, reason)) = verdict(case, entry, excuse.as_deref(), &file) else {
                    continue;
                };
                if outcome.is_failure() && !case.outcome.is_failure() {
                    case.reproduce = Some(format!("{} --case {id}", run.reproduce));
                }
                if outcome == Outcome::Xfail {
                    case.reproduce = None;
                }
                case.outcome = outcome;
                case.reason = Some(reason);
                changed += 1;
            }
        }
        changed
    }

    /// One kernel's list (empty when it has no file).
    pub fn for_kernel(&self, kernel: &str) -> &[ExpectedFailure] {
        self.by_kernel
            .get(kernel_of_label(kernel))
            .map_or(&[], Vec::as_slice)
    }
}

/// The new outcome and reason of `case` given its entry and its excuse (None: unchanged).
/// `file` is the kernel's list, named in the advice for an unlisted SKIP.
fn verdict(
    case: &CaseReport,
    entry: Option<&ExpectedFailure>,
    excuse: Option<&str>,
    file: &str,
) -> Option<(Outcome, String)> {
    let message = case.reason.as_deref().unwrap_or("");
    let was = if message.is_empty() {
        case.outcome.to_string()
    } else {
        format!("{}: {message}", case.outcome)
    };
    match (case.outcome, entry) {
        (Outcome::Skip, _) if excuse.is_some() => None,
        (Outcome::Skip, Some(e)) if e.outcome == Listed::Skip && message.contains(&e.expect) => {
            Some((Outcome::Skip, format!("known skip, {}; {was}", e.cite())))
        }
        (Outcome::Skip, Some(e)) if e.outcome == Listed::Skip => Some((
            Outcome::Fail,
            format!(
                "{was}; not the known skip of {}, which expects {:?}",
                e.origin, e.expect
            ),
        )),
        (Outcome::Skip, Some(e)) => Some((
            Outcome::Fail,
            format!(
                "{was}; the kernel has what the case needs, and {} lists a failure, not a skip",
                e.origin
            ),
        )),
        (Outcome::Skip, None) => Some((
            Outcome::Fail,
            format!(
                "{was}; the kernel has what the case needs, so a SKIP fails the run unless \
                 {file} lists it (outcome: skip, expect: part of this message)"
            ),
        )),
        (Outcome::Pass, Some(e)) => Some((
            Outcome::Xpass,
            format!(
                "unexpected pass: {} lists it as a known {}",
                e.cite(),
                e.outcome
            ),
        )),
        (Outcome::Fail, Some(e)) if e.outcome == Listed::Fail => {
            let first_line = |s: &lab_report::Splat| s.excerpt.first().cloned().unwrap_or_default();
            // A splat is the known one when any of its lines names it (a WARN's header, an
            // oops' RIP line); a panic that only ends a known splat is part of it.
            let known_one = |s: &lab_report::Splat, k: &str| {
                s.excerpt.iter().any(|l| l.contains(k))
                    || (s.kind == lab_report::SplatKind::KernelPanic && case.splats.len() > 1)
            };
            let stray = match &e.splat {
                None => case.splats.first().map(first_line),
                Some(known) => case
                    .splats
                    .iter()
                    .find(|s| !known_one(s, known))
                    .map(first_line),
            };
            if let Some(line) = stray {
                Some((
                    Outcome::Fail,
                    format!(
                        "{was}; not the known failure of {}: {}",
                        e.origin,
                        match &e.splat {
                            None => format!("a kernel splat is never one ({line})"),
                            Some(k) => format!("it expects only splats with {k:?}, not {line:?}"),
                        }
                    ),
                ))
            } else if e.splat.is_some() && case.splats.is_empty() {
                Some((
                    Outcome::Fail,
                    format!(
                        "{was}; not the known failure of {}, which comes with a kernel splat ({:?}) that did not appear",
                        e.origin,
                        e.splat.as_deref().unwrap_or("")
                    ),
                ))
            } else if message.contains(&e.expect) {
                Some((
                    Outcome::Xfail,
                    format!("known failure, {}; {was}", e.cite()),
                ))
            } else {
                Some((
                    Outcome::Fail,
                    format!(
                        "{was}; not the known failure of {}, which expects {:?}",
                        e.origin, e.expect
                    ),
                ))
            }
        }
        (Outcome::Fail | Outcome::Timeout | Outcome::Error, Some(e)) => Some((
            case.outcome,
            format!(
                "{was}; not the known {} of {}, which expects a {} with {:?}",
                e.outcome,
                e.origin,
                match e.outcome {
                    Listed::Fail => "FAIL",
                    Listed::Skip => "SKIP",
                },
                e.expect
            ),
        )),
        _ => None,
    }
}

fn parse(kernel: &str, text: &str, file: &str, known: &Known) -> Result<Vec<ExpectedFailure>> {
    // A file of comments only is an empty list.
    let raw: Option<Vec<EntryFile>> =
        serde_norway::from_str(text).map_err(|e| Error::parse(file, &e))?;
    let raw = raw.unwrap_or_default();
    let mut problems: Vec<(KeyPath, String)> = Vec::new();
    if !known.kernels.is_empty() && !known.kernels.iter().any(|k| k == kernel) {
        problems.push((
            KeyPath::root(),
            format!(
                "the file is named for kernel {kernel:?}, which kernels/ does not have (known: {})",
                known.kernels.join(", ")
            ),
        ));
    }
    for (i, e) in raw.iter().enumerate() {
        let at = KeyPath::root().index(i);
        let required: [(&str, &Option<String>, &str); 4] = [
            ("case", &e.case, "the case id, SUITE.NAME"),
            (
                "expect",
                &e.expect,
                "a substring of the FAIL or SKIP message the case gives",
            ),
            (
                "reason",
                &e.reason,
                "why it fails or skips (a bug link, a missing feature)",
            ),
            (
                "fixed_by",
                &e.fixed_by,
                "the issue or commit that removes this entry, e.g. \"issue 16\"",
            ),
        ];
        for (key, value, what) in required {
            match value {
                None => problems.push((at.key(key), format!("missing `{key}`: {what}"))),
                Some(v) if v.trim().is_empty() => {
                    problems.push((at.key(key), format!("empty: {what}")))
                }
                Some(_) => {}
            }
        }
        let case = e.case.as_deref().unwrap_or_default();
        let well_formed = matches!(case.split_once('.'), Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('.'));
        if e.case.is_none() || case.trim().is_empty() {
            // Already a problem.
        } else if !well_formed {
            problems.push((
                at.key("case"),
                format!("{case:?}: a case id is SUITE.NAME, e.g. smoke.fsdev_bind"),
            ));
        } else if !known.cases.is_empty() && !known.cases.iter().any(|c| c == case) {
            problems.push((
                at.key("case"),
                format!("no case {case:?} in the catalog (`cargo xtask lab list`)"),
            ));
        }
        if let Some(ops) = &e.ops {
            if ops.is_empty() {
                problems.push((
                    at.key("ops"),
                    "empty: it would match nothing; leave `ops` out to match every ops".into(),
                ));
            }
            for (j, o) in ops.iter().enumerate() {
                if ops[..j].contains(o) {
                    problems.push((at.key("ops").index(j), format!("{o:?} is listed twice")));
                } else if !known.ops.is_empty() && !known.ops.contains(o) {
                    problems.push((
                        at.key("ops").index(j),
                        format!(
                            "{o:?} is not a value of the matrix's ops axis ({})",
                            known.ops.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(topologies) = &e.topologies {
            for (j, t) in topologies.iter().enumerate() {
                if !known.topologies.is_empty() && !known.topologies.contains(t) {
                    problems.push((
                        at.key("topologies").index(j),
                        format!("no topology {t:?} in lab/topologies"),
                    ));
                }
            }
        }
        if let Some(fragments) = &e.fragments {
            if fragments.is_empty() {
                problems.push((
                    at.key("fragments"),
                    "empty: it would match nothing; leave `fragments` out to match every kernel"
                        .into(),
                ));
            }
            for (j, f) in fragments.iter().enumerate() {
                if !known.fragments.is_empty() && !known.fragments.contains(f) {
                    problems.push((
                        at.key("fragments").index(j),
                        format!("no fragment {f:?} in kernels/config"),
                    ));
                }
            }
        }
        // Two entries that can both apply to one run would make the verdict ambiguous.
        if let Some(j) = raw[..i].iter().position(|p| {
            e.case.is_some()
                && p.case == e.case
                && overlap(&p.ops, &e.ops)
                && overlap(&p.topologies, &e.topologies)
                && overlap(&p.fragments, &e.fragments)
        }) {
            let first = line_of(text, &KeyPath::root().index(j))
                .map_or_else(String::new, |l| format!(" (line {l})"));
            problems.push((
                at.key("case"),
                format!("{case:?} is already listed{first} for some of the same ops"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid {
            file: file.to_string(),
            problems: problems
                .into_iter()
                .map(|(key, message)| Problem {
                    line: line_of(text, &key),
                    key: if key.0.is_empty() {
                        "(file name)".into()
                    } else {
                        key.to_string()
                    },
                    message,
                })
                .collect(),
        });
    }
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, e)| ExpectedFailure {
            origin: match line_of(text, &KeyPath::root().index(i)) {
                Some(l) => format!("{file}:{l}"),
                None => file.to_string(),
            },
            case: e.case.unwrap_or_default(),
            outcome: e.outcome.unwrap_or(Listed::Fail),
            expect: e.expect.unwrap_or_default(),
            splat: e.splat,
            reason: e.reason.unwrap_or_default(),
            fixed_by: e.fixed_by.unwrap_or_default(),
            ops: e.ops,
            topologies: e.topologies,
            fragments: e.fragments,
        })
        .collect())
}

fn overlap(a: &Option<Vec<String>>, b: &Option<Vec<String>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
        _ => true,
    }
}

#[cfg(test)]
#[path = "expected_tests.rs"]
mod tests;
