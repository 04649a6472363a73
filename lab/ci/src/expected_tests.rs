use super::*;
use lab_report::{RunReport, SuiteReport};

const FAMFS_BPF: &str = "\
# known failures
- case: smoke.fsdev_bind
  expect: rebind timed out
  reason: fsdev_dax rebinding races the region probe
  fixed_by: issue 7
- case: smoke.devdax_guest_write
  expect: bytes differ
  reason: the native ops do not flush
  fixed_by: \"commit 0123abc\"
  ops: [famfs_native]
- case: smoke.devdax_guest_write
  expect: bytes differ
  reason: the map lookup misses the second extent
  fixed_by: issue 9
  ops: [famfs_maplookup]
";

/// One entry of each kind, as `ci/expected/famfs-bpf.yaml` would have them.
const POLICY: &str = "\
- case: smoke.fsdev_bind
  expect: rebind timed out
  reason: fsdev_dax rebinding races the region probe
  fixed_by: issue 7
- case: smoke.regions
  outcome: skip
  expect: is interleaved
  reason: the host pattern is contiguous
  fixed_by: issue 16
- case: smoke.devdax_guest_write
  expect: killed by signal 7
  reason: the bug WARNs in the DAX core
  fixed_by: issue 16
  splat: fs/dax.c:223
";

fn known() -> Known {
    Known {
        kernels: vec!["famfs-bpf".into(), "stock".into()],
        cases: vec![
            "smoke.fsdev_bind".into(),
            "smoke.devdax_guest_write".into(),
            "smoke.memdevs".into(),
            "smoke.regions".into(),
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

/// An entry with every required key, for the checks of one more.
fn entry(case: &str, more: &str) -> String {
    format!("- case: {case}\n  expect: e\n  reason: r\n  fixed_by: issue 1\n{more}")
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
    let e = x.lookup("famfs-bpf", None, "smoke.fsdev_bind").unwrap();
    assert_eq!(e.origin, "ci/expected/famfs-bpf.yaml:2");
    assert_eq!(
        (e.outcome, e.expect.as_str(), e.fixed_by.as_str()),
        (Listed::Fail, "rebind timed out", "issue 7")
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
            entry("smoke.memdevs", "  bug: 12\n"),
            5,
            "unknown field `bug`",
        ),
        (entry("smoke.memdevs", "  ops: famfs\n"), 5, "invalid type"),
        (
            entry("smoke.memdevs", "  outcome: xfail\n"),
            5,
            "unknown variant `xfail`",
        ),
        (entry("smoke.memdevs", "\tops: [famfs]\n"), 5, ""),
        (
            "case: smoke.memdevs\n".to_string(),
            1,
            "invalid type: map, expected a sequence",
        ),
    ] {
        let e = x
            .add("famfs-bpf", &text, "ci/expected/famfs-bpf.yaml", &known())
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
fn every_entry_needs_expect_reason_and_fixed_by_with_its_line() {
    // The second entry (line 5) lacks all three; the first is complete.
    let text = format!(
        "{}- case: smoke.fsdev_bind\n  ops: [famfs]\n",
        entry("smoke.memdevs", "")
    );
    let ps = problems("famfs-bpf", &text);
    let got: Vec<(Option<usize>, &str)> = ps.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert_eq!(
        got,
        [
            (Some(5), "[1].expect"),
            (Some(5), "[1].reason"),
            (Some(5), "[1].fixed_by"),
        ],
        "{ps:?}"
    );
    assert!(ps[2].2.contains("missing `fixed_by`"), "{ps:?}");
    assert!(ps[2].2.contains("issue or commit"), "{ps:?}");
    // A missing case id too; and the rendered error is FILE:LINE.
    let mut x = ExpectedFailures::default();
    let e = x
        .add(
            "famfs-bpf",
            "- expect: e\n  reason: r\n  fixed_by: issue 1\n",
            "ci/expected/famfs-bpf.yaml",
            &known(),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "ci/expected/famfs-bpf.yaml:1: [0].case: missing `case`: the case id, SUITE.NAME"
    );
}

#[test]
fn semantic_errors_have_their_line() {
    let cases: &[(&str, String, Option<usize>, &str, &str)] = &[
        (
            "famfs-bpf",
            entry("fsdev_bind", ""),
            Some(1),
            "[0].case",
            "SUITE.NAME",
        ),
        (
            "famfs-bpf",
            entry("smoke.a.b", ""),
            Some(1),
            "[0].case",
            "SUITE.NAME",
        ),
        (
            "famfs-bpf",
            entry("smoke.nope", ""),
            Some(1),
            "[0].case",
            "no case \"smoke.nope\"",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "").replace("reason: r", "reason: ' '"),
            Some(3),
            "[0].reason",
            "empty: why",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "").replace("expect: e", "expect: ''"),
            Some(2),
            "[0].expect",
            "empty: a substring",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "").replace("fixed_by: issue 1", "fixed_by: ''"),
            Some(4),
            "[0].fixed_by",
            "empty: the issue or commit",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "  ops: []\n"),
            Some(5),
            "[0].ops",
            "leave `ops` out",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "  ops: [famfs, famfs]\n"),
            Some(5),
            "[0].ops[1]",
            "listed twice",
        ),
        (
            "famfs-bpf",
            entry("smoke.memdevs", "  ops:\n    - famfs\n    - native\n"),
            Some(7),
            "[0].ops[1]",
            "not a value of the matrix's ops axis",
        ),
        (
            "famfs-bpf",
            format!(
                "{}{}",
                entry("smoke.memdevs", ""),
                entry("smoke.memdevs", "  outcome: skip\n  ops: [famfs]\n")
            ),
            Some(5),
            "[1].case",
            "already listed (line 1)",
        ),
        (
            "stock-7.2",
            "[]\n".to_string(),
            Some(1),
            "(file name)",
            "kernel \"stock-7.2\"",
        ),
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
        format!("{}:6", d.path().join("famfs-bpf.yaml").display())
    );
    assert_eq!(
        ExpectedFailures::load_dir(&d.path().join("none"), &known()).unwrap(),
        ExpectedFailures::default()
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut k = Known::from_repo(&root).unwrap();
    k.cases = lab_suite::catalog::CASES.iter().map(|c| c.id()).collect();
    k.ops = vec![
        "famfs".into(),
        "famfs_maplookup".into(),
        "famfs_native".into(),
    ];
    let repo =
        ExpectedFailures::load_dir(&root.join(EXPECTED_DIR), &k).unwrap_or_else(|e| panic!("{e}"));
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

// ---- apply: the run policies ----

fn case(name: &str, outcome: Outcome, reason: Option<&str>) -> CaseReport {
    let mut c = CaseReport::new(name, outcome, 1);
    c.reason = reason.map(String::from);
    c
}

fn run_of(kernel: &str, cases: Vec<CaseReport>) -> RunReport {
    RunReport {
        kernel: kernel.into(),
        suites: vec![SuiteReport {
            name: "smoke".into(),
            cases,
        }],
        ..RunReport::default()
    }
}

fn policy() -> ExpectedFailures {
    let mut x = ExpectedFailures::default();
    x.add("famfs-bpf", POLICY, "ci/expected/famfs-bpf.yaml", &known())
        .unwrap();
    x
}

/// No excuse: the kernel has what every case needs (a famfs-bpf kernel).
fn nothing_missing(_: &str) -> Option<String> {
    None
}

/// The stock kernel: no CONFIG_FUSE_DAX_FMAP, so `smoke.regions` stands in for a case that
/// needs it.
fn stock_excuse(id: &str) -> Option<String> {
    (id == "smoke.regions").then(|| "kernel stock has no CONFIG_FUSE_DAX_FMAP".to_string())
}

/// Applies [`policy`] to one case; its outcome and reason after.
fn judged(kernel: &str, c: CaseReport, excuse: &dyn Fn(&str) -> Option<String>) -> CaseReport {
    let mut report = run_of(kernel, vec![c]);
    let facts = RunFacts {
        ops: Some("famfs"),
        topology: Some("default"),
        excuse,
        reproduce: "cargo xtask lab up --kernel famfs-bpf",
    };
    policy().apply(&mut report, &facts);
    report.suites[0].cases.remove(0)
}

#[test]
fn a_known_failure_with_its_message_is_xfail() {
    let c = judged(
        "famfs-bpf+debug",
        case(
            "fsdev_bind",
            Outcome::Fail,
            Some("dax0.0: rebind timed out after 5s"),
        ),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Xfail);
    let why = c.reason.unwrap_or_default();
    assert!(
        why.contains("ci/expected/famfs-bpf.yaml:1") && why.contains("fixed by issue 7"),
        "{why}"
    );
    assert!(why.contains("rebind timed out after 5s"), "{why}");
    assert_eq!(c.reproduce, None);
}

#[test]
fn a_known_failure_with_another_message_stays_a_failure() {
    let c = judged(
        "famfs-bpf",
        case("fsdev_bind", Outcome::Fail, Some("bad bytes at 0x1000")),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Fail);
    let why = c.reason.unwrap_or_default();
    assert!(
        why.contains("bad bytes at 0x1000") && why.contains("expects \"rebind timed out\""),
        "{why}"
    );
}

#[test]
fn a_splat_timeout_or_error_in_a_listed_case_is_a_real_failure() {
    let mut splat = case("fsdev_bind", Outcome::Fail, Some("rebind timed out"));
    splat.splats.push(lab_report::Splat {
        kind: lab_report::SplatKind::Warning,
        line: 9,
        excerpt: vec!["WARNING: CPU: 0".into()],
    });
    let c = judged("famfs-bpf", splat, &nothing_missing);
    assert_eq!(c.outcome, Outcome::Fail);
    assert!(c.reason.unwrap_or_default().contains("splat"));
    for outcome in [Outcome::Timeout, Outcome::Error] {
        let c = judged(
            "famfs-bpf",
            case("fsdev_bind", outcome, Some("rebind timed out")),
            &nothing_missing,
        );
        assert_eq!(c.outcome, outcome);
        assert!(c.outcome.is_failure());
    }
}

#[test]
fn a_listed_case_that_passes_is_xpass() {
    let c = judged(
        "famfs-bpf",
        case("fsdev_bind", Outcome::Pass, None),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Xpass);
    let c = judged(
        "famfs-bpf",
        case("regions", Outcome::Pass, None),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Xpass, "a listed skip that now runs");
}

#[test]
fn an_unlisted_skip_on_a_kernel_with_the_feature_fails_the_run() {
    let mut report = run_of(
        "famfs-bpf",
        vec![
            case("memdevs", Outcome::Pass, None),
            case("fsdev_bind", Outcome::Xfail, Some("was so")),
            case("devdax_guest_write", Outcome::Skip, Some("no bpftool")),
        ],
    );
    let facts = RunFacts {
        ops: Some("famfs"),
        topology: Some("default"),
        excuse: &nothing_missing,
        reproduce: "cargo xtask lab up --kernel famfs-bpf",
    };
    assert_eq!(policy().apply(&mut report, &facts), 1);
    assert!(report.failed(), "an unlisted SKIP must fail the run");
    let c = &report.suites[0].cases[2];
    assert_eq!(c.outcome, Outcome::Fail);
    let why = c.reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("no bpftool") && why.contains("ci/expected/famfs-bpf.yaml"),
        "{why}"
    );
    assert_eq!(
        c.reproduce.as_deref(),
        Some("cargo xtask lab up --kernel famfs-bpf --case smoke.devdax_guest_write")
    );
    // A kernel with no file at all is held to the same rule.
    let c = judged(
        "mine@tree",
        case("regions", Outcome::Skip, Some("is interleaved")),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Fail);
}

#[test]
fn a_listed_skip_with_its_message_passes_and_another_message_fails() {
    let mut report = run_of(
        "famfs-bpf",
        vec![case(
            "regions",
            Outcome::Skip,
            Some("dax1.0 is interleaved; the host pattern is contiguous"),
        )],
    );
    let facts = RunFacts {
        ops: None,
        topology: None,
        excuse: &nothing_missing,
        reproduce: "x",
    };
    policy().apply(&mut report, &facts);
    assert!(!report.failed(), "a listed SKIP must not fail the run");
    let c = &report.suites[0].cases[0];
    assert_eq!(c.outcome, Outcome::Skip);
    let why = c.reason.as_deref().unwrap_or_default();
    assert!(
        why.contains("known skip") && why.contains("fixed by issue 16"),
        "{why}"
    );
    let c = judged(
        "famfs-bpf",
        case("regions", Outcome::Skip, Some("no region r1")),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Fail);
    // A known failure does not excuse a skip.
    let c = judged(
        "famfs-bpf",
        case("fsdev_bind", Outcome::Skip, Some("rebind timed out")),
        &nothing_missing,
    );
    assert_eq!(c.outcome, Outcome::Fail);
}

#[test]
fn a_kernel_without_the_feature_keeps_its_skips() {
    let mut report = run_of(
        "stock",
        vec![case(
            "regions",
            Outcome::Skip,
            Some("kernel stock has no CONFIG_FUSE_DAX_FMAP"),
        )],
    );
    let facts = RunFacts {
        ops: None,
        topology: None,
        excuse: &stock_excuse,
        reproduce: "x",
    };
    assert_eq!(policy().apply(&mut report, &facts), 0);
    assert_eq!(report.suites[0].cases[0].outcome, Outcome::Skip);
    assert!(!report.failed());
    // ... but not for a case that needs nothing the kernel lacks.
    let c = judged(
        "stock",
        case("memdevs", Outcome::Skip, Some("no mem0")),
        &stock_excuse,
    );
    assert_eq!(c.outcome, Outcome::Fail);
}

#[test]
fn unlisted_cases_keep_their_outcome() {
    for outcome in [Outcome::Pass, Outcome::Fail, Outcome::Xfail, Outcome::Error] {
        let c = judged(
            "famfs-bpf",
            case("memdevs", outcome, Some("m")),
            &nothing_missing,
        );
        assert_eq!(c.outcome, outcome);
        assert_eq!(c.reason.as_deref(), Some("m"));
    }
}

fn warning(text: &str) -> lab_report::Splat {
    lab_report::Splat {
        kind: lab_report::SplatKind::Warning,
        line: 3,
        excerpt: vec![text.into(), "Call Trace:".into()],
    }
}

#[test]
fn a_known_failure_that_warns_is_xfail_only_with_its_own_warning() {
    let known_warn = "WARNING: fs/dax.c:223 at get_next_unlocked_entry+0x104/0x130, CPU#0: x/1";
    let mut c = case(
        "devdax_guest_write",
        Outcome::Fail,
        Some("killed by signal 7"),
    );
    c.splats.push(warning(known_warn));
    let got = judged("famfs-bpf", c.clone(), &nothing_missing);
    assert_eq!(got.outcome, Outcome::Xfail, "{:?}", got.reason);
    // Another splat beside it: a real failure, naming the stranger.
    let mut two = c.clone();
    two.splats.push(warning(
        "BUG: KASAN: use-after-free in fuse_dax_fmap_release",
    ));
    let got = judged("famfs-bpf", two, &nothing_missing);
    assert_eq!(got.outcome, Outcome::Fail);
    assert!(
        got.reason.unwrap_or_default().contains("KASAN"),
        "the reason names the unexpected splat"
    );
    // The message without its WARN: not this known failure either.
    let quiet = case(
        "devdax_guest_write",
        Outcome::Fail,
        Some("killed by signal 7"),
    );
    let got = judged("famfs-bpf", quiet, &nothing_missing);
    assert_eq!(got.outcome, Outcome::Fail);
    assert!(got.reason.unwrap_or_default().contains("did not appear"));
}

#[test]
fn a_known_oops_matches_on_any_of_its_lines_and_its_panic_goes_with_it() {
    let mut c = case(
        "devdax_guest_write",
        Outcome::Fail,
        Some("killed by signal 7"),
    );
    c.splats.push(lab_report::Splat {
        kind: lab_report::SplatKind::Bug,
        line: 3,
        excerpt: vec![
            "BUG: unable to handle page fault for address: ffd4000004510008".into(),
            "RIP: 0010:get_next_unlocked_entry+0x111/0x2a0 fs/dax.c:223 at get_next_unlocked_entry"
                .into(),
        ],
    });
    c.splats.push(lab_report::Splat {
        kind: lab_report::SplatKind::KernelPanic,
        line: 66,
        excerpt: vec!["Kernel panic - not syncing: Fatal exception".into()],
    });
    let got = judged("famfs-bpf", c.clone(), &nothing_missing);
    assert_eq!(got.outcome, Outcome::Xfail, "{:?}", got.reason);
    // A panic alone is not the known splat.
    let mut lone = case(
        "devdax_guest_write",
        Outcome::Fail,
        Some("killed by signal 7"),
    );
    lone.splats.push(c.splats[1].clone());
    let got = judged("famfs-bpf", lone, &nothing_missing);
    assert_eq!(got.outcome, Outcome::Fail, "{:?}", got.reason);
}

#[test]
fn a_topologies_list_limits_the_entry_to_those_topologies() {
    const ON_TWO: &str = "\
- case: smoke.fsdev_bind
  expect: rebind timed out
  reason: only with a second device
  fixed_by: issue 16
  topologies: [two-devices]
";
    let mut x = ExpectedFailures::default();
    x.add("famfs-bpf", ON_TWO, "ci/expected/famfs-bpf.yaml", &known())
        .unwrap();
    let judge = |topology: &str| {
        let mut report = run_of(
            "famfs-bpf",
            vec![case("fsdev_bind", Outcome::Fail, Some("rebind timed out"))],
        );
        let facts = RunFacts {
            ops: Some("famfs"),
            topology: Some(topology),
            excuse: &nothing_missing,
            reproduce: "x",
        };
        x.apply(&mut report, &facts);
        report.suites[0].cases[0].outcome
    };
    assert_eq!(judge("two-devices"), Outcome::Xfail);
    assert_eq!(judge("default"), Outcome::Fail);
}

#[test]
fn a_fragments_list_limits_the_entry_to_kernels_built_with_them() {
    const ON_DEBUG: &str = "\
- case: smoke.fsdev_bind
  expect: kernel lockdep
  reason: a lock inversion only lockdep reports
  fixed_by: upstream
  fragments: [debug]
";
    let mut x = ExpectedFailures::default();
    x.add(
        "famfs-bpf",
        ON_DEBUG,
        "ci/expected/famfs-bpf.yaml",
        &known(),
    )
    .unwrap();
    let judge = |label: &str| {
        let mut report = run_of(
            label,
            vec![case(
                "fsdev_bind",
                Outcome::Fail,
                Some("kernel lockdep during the case"),
            )],
        );
        let facts = RunFacts {
            ops: Some("famfs"),
            topology: Some("default"),
            excuse: &nothing_missing,
            reproduce: "x",
        };
        x.apply(&mut report, &facts);
        report.suites[0].cases[0].outcome
    };
    assert_eq!(judge("famfs-bpf+debug"), Outcome::Xfail);
    assert_eq!(judge("famfs-bpf+debug@tree"), Outcome::Xfail);
    assert_eq!(judge("famfs-bpf"), Outcome::Fail);
    assert_eq!(judge("famfs-bpf+mutate:debug"), Outcome::Fail);
    let labels: Vec<&str> = fragments_of_label("famfs-bpf+debug+kasan@tree").collect();
    assert_eq!(labels, ["debug", "kasan"]);
    // A fragment kernels/config does not have is refused with its line.
    let with_fragments = Known {
        fragments: vec!["debug".into(), "base".into()],
        ..known()
    };
    let bad = ON_DEBUG.replace("[debug]", "[debgu]");
    let err = ExpectedFailures::default()
        .add(
            "famfs-bpf",
            &bad,
            "ci/expected/famfs-bpf.yaml",
            &with_fragments,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no fragment \"debgu\""), "{err}");
}
