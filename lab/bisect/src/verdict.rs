//! What a step of a bisection is: good, bad, skip or flaky.
//!
//! One run of a step gives a [`RunVerdict`]: good when every case being bisected passed,
//! bad when one of them failed the same way as at `--bad` (see [`crate::signature`]), skip
//! when the kernel did not build, the lab could not run (exit code 2 of `lab up`), or the
//! case skipped or failed in another way (then this step cannot tell). A bad run is
//! confirmed by running the step again, up to `retries` more times ([`wants_rerun`]);
//! runs that disagree make the step flaky ([`settle`]). The search treats skip and flaky
//! alike: it cannot use the step.

use crate::signature::{passed, Signature};
use lab_report::{Outcome, RunReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Bad,
    Skip,
    Flaky,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
            Verdict::Flaky => "flaky",
        }
    }

    /// Good or bad: a verdict the search can use.
    pub fn decisive(self) -> bool {
        matches!(self, Verdict::Good | Verdict::Bad)
    }
}

/// What one build and run of a step gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunVerdict {
    pub verdict: Verdict,
    /// Why, for people (the case's reason, the build error's first line, ...).
    pub why: String,
}

impl RunVerdict {
    fn new(verdict: Verdict, why: impl Into<String>) -> RunVerdict {
        RunVerdict {
            verdict,
            why: why.into(),
        }
    }
}

/// What one step's attempt to build and run came to, before judging.
#[derive(Debug, Clone)]
pub enum Attempt<'a> {
    /// The compiler refused the step's kernel.
    DoesNotBuild(String),
    /// The lab could not build or run it (exit code 2 of `lab up`).
    LabError(String),
    /// The run's report.
    Ran(&'a RunReport),
}

/// The failures at `--bad` a bisection looks for: case id -> its signature.
pub type Wanted = BTreeMap<String, Signature>;

/// The cases of `report` by id (`SUITE.NAME`).
pub fn case<'a>(report: &'a RunReport, id: &str) -> Option<&'a lab_report::CaseReport> {
    let (suite, name) = id.split_once('.')?;
    report
        .suites
        .iter()
        .filter(|s| s.name == suite)
        .flat_map(|s| s.cases.iter())
        .find(|c| c.name == name)
}

/// The failures of the named cases in `report` (the run at `--bad`): the ones to look for.
pub fn wanted(report: &RunReport, cases: &[String]) -> Wanted {
    cases
        .iter()
        .filter_map(|id| {
            let c = case(report, id)?;
            Some((id.clone(), Signature::of(c)?))
        })
        .collect()
}

/// Judges one run of a step against the failures looked for.
pub fn judge(attempt: &Attempt<'_>, wanted: &Wanted) -> RunVerdict {
    let report = match attempt {
        Attempt::DoesNotBuild(why) => {
            return RunVerdict::new(
                Verdict::Skip,
                format!("does not build: {}\n{why}", compiler_error(why)),
            )
        }
        Attempt::LabError(why) => {
            return RunVerdict::new(Verdict::Skip, format!("the lab could not run: {why}"))
        }
        Attempt::Ran(report) => report,
    };
    if let Some(why) = report.lab_error() {
        return RunVerdict::new(Verdict::Skip, format!("the lab could not run: {why}"));
    }
    let mut undecided = Vec::new();
    let mut all_passed = true;
    for (id, want) in wanted {
        let Some(c) = case(report, id) else {
            all_passed = false;
            undecided.push(format!("{id} did not run"));
            continue;
        };
        if passed(c.outcome) {
            continue;
        }
        all_passed = false;
        match Signature::of(c) {
            Some(got) if want.same_kind(&got) => {
                return RunVerdict::new(
                    Verdict::Bad,
                    format!(
                        "{id}: {}",
                        c.reason.clone().unwrap_or_else(|| got.headline())
                    ),
                );
            }
            Some(got) => undecided.push(format!(
                "{id} fails differently: {}",
                c.reason.clone().unwrap_or_else(|| got.headline())
            )),
            None if c.outcome == Outcome::Skip => undecided.push(format!(
                "{id} skipped: {}",
                c.reason.clone().unwrap_or_default()
            )),
            None => undecided.push(format!("{id}: {}", c.outcome)),
        }
    }
    if all_passed {
        let ids: Vec<&str> = wanted.keys().map(String::as_str).collect();
        return RunVerdict::new(Verdict::Good, format!("{} passed", ids.join(", ")));
    }
    RunVerdict::new(Verdict::Skip, undecided.join("; "))
}

/// The compiler's first error in a build's output, its path made relative to the tree
/// (`fs/fuse/dax_fmap.c:1299:30: error: ...`); the first line when there is none.
pub fn compiler_error(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains(": error:") || l.contains(": fatal error:"))
        .or_else(|| log.lines().find(|l| l.contains("undefined reference")))
        .or_else(|| log.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim();
    match line.find("/src/") {
        Some(i) if line.starts_with('/') => line[i + "/src/".len()..].to_string(),
        _ => line.to_string(),
    }
}

/// Whether a step whose runs so far are `runs` is to be run again: a bad verdict is
/// confirmed by `retries` more runs, stopping at the first that disagrees. Good, skip
/// (a build or the lab failing) are not re-run.
pub fn wants_rerun(runs: &[RunVerdict], retries: usize) -> bool {
    !runs.is_empty() && runs.len() <= retries && runs.iter().all(|r| r.verdict == Verdict::Bad)
}

/// At `--bad` the case must fail: a first run that passes is run again up to `retries`
/// times, to tell a flaky case from a `--bad` that is not bad; a failing one is confirmed
/// like any bad step. Runs that disagree, or a skip, end it.
pub fn wants_rerun_at_bad(runs: &[RunVerdict], retries: usize) -> bool {
    let Some(first) = runs.first() else {
        return false;
    };
    runs.len() <= retries
        && matches!(first.verdict, Verdict::Good | Verdict::Bad)
        && runs.iter().all(|r| r.verdict == first.verdict)
}

/// Judges a run at `--bad`: the first run in which a named case fails sets the failures
/// looked for (`wanted`), the later runs are judged against them. Before that, a run in
/// which every named case passed is good (the case may be flaky), anything else a skip.
pub fn judge_at_bad(attempt: &Attempt<'_>, cases: &[String], wanted: &mut Wanted) -> RunVerdict {
    if wanted.is_empty() {
        if let Attempt::Ran(report) = attempt {
            if report.lab_error().is_none() {
                *wanted = self::wanted(report, cases);
            }
        }
    }
    if !wanted.is_empty() {
        return judge(attempt, wanted);
    }
    let everyone: Wanted = cases
        .iter()
        .map(|id| {
            (
                id.clone(),
                Signature {
                    outcome: String::new(),
                    items: vec![],
                    splats: vec![],
                },
            )
        })
        .collect();
    judge(attempt, &everyone)
}

/// A step's verdict from its runs: the runs' verdict when they agree, flaky when a bad
/// run and a good one (or a run failing another way) disagree.
pub fn settle(runs: &[RunVerdict]) -> Verdict {
    let Some(first) = runs.first() else {
        return Verdict::Skip;
    };
    if runs.iter().all(|r| r.verdict == first.verdict) {
        return first.verdict;
    }
    let bad = runs.iter().any(|r| r.verdict == Verdict::Bad);
    let other = runs.iter().any(|r| r.verdict != Verdict::Bad);
    if bad && other {
        Verdict::Flaky
    } else {
        // good and skip (e.g. the lab failed once): nothing decisive is contradicted
        runs.iter()
            .map(|r| r.verdict)
            .find(|v| *v == Verdict::Good)
            .unwrap_or(Verdict::Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_report::{CaseReport, SuiteReport};

    fn report(cases: &[(&str, Outcome, &str)]) -> RunReport {
        let mut suites: Vec<SuiteReport> = Vec::new();
        for (id, outcome, reason) in cases {
            let (suite, name) = id.split_once('.').unwrap();
            if suites.last().map(|s| s.name.as_str()) != Some(suite) {
                suites.push(SuiteReport {
                    name: suite.into(),
                    cases: vec![],
                });
            }
            let mut c = CaseReport::new(name, *outcome, 1);
            c.reason = (!reason.is_empty()).then(|| reason.to_string());
            suites.last_mut().unwrap().cases.push(c);
        }
        RunReport {
            run_id: "1-1".into(),
            suites,
            ..RunReport::default()
        }
    }

    const ERRNO: &str = "1 of 10 checks failed: parse returns -512: open failed with errno 512";

    fn at_bad() -> Wanted {
        wanted(
            &report(&[
                ("open.parse_errno_clamped", Outcome::Fail, ERRNO),
                ("smoke.a", Outcome::Pass, ""),
            ]),
            &["open.parse_errno_clamped".into(), "smoke.a".into()],
        )
    }

    fn rv(v: Verdict) -> RunVerdict {
        RunVerdict::new(v, "")
    }

    #[test]
    fn wanted_are_the_named_cases_failing_at_bad() {
        let w = at_bad();
        assert_eq!(w.keys().collect::<Vec<_>>(), ["open.parse_errno_clamped"]);
    }

    #[test]
    fn a_step_is_good_bad_or_skip_by_the_named_case() {
        let w = at_bad();
        let good = report(&[("open.parse_errno_clamped", Outcome::Pass, "")]);
        assert_eq!(judge(&Attempt::Ran(&good), &w).verdict, Verdict::Good);
        let bad = report(&[(
            "open.parse_errno_clamped",
            Outcome::Fail,
            "2 of 10 checks failed: other: got 1, expected 2; parse returns -512: open failed with errno 512",
        )]);
        let v = judge(&Attempt::Ran(&bad), &w);
        assert_eq!(v.verdict, Verdict::Bad);
        assert!(v.why.contains("errno 512"), "{}", v.why);
        // failing for another reason: this step cannot tell
        let other = report(&[("open.parse_errno_clamped", Outcome::Fail, "mount: errno 19")]);
        let v = judge(&Attempt::Ran(&other), &w);
        assert_eq!(v.verdict, Verdict::Skip);
        assert!(
            v.why.contains("fails differently: mount: errno 19"),
            "{}",
            v.why
        );
        let timeout = report(&[("open.parse_errno_clamped", Outcome::Timeout, "")]);
        assert_eq!(judge(&Attempt::Ran(&timeout), &w).verdict, Verdict::Skip);
        let skipped = report(&[(
            "open.parse_errno_clamped",
            Outcome::Skip,
            "kernel has no CONFIG_FUSE_DAX_FMAP",
        )]);
        let v = judge(&Attempt::Ran(&skipped), &w);
        assert_eq!(v.verdict, Verdict::Skip);
        assert!(v.why.contains("skipped"), "{}", v.why);
        let missing = report(&[("smoke.a", Outcome::Pass, "")]);
        assert_eq!(judge(&Attempt::Ran(&missing), &w).verdict, Verdict::Skip);
    }

    #[test]
    fn no_build_and_lab_errors_are_skips() {
        let w = at_bad();
        let log = "  DESCEND bpf/resolve_btfids\n  CC      fs/fuse/dax_fmap.o\n\
                   /c/work/k+bisect/src/fs/fuse/dax_fmap.c: In function 'f':\n\
                   /c/work/k+bisect/src/fs/fuse/dax_fmap.c:1299:30: error: expected expression\n";
        let v = judge(&Attempt::DoesNotBuild(log.into()), &w);
        assert_eq!(v.verdict, Verdict::Skip);
        assert!(
            v.why.starts_with(
                "does not build: fs/fuse/dax_fmap.c:1299:30: error: expected expression\n"
            ),
            "{}",
            v.why
        );
        assert_eq!(
            compiler_error("ld: undefined reference to `x'"),
            "ld: undefined reference to `x'"
        );
        assert_eq!(compiler_error("\nmake failed\n"), "make failed");
        assert_eq!(
            judge(&Attempt::LabError("qemu".into()), &w).verdict,
            Verdict::Skip
        );
        // a report whose guest never came up (exit code 2)
        let mut r = report(&[("open.parse_errno_clamped", Outcome::Fail, ERRNO)]);
        RunReport::set_lab_error(&mut r.meta, "the guest never booted");
        let v = judge(&Attempt::Ran(&r), &w);
        assert_eq!(v.verdict, Verdict::Skip);
        assert!(v.why.contains("never booted"), "{}", v.why);
    }

    #[test]
    fn any_named_case_failing_the_same_way_is_bad_and_all_must_pass_for_good() {
        let w = wanted(
            &report(&[
                ("open.a", Outcome::Fail, "x: errno 5"),
                ("open.b", Outcome::Fail, "y: errno 22"),
            ]),
            &["open.a".into(), "open.b".into()],
        );
        let one = report(&[
            ("open.a", Outcome::Pass, ""),
            ("open.b", Outcome::Fail, "y: errno 22"),
        ]);
        assert_eq!(judge(&Attempt::Ran(&one), &w).verdict, Verdict::Bad);
        let half = report(&[
            ("open.a", Outcome::Pass, ""),
            ("open.b", Outcome::Fail, "z"),
        ]);
        assert_eq!(judge(&Attempt::Ran(&half), &w).verdict, Verdict::Skip);
        let both = report(&[("open.a", Outcome::Pass, ""), ("open.b", Outcome::Pass, "")]);
        assert_eq!(judge(&Attempt::Ran(&both), &w).verdict, Verdict::Good);
    }

    #[test]
    fn bad_runs_are_confirmed_and_disagreement_is_flaky() {
        use Verdict::*;
        // a bad run is run again, up to `retries` more times
        assert!(wants_rerun(&[rv(Bad)], 1));
        assert!(!wants_rerun(&[rv(Bad), rv(Bad)], 1));
        assert!(wants_rerun(&[rv(Bad), rv(Bad)], 2));
        assert!(!wants_rerun(&[rv(Bad)], 0));
        // good and skip are not
        assert!(!wants_rerun(&[rv(Good)], 3));
        assert!(!wants_rerun(&[rv(Skip)], 3));
        // the first disagreement ends it
        assert!(!wants_rerun(&[rv(Bad), rv(Good)], 3));
        assert!(!wants_rerun(&[], 3));
        assert_eq!(settle(&[rv(Bad), rv(Bad)]), Bad);
        assert_eq!(settle(&[rv(Bad), rv(Good)]), Flaky);
        assert_eq!(settle(&[rv(Bad), rv(Skip)]), Flaky);
        assert_eq!(settle(&[rv(Good)]), Good);
        assert_eq!(settle(&[rv(Skip)]), Skip);
        assert_eq!(settle(&[]), Skip);
    }

    #[test]
    fn at_bad_a_pass_is_tried_again_to_tell_flaky_from_not_bad() {
        use Verdict::*;
        assert!(wants_rerun_at_bad(&[rv(Good)], 2));
        assert!(wants_rerun_at_bad(&[rv(Good), rv(Good)], 2));
        assert!(!wants_rerun_at_bad(&[rv(Good), rv(Good), rv(Good)], 2));
        assert!(wants_rerun_at_bad(&[rv(Bad)], 1));
        assert!(!wants_rerun_at_bad(&[rv(Bad), rv(Bad)], 1));
        assert!(!wants_rerun_at_bad(&[rv(Good), rv(Bad)], 2));
        assert!(!wants_rerun_at_bad(&[rv(Bad), rv(Good)], 2));
        assert!(!wants_rerun_at_bad(&[rv(Skip)], 2));
        assert!(!wants_rerun_at_bad(&[], 2));
        assert_eq!(settle(&[rv(Good), rv(Bad)]), Flaky);
    }

    #[test]
    fn at_bad_the_first_failure_is_what_is_looked_for() {
        let cases = vec!["open.parse_errno_clamped".to_string()];
        let mut w = Wanted::new();
        let pass = report(&[("open.parse_errno_clamped", Outcome::Pass, "")]);
        assert_eq!(
            judge_at_bad(&Attempt::Ran(&pass), &cases, &mut w).verdict,
            Verdict::Good
        );
        assert!(w.is_empty());
        let skip = report(&[("open.parse_errno_clamped", Outcome::Skip, "no fmap")]);
        assert_eq!(
            judge_at_bad(&Attempt::Ran(&skip), &cases, &mut w).verdict,
            Verdict::Skip
        );
        let fail = report(&[("open.parse_errno_clamped", Outcome::Fail, ERRNO)]);
        assert_eq!(
            judge_at_bad(&Attempt::Ran(&fail), &cases, &mut w).verdict,
            Verdict::Bad
        );
        assert_eq!(w.len(), 1);
        // later runs are held to that failure
        let other = report(&[("open.parse_errno_clamped", Outcome::Fail, "mount: errno 19")]);
        assert_eq!(
            judge_at_bad(&Attempt::Ran(&other), &cases, &mut w).verdict,
            Verdict::Skip
        );
        assert_eq!(
            judge_at_bad(&Attempt::Ran(&pass), &cases, &mut w).verdict,
            Verdict::Good
        );
    }
}
