use proptest::prelude::*;

use super::*;
use crate::fixture::report;
use crate::model::SuiteReport;

const GOLDEN: &str = "\
KTAP version 1
1..2
  KTAP version 1
  # Subtest: fmap
  1..4
  ok 1 read_basic
  # reason: short write: 10 < 4096
  # expected <4096>
  # got & 10
  not ok 2 write_2
  ok 3 dax-huge # SKIP no 1G pages
  # splat: warning at log line 7
  # WARNING: CPU: 0 PID: 9 at fs/fuse/famfs.c:10 f+0x1/0x2
  # ---[ end trace 0000000000000000 ]---
  not ok 4 truncate # TIMEOUT timed out after 30s
not ok 1 fmap
  KTAP version 1
  # Subtest: meta
  1..3
  # bell \u{7} \"char\"
  not ok 1 mount # ERROR agent died restart
  ok 2 known-bug # XFAIL bz#123
  not ok 3 fixed? # XPASS unexpected pass
not ok 2 meta
";

fn triple(suite: &str, case: &str, outcome: Outcome) -> KtapResult {
    (suite.to_string(), case.to_string(), outcome)
}

#[test]
fn golden() {
    assert_eq!(write(&report()), GOLDEN);
}

#[test]
fn parse_golden() {
    use Outcome::*;
    let expected = vec![
        triple("fmap", "read_basic", Pass),
        triple("fmap", "write_2", Fail),
        triple("fmap", "dax-huge", Skip),
        triple("fmap", "truncate", Timeout),
        triple("meta", "mount", Error),
        triple("meta", "known-bug", Xfail),
        triple("meta", "fixed?", Xpass),
    ];
    assert_eq!(parse(GOLDEN).expect("parse"), expected);
}

#[test]
fn passing_suite_and_empty_suite() {
    let mut r = report();
    r.suites = vec![
        SuiteReport {
            name: "ok suite".into(),
            cases: vec![CaseReport::new("a", Outcome::Xfail, 1)],
        },
        SuiteReport {
            name: "empty".into(),
            cases: vec![],
        },
    ];
    let text = write(&r);
    assert!(text.contains("\nok 1 ok_suite\n"), "{text}");
    assert!(
        text.contains("\n  1..0\nok 2 empty # SKIP no cases\n"),
        "{text}"
    );
    let parsed = parse(&text).expect("parse");
    assert_eq!(
        parsed,
        [
            triple("ok_suite", "a", Outcome::Xfail),
            triple("empty", "empty", Outcome::Skip)
        ]
    );
}

#[test]
fn sanitize() {
    assert_eq!(sanitize_name("a b#c\nd\re\tf"), "a_b_c_d_e_f");
    assert_eq!(sanitize_name(""), "unnamed");
    assert_eq!(sanitize_name("fmap/read-1.x"), "fmap/read-1.x");
}

#[test]
fn parse_kunit_style_with_deeper_nesting_and_noise() {
    let text = "\
[    1.000000] random boot noise
KTAP version 1\r
1..2
    KTAP version 1
    # Subtest: famfs_fmap
    # module: famfs_test
    1..2
        KTAP version 1
        # Subtest: param_test
        ok 1 param-0
        not ok 2 param-1
    not ok 1 param_test
    ok 2 simple # SKIP needs dax
# famfs_fmap: pass:0 fail:1 skip:1 total:2
not ok 1 famfs_fmap
    # Subtest: legacy
    1..1
    ok 1 - old_style
ok 2 - legacy
";
    let parsed = parse(text).expect("parse");
    assert_eq!(
        parsed,
        [
            triple("famfs_fmap", "param_test", Outcome::Fail),
            triple("famfs_fmap", "simple", Outcome::Skip),
            triple("legacy", "old_style", Outcome::Pass),
        ]
    );
}

#[test]
fn parse_flat_kselftest() {
    let text = "TAP version 13\n1..3\nok 1 selftests: famfs: mkfs\nnot ok 2 selftests: famfs: mount # exit=1\nnot ok 3 t # TODO later\n";
    let parsed = parse(text).expect("parse");
    assert_eq!(
        parsed,
        [
            triple(
                "selftests: famfs: mkfs",
                "selftests: famfs: mkfs",
                Outcome::Pass
            ),
            triple(
                "selftests: famfs: mount",
                "selftests: famfs: mount",
                Outcome::Fail
            ),
            triple("t", "t", Outcome::Xfail),
        ]
    );
}

#[test]
fn parse_errors() {
    let bad = [
        ("ok 1 x\n", "no KTAP version line"),
        ("KTAP version 1\n1..2\nok 1 a\n", "plan 1..2, 1 results"),
        (
            "KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\n",
            "has no result line",
        ),
        (
            "KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 a\nok 1 s\n",
            "plan 1..2, 1 results",
        ),
        ("KTAP version 1\nok 2 a\n", "test number 2, expected 1"),
        (
            "KTAP version 1\n  KTAP version 1\n  ok 1 a\n  ok 3 b\nok 1 s\n",
            "case number 3",
        ),
        ("KTAP version 1\nok x a\n", "bad test number"),
        ("KTAP version 1\n  ok 1 a\n", "outside a subtest"),
    ];
    for (text, want) in bad {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let err = parse("KTAP version 1\nok 2 a\n").expect_err("numbering");
    assert!(matches!(err, Error::Ktap { line: 2, .. }), "{err}");
}

fn outcome() -> impl Strategy<Value = Outcome> {
    proptest::sample::select(Outcome::ALL.to_vec())
}

fn case() -> impl Strategy<Value = CaseReport> {
    let text = "(?s).{0,12}";
    (
        text,
        outcome(),
        proptest::option::of(text),
        proptest::collection::vec(text, 0..3),
    )
        .prop_map(|(name, outcome, reason, diagnostics)| CaseReport {
            reason,
            diagnostics,
            ..CaseReport::new(name, outcome, 1)
        })
}

proptest! {
    #[test]
    fn parse_inverts_write(
        suites in proptest::collection::vec(("(?s).{0,10}", proptest::collection::vec(case(), 0..4)), 0..4)
    ) {
        let mut r = report();
        r.suites = suites
            .into_iter()
            .map(|(name, cases)| SuiteReport { name, cases })
            .collect();
        let mut expected = Vec::new();
        for s in &r.suites {
            let suite = sanitize_name(&s.name);
            if s.cases.is_empty() {
                expected.push((suite.clone(), suite.clone(), Outcome::Skip));
            }
            for c in &s.cases {
                expected.push((suite.clone(), sanitize_name(&c.name), c.outcome));
            }
        }
        let text = write(&r);
        prop_assert_eq!(parse(&text).map_err(|e| e.to_string()), Ok(expected), "{}", text);
    }
}
