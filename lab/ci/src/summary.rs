//! A run's `results.json` as GitHub-flavoured Markdown, for
//! `$GITHUB_STEP_SUMMARY`: a headline with the totals, one table row per
//! case, then what failed with its splats and the command that reruns it.

use lab_report::{CaseReport, Outcome, RunReport};

/// The summary of `report`; `cell` is the matrix cell id, when there is one.
pub fn markdown(report: &RunReport, cell: Option<&str>) -> String {
    let counts = report.counts();
    let title = cell.unwrap_or(&report.run_id);
    // Exit status 2 (the lab could not run the cases) reads differently from 1 (cases failed):
    // the first is the lab's or the machine's problem, the second the kernel's.
    let mut out = match report.lab_error() {
        Some(why) => format!(
            "### ⛔ {}: lab error (exit {}): the cases did not run\n\n> {}\n\n",
            esc(title),
            lab_report::EXIT_LAB_ERROR,
            esc(why.lines().next().unwrap_or(""))
        ),
        None => {
            let mark = if report.failed() { "❌" } else { "✅" };
            format!(
                "### {mark} {}: {} passed, {} failed, {} skipped\n\n",
                esc(title),
                counts.passed(),
                counts.failed(),
                counts.skipped()
            )
        }
    };
    out.push_str(&format!(
        "kernel `{}` (`{}`), topology `{}`, accel `{}`, {}, run `{}`\n\n",
        code(&report.kernel),
        code(&report.kernel_hash),
        code(&report.topology),
        code(&report.accel),
        seconds(report.duration_ms),
        code(&report.run_id),
    ));
    out.push_str("| Case | Outcome | Time | Reason |\n| --- | --- | ---: | --- |\n");
    for suite in &report.suites {
        for case in &suite.cases {
            out.push_str(&format!(
                "| `{}` | {} {} | {} | {} |\n",
                code(&format!("{}.{}", suite.name, case.name)),
                icon(case.outcome),
                case.outcome,
                seconds(case.duration_ms),
                case.reason.as_deref().map(esc).unwrap_or_default()
            ));
        }
    }
    if report.suites.iter().all(|s| s.cases.is_empty()) {
        out.push_str("| (no cases ran) | | | |\n");
    }
    let notable: Vec<(&str, &CaseReport)> = report
        .suites
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (s.name.as_str(), c)))
        .filter(|(_, c)| c.outcome.is_failure() || !c.splats.is_empty())
        .collect();
    if !notable.is_empty() {
        out.push_str("\n#### Failures and kernel splats\n");
        for (suite, case) in notable {
            out.push_str(&format!(
                "\n**`{}`** ({})",
                code(&format!("{suite}.{}", case.name)),
                case.outcome
            ));
            if let Some(reason) = &case.reason {
                out.push_str(&format!(": {}", esc(reason)));
            }
            out.push('\n');
            for splat in &case.splats {
                let first = splat.excerpt.first().map_or("", String::as_str);
                out.push_str(&format!(
                    "- {} at serial log line {}: `{}`\n",
                    splat.kind,
                    splat.line,
                    code(first)
                ));
            }
            if let Some(command) = &case.reproduce {
                out.push_str(&format!("\n```sh\n{}\n```\n", one_line(command)));
                if let Some(bisect) = bisect_command(command).filter(|_| case.outcome.is_failure())
                {
                    out.push_str(&format!(
                        "\nThe commit or patch that broke it:\n\n```sh\n{bisect}\n```\n"
                    ));
                }
            }
        }
    }
    if let Some(id) = cell {
        out.push_str(&format!(
            "\nThe whole cell, locally: `cargo xtask ci run --entry {}`\n",
            code(id)
        ));
    }
    out
}

/// The `lab bisect` command that finds the culprit of a failing case, from the `lab up`
/// line that reproduces it: over the prefixes of the kernel's series, or, for a run of a
/// tree (`--source-dir`), over a git range whose good end only the reader knows. None where
/// there is nothing to bisect (the stock kernel has no series) or the run had options
/// `lab bisect` does not take (a shadow tree of the user's).
pub fn bisect_command(reproduce: &str) -> Option<String> {
    let command = one_line(reproduce);
    let at = command.find("cargo xtask lab up ")?;
    let (env, rest) = command.split_at(at);
    let args = rest.strip_prefix("cargo xtask lab up ")?;
    let words: Vec<&str> = args.split(' ').collect();
    if words
        .iter()
        .any(|w| matches!(*w, "--shadow" | "--daxdev-data"))
    {
        return None;
    }
    let mut out = format!("{env}cargo xtask lab bisect {args}");
    if words.contains(&"--source-dir") {
        out.push_str(" --good LAST_GOOD_COMMIT --bad HEAD");
    } else if words.windows(2).any(|w| w == ["--kernel", "stock"]) {
        return None;
    } else {
        out.push_str(" --series");
    }
    Some(out)
}

/// The summary of a run that left no `results.json` (it ended before the
/// suites: a build, boot or setup failure).
pub fn no_results(run_dir: &str, cell: Option<&str>) -> String {
    let mut out =
        format!(
        "### ❌ {}: no results\n\nThe run ended before its suites reported (see the job log{}).\n",
        esc(cell.unwrap_or("lab run")),
        if run_dir.is_empty() { String::new() } else { format!(" and `{}`", code(run_dir)) }
    );
    if let Some(id) = cell {
        out.push_str(&format!(
            "\nThe whole cell, locally: `cargo xtask ci run --entry {}`\n",
            code(id)
        ));
    }
    out
}

fn icon(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "✅",
        Outcome::Xfail => "☑️",
        Outcome::Skip => "⏭️",
        Outcome::Fail | Outcome::Error => "❌",
        Outcome::Timeout => "⏱️",
        Outcome::Xpass => "⚠️",
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:01} s", ms / 1000, ms % 1000 / 100)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text for a table cell or a line: one line, no table or HTML syntax.
fn esc(text: &str) -> String {
    one_line(text)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text inside a code span: one line, no backticks, no table syntax.
fn code(text: &str) -> String {
    one_line(text).replace('`', "'").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_report::{SplatKind, SuiteReport};

    #[test]
    fn a_lab_error_is_not_reported_as_failed_cases() {
        let mut r = report();
        RunReport::set_lab_error(&mut r.meta, "the guest never became ready: boot timeout");
        let got = markdown(&r, Some("famfs-bpf.famfs.default.kvm"));
        assert!(
            got.starts_with("### ⛔ famfs-bpf.famfs.default.kvm: lab error (exit 2)"),
            "{got}"
        );
        assert!(got.contains("the guest never became ready"), "{got}");
        assert_eq!(r.exit_code(), lab_report::EXIT_LAB_ERROR);
    }

    fn report() -> RunReport {
        let mut fail = CaseReport::new("devdax_guest_write", Outcome::Fail, 1234);
        fail.reason = Some("bytes differ at 0x1000 | got <00>".into());
        fail.reproduce = Some("cargo xtask lab up --kernel famfs-bpf --topology default --case smoke.devdax_guest_write".into());
        fail.splats = vec![lab_report::Splat {
            kind: SplatKind::Warning,
            line: 812,
            excerpt: vec!["WARNING: CPU: 1 PID: 77 at fs/dax.c:10 `x`".into()],
        }];
        let mut xfail = CaseReport::new("fsdev_bind", Outcome::Xfail, 50);
        xfail.reason = Some("known: ci/expected/famfs-bpf.yaml:2".into());
        RunReport {
            run_id: "1700000000-42".into(),
            kernel: "famfs-bpf+debug".into(),
            kernel_hash: "0123456789abcdef".into(),
            topology: "default".into(),
            accel: "tcg".into(),
            started_at: "2026-11-26T00:00:00Z".into(),
            duration_ms: 42_005,
            suites: vec![SuiteReport {
                name: "smoke".into(),
                cases: vec![CaseReport::new("memdevs", Outcome::Pass, 12), fail, xfail],
            }],
            meta: Default::default(),
        }
    }

    #[test]
    fn golden() {
        let got = markdown(&report(), Some("famfs-bpf+debug.famfs.default.tcg"));
        let want = "\
### ❌ famfs-bpf+debug.famfs.default.tcg: 2 passed, 1 failed, 0 skipped

kernel `famfs-bpf+debug` (`0123456789abcdef`), topology `default`, accel `tcg`, 42.0 s, run `1700000000-42`

| Case | Outcome | Time | Reason |
| --- | --- | ---: | --- |
| `smoke.memdevs` | ✅ pass | 0.0 s |  |
| `smoke.devdax_guest_write` | ❌ fail | 1.2 s | bytes differ at 0x1000 \\| got &lt;00&gt; |
| `smoke.fsdev_bind` | ☑️ xfail | 0.0 s | known: ci/expected/famfs-bpf.yaml:2 |

#### Failures and kernel splats

**`smoke.devdax_guest_write`** (fail): bytes differ at 0x1000 \\| got &lt;00&gt;
- warning at serial log line 812: `WARNING: CPU: 1 PID: 77 at fs/dax.c:10 'x'`

```sh
cargo xtask lab up --kernel famfs-bpf --topology default --case smoke.devdax_guest_write
```

The commit or patch that broke it:

```sh
cargo xtask lab bisect --kernel famfs-bpf --topology default --case smoke.devdax_guest_write --series
```

The whole cell, locally: `cargo xtask ci run --entry famfs-bpf+debug.famfs.default.tcg`
";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn a_failing_case_gets_the_bisect_command_that_finds_its_culprit() {
        let got = markdown(&report(), Some("famfs-bpf.default.tcg"));
        assert!(
            got.contains("The commit or patch that broke it:\n\n```sh\ncargo xtask lab bisect --kernel famfs-bpf --topology default --case smoke.devdax_guest_write --series\n```"),
            "{got}"
        );
        assert_eq!(
            bisect_command("FAMFS_LAB_X=1 cargo xtask lab up --kernel stock --source-dir /t --topology default --case a.b").as_deref(),
            Some("FAMFS_LAB_X=1 cargo xtask lab bisect --kernel stock --source-dir /t --topology default --case a.b --good LAST_GOOD_COMMIT --bad HEAD")
        );
        assert_eq!(
            bisect_command("cargo xtask lab up --kernel stock --case a.b"),
            None
        );
        assert_eq!(
            bisect_command(
                "cargo xtask lab up --kernel famfs-bpf --shadow /t --case shadow.user_tree"
            ),
            None
        );
        assert_eq!(bisect_command("something else"), None);
    }

    #[test]
    fn a_clean_run_has_a_check_mark_and_no_failure_section() {
        let mut r = report();
        r.suites[0].cases.truncate(1);
        let got = markdown(&r, None);
        assert!(
            got.starts_with("### ✅ 1700000000-42: 1 passed, 0 failed, 0 skipped\n"),
            "{got}"
        );
        assert!(!got.contains("Failures"), "{got}");
        assert!(!got.contains("ci run"), "{got}");
        r.suites.clear();
        assert!(markdown(&r, None).contains("(no cases ran)"));
    }

    #[test]
    fn a_run_without_results_says_so() {
        let got = no_results("target/lab/runs/1-2", Some("stock.default.tcg"));
        assert!(
            got.starts_with("### ❌ stock.default.tcg: no results\n"),
            "{got}"
        );
        assert!(
            got.contains("`target/lab/runs/1-2`")
                && got.contains("ci run --entry stock.default.tcg"),
            "{got}"
        );
    }
}
