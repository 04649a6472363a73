//! The result model; also the schema of `results.json`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::splat::Splat;

/// `meta` key holding why the lab could not run the cases.
pub const LAB_ERROR: &str = "lab_error";
/// Exit status of a run in which cases failed (the kernel, or the cases, are broken).
pub const EXIT_CASES_FAILED: i32 = 1;
/// Exit status when the lab could not run (bad input, missing tool, build failed, the guest
/// never booted or could not be set up).
pub const EXIT_LAB_ERROR: i32 = 2;

/// One lab run: every suite run against one kernel on one topology.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub kernel: String,
    pub kernel_hash: String,
    pub topology: String,
    pub accel: String,
    /// RFC 3339 start time.
    pub started_at: String,
    pub duration_ms: u64,
    pub suites: Vec<SuiteReport>,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// A named group of cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteReport {
    pub name: String,
    pub cases: Vec<CaseReport>,
}

/// The result of one test case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseReport {
    pub name: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub reason: Option<String>,
    pub duration_ms: u64,
    /// Lines of output or log excerpt worth showing.
    #[serde(default)]
    pub diagnostics: Vec<String>,
    /// Kernel splats seen while the case ran.
    #[serde(default)]
    pub splats: Vec<Splat>,
    /// Shell command that reruns just this case.
    #[serde(default)]
    pub reproduce: Option<String>,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    Timeout,
    Error,
    /// Failed, as expected.
    Xfail,
    /// Passed although expected to fail.
    Xpass,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::Skip,
        Outcome::Timeout,
        Outcome::Error,
        Outcome::Xfail,
        Outcome::Xpass,
    ];

    /// True for outcomes that make a run fail: Fail, Timeout, Error, Xpass.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::Fail | Outcome::Timeout | Outcome::Error | Outcome::Xpass
        )
    }

    /// Lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of cases per outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub timeout: usize,
    pub error: usize,
    pub xfail: usize,
    pub xpass: usize,
}

impl Counts {
    /// Counts one more case with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Pass => &mut self.pass,
            Outcome::Fail => &mut self.fail,
            Outcome::Skip => &mut self.skip,
            Outcome::Timeout => &mut self.timeout,
            Outcome::Error => &mut self.error,
            Outcome::Xfail => &mut self.xfail,
            Outcome::Xpass => &mut self.xpass,
        };
        *slot += 1;
    }

    /// Adds every field of `other`.
    pub fn merge(&mut self, other: Counts) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.skip += other.skip;
        self.timeout += other.timeout;
        self.error += other.error;
        self.xfail += other.xfail;
        self.xpass += other.xpass;
    }

    /// All cases.
    pub fn total(&self) -> usize {
        self.passed() + self.failed() + self.skipped()
    }

    /// Pass + Xfail.
    pub fn passed(&self) -> usize {
        self.pass + self.xfail
    }

    /// Cases whose outcome `is_failure()`.
    pub fn failed(&self) -> usize {
        self.fail + self.timeout + self.error + self.xpass
    }

    /// Skip.
    pub fn skipped(&self) -> usize {
        self.skip
    }
}

impl CaseReport {
    /// A case with no reason, diagnostics, splats or reproducer.
    pub fn new(name: impl Into<String>, outcome: Outcome, duration_ms: u64) -> Self {
        CaseReport {
            name: name.into(),
            outcome,
            reason: None,
            duration_ms,
            diagnostics: Vec::new(),
            splats: Vec::new(),
            reproduce: None,
        }
    }
}

impl SuiteReport {
    /// Outcome counts of this suite.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for case in &self.cases {
            counts.add(case.outcome);
        }
        counts
    }

    /// True if any case `is_failure()`.
    pub fn failed(&self) -> bool {
        self.cases.iter().any(|c| c.outcome.is_failure())
    }

    /// Sum of the case durations.
    pub fn duration_ms(&self) -> u64 {
        self.cases.iter().map(|c| c.duration_ms).sum()
    }
}

impl RunReport {
    /// Outcome counts over all suites.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for suite in &self.suites {
            counts.merge(suite.counts());
        }
        counts
    }

    /// True if any case `is_failure()`. Splats fail a run through cases: the runner makes a
    /// case with a splat in its window FAIL, and a splat outside every case a FAIL pseudo-case
    /// of suite `lab` (`lab.boot`, `lab.between.<case>`, ...).
    pub fn failed(&self) -> bool {
        self.suites.iter().any(SuiteReport::failed)
    }

    /// Why the lab could not run the cases (the guest never became ready, its setup
    /// failed), when that happened: `meta["lab_error"]`.
    pub fn lab_error(&self) -> Option<&str> {
        self.meta.get(LAB_ERROR).map(String::as_str)
    }

    /// Records that the lab could not run the cases (kept: the first cause wins).
    pub fn set_lab_error(meta: &mut BTreeMap<String, String>, why: &str) {
        meta.entry(LAB_ERROR.into())
            .or_insert_with(|| why.to_string());
    }

    /// The process exit status for this run: [`EXIT_LAB_ERROR`] when the lab could not run
    /// the cases, [`EXIT_CASES_FAILED`] when a case failed (XFAIL does not), else 0.
    pub fn exit_code(&self) -> i32 {
        if self.lab_error().is_some() {
            EXIT_LAB_ERROR
        } else if self.failed() {
            EXIT_CASES_FAILED
        } else {
            0
        }
    }

    /// Pretty JSON, as written to `results.json`.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Reads a report back from `results.json` text.
    pub fn from_json(text: &str) -> Result<RunReport> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
