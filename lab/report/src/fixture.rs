//! A small report with every outcome, shared by the golden tests.

use std::collections::BTreeMap;

use crate::model::{CaseReport, Outcome, RunReport, SuiteReport};
use crate::splat::{Splat, SplatKind};

fn case(name: &str, outcome: Outcome, ms: u64, reason: Option<&str>) -> CaseReport {
    CaseReport {
        reason: reason.map(str::to_string),
        ..CaseReport::new(name, outcome, ms)
    }
}

fn rerun(case: &str) -> Option<String> {
    Some(format!("cargo xtask lab run --case {case}"))
}

pub fn report() -> RunReport {
    let mut write = case(
        "write#2",
        Outcome::Fail,
        100,
        Some("short write: 10 < 4096"),
    );
    write.diagnostics = vec!["expected <4096>".into(), "got & 10".into()];
    write.reproduce = rerun("fmap/write_2");

    let mut truncate = case(
        "truncate",
        Outcome::Timeout,
        30000,
        Some("timed out after 30s"),
    );
    truncate.splats = vec![Splat {
        kind: SplatKind::Warning,
        line: 7,
        excerpt: vec![
            "WARNING: CPU: 0 PID: 9 at fs/fuse/famfs.c:10 f+0x1/0x2".into(),
            "---[ end trace 0000000000000000 ]---".into(),
        ],
    }];
    truncate.reproduce = rerun("fmap/truncate");

    let mut mount = case("mount", Outcome::Error, 5, Some("agent died\nrestart"));
    mount.diagnostics = vec!["bell \u{7} \"char\"".into()];
    mount.reproduce = rerun("meta/mount");

    let mut xpass = case("fixed?", Outcome::Xpass, 3, None);
    xpass.reproduce = rerun("meta/fixed");

    RunReport {
        run_id: "run-42".into(),
        kernel: "6.14.0-famfs".into(),
        kernel_hash: "abc123".into(),
        topology: "dax1".into(),
        accel: "kvm".into(),
        started_at: "2025-03-01T12:00:00Z".into(),
        duration_ms: 42_005,
        suites: vec![
            SuiteReport {
                name: "fmap".into(),
                cases: vec![
                    case("read basic", Outcome::Pass, 12, None),
                    write,
                    case("dax-huge", Outcome::Skip, 0, Some("no 1G pages")),
                    truncate,
                ],
            },
            SuiteReport {
                name: "meta".into(),
                cases: vec![
                    mount,
                    case("known-bug", Outcome::Xfail, 7, Some("bz#123")),
                    xpass,
                ],
            },
        ],
        meta: BTreeMap::from([("qemu".to_string(), "9.2.0".to_string())]),
    }
}
