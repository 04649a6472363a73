//! The human summary printed at the end of a run.
//!
//! Layout: a header line, one line per suite, the closing totals line
//! `N passed, N failed, N skipped`, then per failing (or splatting) case a
//! `failed ...` line, `splat ...` lines and a `reproduce: <command>` line.

use crate::model::{CaseReport, Counts, RunReport};

/// `N passed, N failed, N skipped`: passed counts Pass and Xfail, failed
/// counts `is_failure()` outcomes, skipped counts Skip.
pub fn totals_line(counts: &Counts) -> String {
    format!(
        "{} passed, {} failed, {} skipped",
        counts.passed(),
        counts.failed(),
        counts.skipped()
    )
}

/// Renders the whole summary; every line ends with `\n`.
pub fn render(report: &RunReport) -> String {
    let mut out = format!(
        "run {}: kernel {} ({}), topology {}, accel {}, {}.{:03}s\n",
        one_line(&report.run_id),
        one_line(&report.kernel),
        one_line(&report.kernel_hash),
        one_line(&report.topology),
        one_line(&report.accel),
        report.duration_ms / 1000,
        report.duration_ms % 1000,
    );
    for suite in &report.suites {
        let counts = suite.counts();
        out.push_str(&format!(
            "{}: {}{}\n",
            one_line(&suite.name),
            totals_line(&counts),
            breakdown(&counts)
        ));
    }
    out.push_str(&totals_line(&report.counts()));
    out.push('\n');
    for suite in &report.suites {
        for case in &suite.cases {
            case_lines(&mut out, &suite.name, case);
        }
    }
    out
}

/// ` (timeout 1, xfail 2)` for the outcomes the totals line folds together.
fn breakdown(c: &Counts) -> String {
    let parts: Vec<String> = [
        ("timeout", c.timeout),
        ("error", c.error),
        ("xfail", c.xfail),
        ("xpass", c.xpass),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, n)| format!("{name} {n}"))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn case_lines(out: &mut String, suite: &str, case: &CaseReport) {
    let failed = case.outcome.is_failure();
    if !failed && case.splats.is_empty() {
        return;
    }
    let id = format!("{}/{}", one_line(suite), one_line(&case.name));
    if failed {
        out.push_str(&format!("failed {id} ({})", case.outcome));
        if let Some(reason) = &case.reason {
            out.push_str(&format!(": {}", one_line(reason)));
        }
        out.push('\n');
    }
    for splat in &case.splats {
        let first = splat.excerpt.first().map_or("", String::as_str);
        out.push_str(&format!(
            "splat {id}: {} at log line {}: {}\n",
            splat.kind,
            splat.line,
            one_line(first)
        ));
    }
    if let Some(command) = &case.reproduce {
        out.push_str(&format!("reproduce: {}\n", one_line(command)));
    }
}

/// Collapses whitespace runs (including newlines) to single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::report;
    use crate::model::Outcome;
    use crate::splat::{Splat, SplatKind};

    const GOLDEN: &str = "\
run run-42: kernel 6.14.0-famfs (abc123), topology dax1, accel kvm, 42.005s
fmap: 1 passed, 2 failed, 1 skipped (timeout 1)
meta: 1 passed, 2 failed, 0 skipped (error 1, xfail 1, xpass 1)
2 passed, 4 failed, 1 skipped
failed fmap/write#2 (fail): short write: 10 < 4096
reproduce: cargo xtask lab run --case fmap/write_2
failed fmap/truncate (timeout): timed out after 30s
splat fmap/truncate: warning at log line 7: WARNING: CPU: 0 PID: 9 at fs/fuse/famfs.c:10 f+0x1/0x2
reproduce: cargo xtask lab run --case fmap/truncate
failed meta/mount (error): agent died restart
reproduce: cargo xtask lab run --case meta/mount
failed meta/fixed? (xpass)
reproduce: cargo xtask lab run --case meta/fixed
";

    #[test]
    fn golden() {
        assert_eq!(render(&report()), GOLDEN);
    }

    #[test]
    fn closing_line_is_last_count_line() {
        let text = render(&report());
        let closing = text
            .lines()
            .rfind(|l| l.ends_with(" skipped"))
            .expect("totals line");
        assert_eq!(closing, "2 passed, 4 failed, 1 skipped");
    }

    #[test]
    fn passing_case_with_splat_is_listed_without_failed_line() {
        let mut r = report();
        r.suites.truncate(1);
        r.suites[0].cases.truncate(1);
        let case = &mut r.suites[0].cases[0];
        case.splats.push(Splat {
            kind: SplatKind::Lockdep,
            line: 3,
            excerpt: vec!["WARNING: possible recursive locking detected".into()],
        });
        case.reproduce = Some("rerun".into());
        let text = render(&r);
        let tail: Vec<_> = text.lines().skip(2).collect();
        assert_eq!(
            tail,
            [
                "1 passed, 0 failed, 0 skipped",
                "splat fmap/read basic: lockdep at log line 3: WARNING: possible recursive locking detected",
                "reproduce: rerun"
            ]
        );
        assert_eq!(r.suites[0].cases[0].outcome, Outcome::Pass);
    }

    #[test]
    fn empty_run() {
        let mut r = report();
        r.suites.clear();
        assert!(render(&r).ends_with("\n0 passed, 0 failed, 0 skipped\n"));
    }
}
