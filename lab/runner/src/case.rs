//! One case on one guest: its command through the agent with the case's timeout, bracketed by
//! kmsg markers, its serial window scanned for splats, the host's checks of its bytes, and the
//! outcome judged from all of that.

use crate::guest::Booted;
use crate::host_bytes::{self, Backings};
use crate::markers;
use crate::plan::Planned;
use crate::request::RunRequest;
use lab_agent_proto::client::{AgentClient, AgentError};
use lab_agent_proto::messages::{ExecRequest, ExitStatus};
use lab_report::{CaseReport, Outcome};
use lab_suite::catalog::{Case, Expect};
use lab_suite::devices::DeviceMap;
use lab_suite::{EXIT_FAIL, EXIT_SKIP};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `case` in one guest: `extra` adds to its environment (a multi-host role), `results`
/// is the host side of that guest's results share.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_case(
    s: &mut Booted,
    agent: &AgentClient,
    req: &RunRequest,
    case: &Case,
    nonce: u64,
    map: &DeviceMap,
    backings: &Backings,
    rt: &tokio::runtime::Runtime,
    extra: &[(String, String)],
    results: &Path,
) -> CaseReport {
    let id = case.id();
    let (begin, end) = (
        markers::marker("begin", &id, nonce),
        markers::marker("end", &id, nonce),
    );
    let from = s.serial.len();
    let started = Instant::now();
    let timeout = req.wait(Duration::from_secs(case.timeout_s));
    let mut env = case_env();
    if let Some(n) = flaky_run_number(&id) {
        env.push((FLAKY_RUN.into(), n.to_string()));
    }
    let mut calls = Vec::new();
    let exec = agent.kmsg(&begin, Duration::from_secs(5)).and_then(|_| {
        let mut r = ExecRequest::new(["famfs-lab-cases", "run", id.as_str()])
            .env("FAMFS_LAB_OPS", req.ops.as_str())
            .timeout(timeout);
        for (k, v) in env.iter().chain(extra) {
            r = r.env(k, v);
        }
        // The case may ask the host for faults (QMP) or backing bytes meanwhile.
        crate::host_calls::serve_during(s, agent, backings, rt, &mut calls, || {
            agent.exec(r, timeout + Duration::from_secs(15))
        })
    });
    let took = started.elapsed().as_millis() as u64;
    let ended = agent.kmsg(&end, Duration::from_secs(5)).is_ok()
        && rt
            .block_on(s.vm.wait_for_serial(&end, from, Duration::from_secs(5)))
            .is_ok();
    let log = String::from_utf8_lossy(&s.serial.read_from(from).unwrap_or_default()).into_owned();
    let splats = lab_report::splat::scan(markers::window(&log, &begin, &end));
    let (mut outcome, mut reason, mut diag) = match exec {
        Ok(r) => judge(case, &r.status, &r.stdout, &r.stderr),
        Err(e) => {
            let exit = rt.block_on(async {
                let _ = s.vm.wait_exit(Duration::from_secs(2)).await;
                s.vm.exit_report()
            });
            // The guest died with a kernel splat in the case's window: the kernel crashed
            // under the case, a FAIL of the case (the kernel's), not an ERROR (the lab's).
            let crashed = exit.is_some() && !splats.is_empty();
            let why = match (exit, e) {
                (Some(x), _) => format!(
                    "QEMU exited ({}){}",
                    x.status,
                    x.guest_panic.map(|p| format!(": {p}")).unwrap_or_default()
                ),
                (None, AgentError::Timeout { .. }) => "the agent stopped answering".to_string(),
                (None, e) => e.to_string(),
            };
            let (outcome, why) = match splats.first() {
                Some(first) if crashed => (
                    Outcome::Fail,
                    format!(
                        "the kernel crashed during the case ({}: {}); {why}",
                        first.kind,
                        first.excerpt.first().map(String::as_str).unwrap_or("")
                    ),
                ),
                _ => (Outcome::Error, why),
            };
            (
                outcome,
                Some(why),
                s.tail().lines().map(String::from).collect(),
            )
        }
    };
    if outcome == Outcome::Pass {
        match host_bytes::verify_after(&case.host, map, backings) {
            Ok(Some(note)) => diag.push(note),
            Ok(None) => {}
            Err(e) => (outcome, reason) = (Outcome::Fail, Some(format!("{e:#}"))),
        }
    }
    if outcome == Outcome::Pass {
        match host_bytes::verify_file(results, &id, backings) {
            Ok(Some(note)) => diag.push(note),
            Ok(None) => {}
            Err(e) => (outcome, reason) = (Outcome::Fail, Some(format!("{e:#}"))),
        }
    }
    diag.extend(calls);
    if !env.is_empty() {
        diag.push(format!("guest environment: {}", env_prefix(&env)));
    }
    if !ended && outcome != Outcome::Error {
        diag.push(
            "the end marker never reached the serial log; splat window runs to its end".into(),
        );
    }
    if let Some(first) = splats.first() {
        if matches!(outcome, Outcome::Pass | Outcome::Xfail | Outcome::Skip) {
            outcome = Outcome::Fail;
            reason = Some(format!(
                "kernel {} during the case (serial.log line {})",
                first.kind, first.line
            ));
        }
    }
    let mut r = case_report(case, outcome, reason, took, diag);
    r.splats = splats;
    if r.outcome.is_failure() {
        r.reproduce = Some(format!("{}{} --case {id}", env_prefix(&env), req.reproduce));
    }
    r
}

/// `FAMFS_LAB_*` variables of the host's environment (e.g. `FAMFS_LAB_STRESS_SECS=120`),
/// passed on to every case: the guest's knobs for the fmap suites. `FAMFS_LAB_OPS` is not
/// among them: `--ops` (the request's `ops`) sets it.
pub(crate) fn case_env() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("FAMFS_LAB_") && k != "FAMFS_LAB_OPS")
        .collect();
    v.sort();
    v
}

/// The test-only case that fails one run in two (`selftest.flaky`, for `lab bisect`'s
/// flaky detection).
const FLAKY_CASE: &str = "selftest.flaky";
/// The host file counting `selftest.flaky`'s runs: each run takes its number and adds one.
pub const FLAKY_COUNTER: &str = "FAMFS_LAB_FLAKY_COUNTER";
/// The run number `selftest.flaky` gets (an even one fails).
const FLAKY_RUN: &str = "FAMFS_LAB_FLAKY_RUN";

/// The number of this run of `selftest.flaky` when `FAMFS_LAB_FLAKY_COUNTER` names a counter
/// file (missing or unreadable counts as 0), which goes up by one. None for other cases.
fn flaky_run_number(id: &str) -> Option<u64> {
    if id != FLAKY_CASE {
        return None;
    }
    let file = std::env::var_os(FLAKY_COUNTER)?;
    Some(take_number(Path::new(&file)))
}

/// The number in `file` (0 when missing or unreadable), leaving the next one there.
pub fn take_number(file: &Path) -> u64 {
    let n = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if let Err(e) = std::fs::write(file, format!("{}\n", n + 1)) {
        tracing::warn!("{FLAKY_COUNTER}: cannot write {}: {e}", file.display());
    }
    n
}

/// `K=V K=V ` for a command line.
pub(crate) fn env_prefix(env: &[(String, String)]) -> String {
    env.iter().map(|(k, v)| format!("{k}={v} ")).collect()
}

/// Maps a finished command to an outcome, a reason and its output lines.
pub fn judge(
    case: &Case,
    status: &ExitStatus,
    stdout: &str,
    stderr: &str,
) -> (Outcome, Option<String>, Vec<String>) {
    let diag: Vec<String> = stdout
        .lines()
        .chain(stderr.lines())
        .map(String::from)
        .collect();
    let tagged = |tag: &str| {
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(tag))
            .map(|s| s.trim().to_string())
    };
    let (outcome, reason) = match (status, case.expect) {
        (ExitStatus::TimedOut, Expect::Timeout) => (
            Outcome::Xfail,
            Some(format!("TIMEOUT after {}s, as expected", case.timeout_s)),
        ),
        (ExitStatus::TimedOut, Expect::Pass) => (
            Outcome::Timeout,
            Some(format!("no result after {}s", case.timeout_s)),
        ),
        (_, Expect::Timeout) => (
            Outcome::Fail,
            Some(format!(
                "expected to hang until its {}s timeout; ended {status:?}",
                case.timeout_s
            )),
        ),
        (ExitStatus::Exited(0), _) => (Outcome::Pass, None),
        (ExitStatus::Exited(EXIT_SKIP), _) => (Outcome::Skip, tagged("SKIP:")),
        (ExitStatus::Exited(EXIT_FAIL), _) => (
            Outcome::Fail,
            tagged("FAIL:").or(Some("exit status 1".into())),
        ),
        (ExitStatus::Exited(code), _) => (Outcome::Error, Some(format!("exit status {code}"))),
        (ExitStatus::Signaled(sig), _) => (Outcome::Fail, Some(format!("killed by signal {sig}"))),
        (ExitStatus::SpawnFailed(e), _) => (Outcome::Error, Some(format!("could not start: {e}"))),
    };
    (outcome, reason, diag)
}

pub(crate) fn case_report(
    case: &Case,
    outcome: Outcome,
    reason: Option<String>,
    ms: u64,
    diagnostics: Vec<String>,
) -> CaseReport {
    let mut r = CaseReport::new(case.name, outcome, ms);
    r.reason = reason;
    r.diagnostics = diagnostics;
    r
}

pub(crate) fn not_run(
    planned: &[Planned],
    why: &str,
    tail: &str,
) -> Vec<(&'static Case, CaseReport)> {
    let mut tail = Some(tail);
    planned
        .iter()
        .map(|p| {
            let r = match &p.skip {
                Some(skip) => case_report(p.case, Outcome::Skip, Some(skip.clone()), 0, vec![]),
                None => {
                    // The serial tail once, on the first case: the rest share its cause.
                    let diag = tail
                        .take()
                        .map(|t| t.lines().map(String::from).collect())
                        .unwrap_or_default();
                    case_report(p.case, Outcome::Error, Some(why.to_string()), 0, diag)
                }
            };
            (p.case, r)
        })
        .collect()
}

pub(crate) fn print_case(r: &CaseReport, case: &Case) {
    let reason = r
        .reason
        .as_deref()
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    lab_host::progress!(
        "famfs-lab: {}.{} {} ({} ms){reason}",
        case.suite,
        r.name,
        r.outcome,
        r.duration_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::catalog::find;

    #[test]
    fn the_flaky_counter_hands_out_0_1_2_and_only_to_the_flaky_case() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("n");
        assert_eq!(
            [take_number(&f), take_number(&f), take_number(&f)],
            [0, 1, 2]
        );
        std::fs::write(&f, "junk").unwrap();
        assert_eq!(take_number(&f), 0);
        assert_eq!(flaky_run_number("selftest.fail"), None);
        assert!(find(FLAKY_CASE).is_some());
    }

    #[test]
    fn judge_maps_exit_codes_and_expectations() {
        let c = find("smoke.memdevs").unwrap();
        assert_eq!(judge(c, &ExitStatus::Exited(0), "", "").0, Outcome::Pass);
        let (o, why, _) = judge(c, &ExitStatus::Exited(77), "x\nSKIP: no dax\n", "");
        assert_eq!((o, why.as_deref()), (Outcome::Skip, Some("no dax")));
        let (o, why, diag) = judge(c, &ExitStatus::Exited(1), "out\nFAIL: bad bytes\n", "err\n");
        assert_eq!((o, why.as_deref()), (Outcome::Fail, Some("bad bytes")));
        assert_eq!(diag, ["out", "FAIL: bad bytes", "err"]);
        assert_eq!(judge(c, &ExitStatus::TimedOut, "", "").0, Outcome::Timeout);
        assert_eq!(judge(c, &ExitStatus::Signaled(11), "", "").0, Outcome::Fail);
        assert_eq!(
            judge(c, &ExitStatus::SpawnFailed("x".into()), "", "").0,
            Outcome::Error
        );
        let hang = find("smoke.hang_times_out").unwrap();
        assert_eq!(judge(hang, &ExitStatus::TimedOut, "", "").0, Outcome::Xfail);
        assert_eq!(judge(hang, &ExitStatus::Exited(0), "", "").0, Outcome::Fail);
    }
}
