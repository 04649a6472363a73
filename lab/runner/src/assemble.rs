//! A run's report from its cases: grouped by suite, in order, each failure with the command
//! that reruns it. Pure.

use crate::request::RunRequest;
use lab_report::{CaseReport, RunReport, SuiteReport};
use lab_suite::catalog::Case;
use std::collections::BTreeMap;
use std::time::Duration;

/// Cases grouped by suite, in order; each failure gets its reproduce command.
pub(crate) fn suites_of(
    req: &RunRequest,
    cases: impl IntoIterator<Item = (&'static Case, CaseReport)>,
) -> Vec<SuiteReport> {
    let mut suites: Vec<SuiteReport> = Vec::new();
    for (case, mut c) in cases {
        if c.outcome.is_failure() && c.reproduce.is_none() {
            c.reproduce = Some(format!("{} --case {}", req.reproduce, case.id()));
        }
        match suites.iter_mut().find(|s| s.name == case.suite) {
            Some(s) => s.cases.push(c),
            None => suites.push(SuiteReport {
                name: case.suite.to_string(),
                cases: vec![c],
            }),
        }
    }
    suites
}

/// The run's report from its cases, in order.
pub(crate) fn report_of(
    req: &RunRequest,
    started_at: &str,
    took: Duration,
    cases: Vec<(&'static Case, CaseReport)>,
    meta: BTreeMap<String, String>,
) -> RunReport {
    RunReport {
        run_id: req.run_id.clone(),
        kernel: req.kernel.name.clone(),
        kernel_hash: req.kernel_hash.clone(),
        topology: req.topology.name.clone(),
        accel: req.accel.accel.as_str().to_string(),
        started_at: started_at.to_string(),
        duration_ms: took.as_millis() as u64,
        suites: suites_of(req, cases),
        meta,
    }
}
