//! Known failures: `ci/expected/<kernel>.yaml`, one file per kernel of
//! `kernels/`, each a list of
//!
//! ```yaml
//! - case: SUITE.NAME        # the case id, as `--case` takes it
//!   reason: why it fails    # shown in the report
//!   ops: [famfs_native]     # optional: only with these ops
//! ```
//!
//! The runner asks [`ExpectedFailures::expected_failure`] about every case:
//! a listed case that fails is reported XFAIL, one that passes XPASS (which
//! fails the run, so fixed bugs get their entry removed). A kernel with no
//! file has no expected failures. A label's fragments do not matter: the
//! debug build of famfs-bpf (`famfs-bpf+debug`) reads `famfs-bpf.yaml`.

use crate::error::{Error, Problem, Result};
use crate::locate::{line_of, KeyPath};
use crate::matrix::Known;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The directory, relative to the repository root.
pub const EXPECTED_DIR: &str = "ci/expected";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    case: String,
    reason: String,
    #[serde(default)]
    ops: Option<Vec<String>>,
}

/// One known failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFailure {
    /// `SUITE.NAME`.
    pub case: String,
    pub reason: String,
    /// Only with these ops; None: with any ops, and without.
    pub ops: Option<Vec<String>>,
    /// Where it is written, `FILE:LINE`, for the report.
    pub origin: String,
}

impl ExpectedFailure {
    fn applies(&self, ops: Option<&str>) -> bool {
        match (&self.ops, ops) {
            (None, _) => true,
            (Some(list), Some(o)) => list.iter().any(|x| x == o),
            (Some(_), None) => false,
        }
    }
}

/// Every kernel's known failures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFailures {
    by_kernel: BTreeMap<String, Vec<ExpectedFailure>>,
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
        self.lookup(kernel, ops, case_id).map(|e| e.reason.as_str())
    }

    /// The whole entry [`Self::expected_failure`] found.
    pub fn lookup(
        &self,
        kernel: &str,
        ops: Option<&str>,
        case_id: &str,
    ) -> Option<&ExpectedFailure> {
        self.by_kernel
            .get(kernel_of_label(kernel))?
            .iter()
            .find(|e| e.case == case_id && e.applies(ops))
    }

    /// Applies the list to a finished run: a known failure that failed is
    /// XFAIL (with the entry's reason and where it is written), one that
    /// passed is XPASS (a failure: the entry is stale). Returns how many
    /// cases changed.
    pub fn apply(&self, report: &mut lab_report::RunReport, ops: Option<&str>) -> usize {
        use lab_report::Outcome;
        let kernel = report.kernel.clone();
        let mut changed = 0;
        for suite in &mut report.suites {
            for case in &mut suite.cases {
                let id = format!("{}.{}", suite.name, case.name);
                let Some(entry) = self.lookup(&kernel, ops, &id) else {
                    continue;
                };
                let was = case
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                match case.outcome {
                    Outcome::Fail | Outcome::Timeout | Outcome::Error => {
                        case.reason = Some(format!(
                            "known failure, {}: {}; was {}{was}",
                            entry.origin, entry.reason, case.outcome
                        ));
                        case.outcome = Outcome::Xfail;
                        case.reproduce = None;
                    }
                    Outcome::Pass => {
                        case.reason = Some(format!(
                            "unexpected pass: {} lists it as failing ({})",
                            entry.origin, entry.reason
                        ));
                        case.outcome = Outcome::Xpass;
                    }
                    Outcome::Skip | Outcome::Xfail | Outcome::Xpass => continue,
                }
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
        let well_formed = matches!(e.case.split_once('.'), Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('.'));
        if !well_formed {
            problems.push((
                at.key("case"),
                format!(
                    "{:?}: a case id is SUITE.NAME, e.g. smoke.fsdev_bind",
                    e.case
                ),
            ));
        } else if !known.cases.is_empty() && !known.cases.contains(&e.case) {
            problems.push((
                at.key("case"),
                format!(
                    "no case {:?} in the catalog (`cargo xtask lab list`)",
                    e.case
                ),
            ));
        }
        if e.reason.trim().is_empty() {
            problems.push((
                at.key("reason"),
                "empty: say why it fails (a bug link, a missing feature)".into(),
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
        // Two entries that can both apply to one run would make the reason ambiguous.
        if let Some(j) = raw[..i]
            .iter()
            .position(|p| p.case == e.case && overlap(&p.ops, &e.ops))
        {
            let first = line_of(text, &KeyPath::root().index(j))
                .map_or_else(String::new, |l| format!(" (line {l})"));
            problems.push((
                at.key("case"),
                format!(
                    "{:?} is already listed{first} for some of the same ops",
                    e.case
                ),
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
            case: e.case,
            reason: e.reason,
            ops: e.ops,
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
mod tests {
    use super::*;

    const FAMFS_BPF: &str = "\
# known failures
- case: smoke.fsdev_bind
  reason: fsdev_dax rebinding races the region probe
- case: smoke.devdax_guest_write
  reason: the native ops do not flush
  ops: [famfs_native]
- case: smoke.devdax_guest_write
  reason: the map lookup misses the second extent
  ops: [famfs_maplookup]
";

    fn known() -> Known {
        Known {
            kernels: vec!["famfs-bpf".into(), "stock".into()],
            cases: vec![
                "smoke.fsdev_bind".into(),
                "smoke.devdax_guest_write".into(),
                "smoke.memdevs".into(),
            ],
            ops: vec![
                "famfs".into(),
                "famfs_maplookup".into(),
                "famfs_native".into(),
            ],
            ..Known::default()
        }
    }

    fn loaded() -> ExpectedFailures {
        let mut x = ExpectedFailures::default();
        x.add(
            "famfs-bpf",
            FAMFS_BPF,
            "ci/expected/famfs-bpf.yaml",
            &known(),
        )
        .unwrap();
        x.add("stock", "# none\n[]\n", "ci/expected/stock.yaml", &known())
            .unwrap();
        x
    }

    fn problems(kernel: &str, text: &str) -> Vec<(Option<usize>, String, String)> {
        let mut x = ExpectedFailures::default();
        match x.add(kernel, text, "ci/expected/x.yaml", &known()) {
            Err(Error::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| (p.line, p.key, p.message))
                .collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_listed_case_is_expected_to_fail_with_its_reason() {
        let x = loaded();
        assert_eq!(
            x.expected_failure("famfs-bpf", Some("famfs"), "smoke.fsdev_bind"),
            Some("fsdev_dax rebinding races the region probe")
        );
        assert_eq!(
            x.expected_failure("famfs-bpf", None, "smoke.fsdev_bind"),
            Some("fsdev_dax rebinding races the region probe")
        );
        assert_eq!(
            x.expected_failure("famfs-bpf", Some("famfs"), "smoke.memdevs"),
            None
        );
        assert_eq!(
            x.lookup("famfs-bpf", None, "smoke.fsdev_bind")
                .unwrap()
                .origin,
            "ci/expected/famfs-bpf.yaml:2"
        );
    }

    #[test]
    fn an_ops_list_limits_the_entry_to_those_ops() {
        let x = loaded();
        assert_eq!(
            x.expected_failure(
                "famfs-bpf",
                Some("famfs_native"),
                "smoke.devdax_guest_write"
            ),
            Some("the native ops do not flush")
        );
        assert_eq!(
            x.expected_failure(
                "famfs-bpf",
                Some("famfs_maplookup"),
                "smoke.devdax_guest_write"
            ),
            Some("the map lookup misses the second extent")
        );
        assert_eq!(
            x.expected_failure("famfs-bpf", Some("famfs"), "smoke.devdax_guest_write"),
            None
        );
        assert_eq!(
            x.expected_failure("famfs-bpf", None, "smoke.devdax_guest_write"),
            None
        );
    }

    #[test]
    fn labels_use_their_kernel_and_other_kernels_do_not_share() {
        let x = loaded();
        assert!(x
            .expected_failure("famfs-bpf+debug", Some("famfs"), "smoke.fsdev_bind")
            .is_some());
        assert!(x
            .expected_failure("famfs-bpf@tree", Some("famfs"), "smoke.fsdev_bind")
            .is_some());
        assert!(x
            .expected_failure("stock", None, "smoke.fsdev_bind")
            .is_none());
        assert!(x
            .expected_failure("famfs-bpfx", None, "smoke.fsdev_bind")
            .is_none());
        assert!(ExpectedFailures::default()
            .expected_failure("famfs-bpf", None, "smoke.fsdev_bind")
            .is_none());
        assert_eq!(x.for_kernel("famfs-bpf+debug").len(), 3);
        assert!(x.for_kernel("stock").is_empty());
    }

    #[test]
    fn a_file_of_comments_is_an_empty_list() {
        let mut x = ExpectedFailures::default();
        x.add("stock", "# nothing yet\n", "f", &known()).unwrap();
        assert!(x.for_kernel("stock").is_empty());
    }

    #[test]
    fn shape_errors_have_their_line() {
        let mut x = ExpectedFailures::default();
        for (text, line, needle) in [
            (
                "- case: smoke.memdevs\n  reason: r\n  bug: 12\n",
                3,
                "unknown field `bug`",
            ),
            (
                "- case: smoke.memdevs\n- case: smoke.fsdev_bind\n  reason: r\n",
                1,
                "missing field `reason`",
            ),
            (
                "- case: smoke.memdevs\n  reason: r\n  ops: famfs\n",
                3,
                "invalid type",
            ),
            (
                "- case: smoke.memdevs\n  reason: r\n\tops: [famfs]\n",
                3,
                "",
            ),
            (
                "case: smoke.memdevs\n",
                1,
                "invalid type: map, expected a sequence",
            ),
        ] {
            let e = x
                .add("famfs-bpf", text, "ci/expected/famfs-bpf.yaml", &known())
                .unwrap_err();
            let Error::Parse {
                line: Some(l),
                message,
                ..
            } = &e
            else {
                panic!("{e:?}")
            };
            assert_eq!(*l, line, "{text:?}: {e}");
            assert!(message.contains(needle), "{text:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("ci/expected/famfs-bpf.yaml:{line}:")),
                "{e}"
            );
        }
    }

    #[test]
    fn semantic_errors_have_their_line() {
        let cases: &[(&str, &str, Option<usize>, &str, &str)] = &[
            ("famfs-bpf", "- case: fsdev_bind\n  reason: r\n", Some(1), "[0].case", "SUITE.NAME"),
            ("famfs-bpf", "- case: smoke.a.b\n  reason: r\n", Some(1), "[0].case", "SUITE.NAME"),
            ("famfs-bpf", "- case: smoke.nope\n  reason: r\n", Some(1), "[0].case", "no case \"smoke.nope\""),
            ("famfs-bpf", "- case: smoke.memdevs\n  reason: ' '\n", Some(2), "[0].reason", "say why"),
            ("famfs-bpf", "- case: smoke.memdevs\n  reason: r\n  ops: []\n", Some(3), "[0].ops", "leave `ops` out"),
            ("famfs-bpf", "- case: smoke.memdevs\n  reason: r\n  ops: [famfs, famfs]\n", Some(3), "[0].ops[1]", "listed twice"),
            ("famfs-bpf", "- case: smoke.memdevs\n  reason: r\n  ops:\n    - famfs\n    - native\n", Some(5), "[0].ops[1]", "not a value of the matrix's ops axis"),
            ("famfs-bpf", "- case: smoke.memdevs\n  reason: r\n- case: smoke.memdevs\n  reason: s\n  ops: [famfs]\n", Some(3), "[1].case", "already listed (line 1)"),
            ("stock-7.2", "[]\n", Some(1), "(file name)", "kernel \"stock-7.2\""),
        ];
        for (kernel, text, line, key, needle) in cases {
            let ps = problems(kernel, text);
            assert_eq!(ps.len(), 1, "{text:?}: {ps:?}");
            let (l, k, m) = &ps[0];
            assert_eq!((l, k.as_str()), (line, *key), "{text:?}: {m}");
            assert!(m.contains(needle), "{text:?}: {m}");
        }
        // Disjoint ops lists for one case are fine.
        assert!(ExpectedFailures::default()
            .add("famfs-bpf", FAMFS_BPF, "f", &known())
            .is_ok());
    }

    #[test]
    fn loads_a_directory_and_the_repository_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("famfs-bpf.yaml"), FAMFS_BPF).unwrap();
        std::fs::write(d.path().join("README"), "not a list").unwrap();
        let x = ExpectedFailures::load_dir(d.path(), &known()).unwrap();
        assert_eq!(x.for_kernel("famfs-bpf").len(), 3);
        assert_eq!(
            x.for_kernel("famfs-bpf")[1].origin,
            format!("{}:4", d.path().join("famfs-bpf.yaml").display())
        );
        assert_eq!(
            ExpectedFailures::load_dir(&d.path().join("none"), &known()).unwrap(),
            ExpectedFailures::default()
        );

        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut k = Known::from_repo(&root).unwrap();
        k.cases = famfs_lab_cases::catalog::CASES
            .iter()
            .map(|c| c.id())
            .collect();
        k.ops = vec![
            "famfs".into(),
            "famfs_maplookup".into(),
            "famfs_native".into(),
        ];
        let repo = ExpectedFailures::load_dir(&root.join(EXPECTED_DIR), &k)
            .unwrap_or_else(|e| panic!("{e}"));
        for kernel in ["stock", "famfs-bpf"] {
            assert!(
                root.join(EXPECTED_DIR)
                    .join(format!("{kernel}.yaml"))
                    .is_file(),
                "{kernel}.yaml"
            );
            assert!(repo.by_kernel.contains_key(kernel));
        }
    }

    #[test]
    fn apply_turns_known_failures_into_xfail_and_stale_entries_into_xpass() {
        use lab_report::{CaseReport, Outcome, RunReport, SuiteReport};
        let mut x = ExpectedFailures::default();
        x.add(
            "famfs-bpf",
            "- case: smoke.fsdev_bind\n  reason: bug 1\n- case: smoke.memdevs\n  reason: bug 2\n",
            "ci/expected/famfs-bpf.yaml",
            &known(),
        )
        .unwrap();
        let mut report = RunReport {
            kernel: "famfs-bpf+debug".into(),
            suites: vec![SuiteReport {
                name: "smoke".into(),
                cases: vec![
                    CaseReport::new("fsdev_bind", Outcome::Fail, 1),
                    CaseReport::new("memdevs", Outcome::Pass, 1),
                    CaseReport::new("devdax_guest_write", Outcome::Fail, 1),
                ],
            }],
            ..RunReport::default()
        };
        assert_eq!(x.apply(&mut report, Some("famfs")), 2);
        let c = &report.suites[0].cases;
        assert_eq!(c[0].outcome, Outcome::Xfail);
        assert!(
            c[0].reason
                .as_deref()
                .unwrap()
                .contains("ci/expected/famfs-bpf.yaml:1"),
            "{:?}",
            c[0].reason
        );
        assert_eq!(c[1].outcome, Outcome::Xpass);
        assert_eq!(c[2].outcome, Outcome::Fail, "not listed: unchanged");
        assert!(
            report.failed(),
            "an unexpected pass and a real failure still fail the run"
        );
    }
}
