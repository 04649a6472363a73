//! The whole serial log, not only the case windows: a kernel splat outside every case (while
//! the guest boots, during its setup, between two cases, while it powers off) fails the run.
//!
//! The log is cut into phases by the kmsg markers ([`crate::markers`]): before [`SETUP`] is
//! the boot; from it to the first case, the setup; each case's window runs from its begin
//! marker to its end marker (or, when the end never came, to the next marker or the end of
//! the log) and is the case's own (`run_case` scans it); after a case's end comes the gap
//! before the next case; after [`POWEROFF`], the power off. Each phase with a splat becomes
//! a FAIL pseudo-case of suite [`SUITE`] named for the phase (`lab.boot`, `lab.setup`,
//! `lab.between.<case before>`, `lab.poweroff`) with the splat text in its diagnostics.
//!
//! [`SETUP`]: crate::markers::SETUP
//! [`POWEROFF`]: crate::markers::POWEROFF

use crate::markers::{self, Marker};
use lab_agent_proto::client::AgentClient;
use lab_report::splat::{self, Splat};
use lab_report::{CaseReport, Outcome, RunReport, SuiteReport};
use lab_vm::serial_log::SerialLog;
use std::time::Duration;

/// The suite of the pseudo-cases.
pub const SUITE: &str = "lab";

/// Where in the guest's life a line of its log was written, outside the cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Before the setup marker: the kernel's boot and the agent's start.
    Boot,
    /// From the setup marker to the first case.
    Setup,
    /// After this case (its id) ended, before the next one began.
    Between(String),
    /// After the power-off marker.
    PowerOff,
}

impl Phase {
    /// The pseudo-case's name in suite [`SUITE`].
    pub fn case_name(&self) -> String {
        match self {
            Phase::Boot => "boot".into(),
            Phase::Setup => "setup".into(),
            Phase::Between(case) => format!("between.{case}"),
            Phase::PowerOff => "poweroff".into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Phase::Boot => "while the guest booted".into(),
            Phase::Setup => "during the guest's setup".into(),
            Phase::Between(case) => format!("after {case} ended, before the next case"),
            Phase::PowerOff => "while the guest powered off".into(),
        }
    }
}

/// The phase of every line of `log` (split on `\n`, as [`splat::scan`] numbers them); None
/// for a line inside a case window.
pub fn phases(log: &str) -> Vec<Option<Phase>> {
    let mut current = Phase::Boot;
    // The case window we are in: its id and nonce.
    let mut window: Option<(&str, u64)> = None;
    let mut out = Vec::new();
    for line in log.split('\n') {
        match markers::parse(splat::message(line)) {
            Some(Marker::Begin { case, nonce }) => window = Some((case, nonce)),
            Some(Marker::End { case, nonce }) if window == Some((case, nonce)) => {
                window = None;
                current = Phase::Between(case.to_string());
                // The end marker itself belongs to the case.
                out.push(None);
                continue;
            }
            Some(Marker::End { .. }) => {}
            Some(Marker::Setup) => {
                window = None;
                current = Phase::Setup;
            }
            Some(Marker::PowerOff) => {
                window = None;
                current = Phase::PowerOff;
            }
            None => {}
        }
        out.push(match window {
            Some(_) => None,
            None => Some(current.clone()),
        });
    }
    out
}

/// The splats of `log` outside every case window, grouped by phase in the order the phases
/// first have one.
pub fn outside_cases(log: &str) -> Vec<(Phase, Vec<Splat>)> {
    let phases = phases(log);
    let mut out: Vec<(Phase, Vec<Splat>)> = Vec::new();
    for s in splat::scan(log) {
        let Some(Some(phase)) = s.line.checked_sub(1).and_then(|i| phases.get(i)) else {
            continue;
        };
        match out.iter_mut().find(|(p, _)| p == phase) {
            Some((_, list)) => list.push(s),
            None => out.push((phase.clone(), vec![s])),
        }
    }
    out
}

/// Names and labels of one guest's pseudo-cases.
#[derive(Debug, Clone, Copy)]
pub struct Guest<'a> {
    /// Put before the phase in the case name: `""`, or `host1.` in a multi-host run's merged
    /// report.
    pub prefix: &'a str,
    /// The log as the reader finds it in the run directory: `serial.log`, `host1/serial.log`.
    pub log_name: &'a str,
}

/// One FAIL pseudo-case per phase with a splat: the splats, and their text in the
/// diagnostics; `reproduce` reruns the whole run (no `--case` selects a phase).
pub fn pseudo_cases(log: &str, guest: Guest<'_>, reproduce: &str) -> Vec<CaseReport> {
    outside_cases(log)
        .into_iter()
        .map(|(phase, splats)| {
            let first = &splats[0];
            let mut c = CaseReport::new(
                format!("{}{}", guest.prefix, phase.case_name()),
                Outcome::Fail,
                0,
            );
            c.reason = Some(format!(
                "kernel {} outside every case, {} ({} line {})",
                first.kind,
                phase.describe(),
                guest.log_name,
                first.line
            ));
            for s in &splats {
                c.diagnostics.push(format!(
                    "kernel {} at {} line {}:",
                    s.kind, guest.log_name, s.line
                ));
                c.diagnostics
                    .extend(s.excerpt.iter().map(|l| format!("  {l}")));
            }
            c.splats = splats;
            c.reproduce = Some(reproduce.to_string());
            c
        })
        .collect()
}

/// The pseudo-cases of a guest's serial log, read whole once the guest is down. A log that
/// cannot be read is itself an ERROR (`lab.serial_log`): no splat may go unseen silently.
pub fn judge_serial(serial: &SerialLog, guest: Guest<'_>, reproduce: &str) -> Vec<CaseReport> {
    match serial.read_from(0) {
        Ok(bytes) => pseudo_cases(&String::from_utf8_lossy(&bytes), guest, reproduce),
        Err(e) => {
            let mut c = CaseReport::new(format!("{}serial_log", guest.prefix), Outcome::Error, 0);
            c.reason = Some(format!(
                "reading {} to scan it for kernel splats: {e}",
                guest.log_name
            ));
            vec![c]
        }
    }
}

/// Appends `cases` to the report's [`SUITE`] suite (made last when it has none).
pub fn add(report: &mut RunReport, cases: Vec<CaseReport>) {
    if cases.is_empty() {
        return;
    }
    match report.suites.iter_mut().find(|s| s.name == SUITE) {
        Some(s) => s.cases.extend(cases),
        None => report.suites.push(SuiteReport {
            name: SUITE.to_string(),
            cases,
        }),
    }
}

/// A one-guest run: the pseudo-cases of its `serial.log` added to its report.
pub fn add_from(report: &mut RunReport, serial: &SerialLog, reproduce: &str) {
    let guest = Guest {
        prefix: "",
        log_name: "serial.log",
    };
    add(report, judge_serial(serial, guest, reproduce));
}

/// Writes a phase marker to the guest's kmsg. Best effort: without it, what follows counts
/// as the phase before (still scanned, only named less precisely).
pub(crate) fn mark(agent: &AgentClient, marker: &str) {
    if let Err(e) = agent.kmsg(marker, Duration::from_secs(5)) {
        eprintln!("famfs-lab: writing the marker {marker:?} to the guest's kmsg: {e}");
    }
}

#[cfg(test)]
#[path = "whole_log_tests.rs"]
mod tests;
