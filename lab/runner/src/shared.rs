//! The cases of a multi-host run (`hosts: N`): each case of the `shared` suite runs in steps
//! whose roles run at once, one per guest of the [`Session`]; a role's `SHARE: key=value` lines
//! reach the later steps as environment. A guest that dies only ends its own parts: the others
//! finish. Each guest keeps its parts for its own report; the merged report gets the combined
//! case.

use crate::case::{case_report, print_case, run_case};
use crate::host_bytes::Backings;
use crate::plan::Planned;
use crate::request::RunRequest;
use crate::session::{Guest, Session};
use lab_report::{CaseReport, Outcome};
use lab_suite::catalog::{Case, Hosts, Role};
use std::time::{Duration, Instant};

/// Every planned case on the session's guests, in order: a shared case in its steps, a skip as
/// planned, a one-guest case an error.
pub(crate) fn cases(
    session: &mut Session,
    planned: &[Planned],
    backings: &Backings,
) -> Vec<(&'static Case, CaseReport)> {
    let (req, rt) = (&session.req, &session.rt);
    let mut merged = Vec::new();
    for (n, p) in planned.iter().enumerate() {
        let r = match (&p.skip, p.case.hosts) {
            (Some(why), _) => case_report(p.case, Outcome::Skip, Some(why.clone()), 0, vec![]),
            (None, Hosts::Shared(steps)) => run_shared(
                &mut session.guests,
                req,
                p.case,
                steps,
                n as u64,
                backings,
                rt,
            ),
            (None, Hosts::One) => case_report(
                p.case,
                Outcome::Error,
                Some("a one-guest case in a multi-host run".into()),
                0,
                vec![],
            ),
        };
        print_case(&r, p.case);
        merged.push((p.case, r));
    }
    merged
}

/// Every guest's pseudo-cases for the merged report, each name prefixed with `host<i>.`.
pub(crate) fn merged_outside(guests: &[Guest], outside: Vec<Vec<CaseReport>>) -> Vec<CaseReport> {
    guests
        .iter()
        .zip(outside)
        .flat_map(|(g, cases)| {
            cases.into_iter().map(move |mut c| {
                c.name = format!("host{}.{}", g.index, c.name);
                c
            })
        })
        .collect()
}

/// `SHARE: key=value` lines of a role's output, as the environment of the later steps.
fn shares(host: u32, out: &[String]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|l| l.strip_prefix("SHARE: "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                format!("FAMFS_LAB_SHARE_H{host}_{}", k.trim().to_uppercase()),
                v.to_string(),
            )
        })
        .collect()
}

/// Runs the steps of a shared case; the merged report of its parts.
fn run_shared(
    guests: &mut [Guest],
    req: &RunRequest,
    case: &'static Case,
    steps: &[&[Role]],
    nonce: u64,
    backings: &Backings,
    rt: &tokio::runtime::Runtime,
) -> CaseReport {
    let started = Instant::now();
    let hosts = guests.len() as u32;
    let mut env: Vec<(String, String)> = Vec::new();
    let mut parts: Vec<(Role, CaseReport)> = Vec::new();
    let mut stopped = None;
    for (k, step) in steps.iter().enumerate() {
        let mut done: Vec<(Role, CaseReport)> = Vec::new();
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for g in guests.iter_mut() {
                let Some(role) = step.iter().find(|r| r.host == g.index).copied() else {
                    continue;
                };
                let mut extra = env.clone();
                extra.extend([
                    ("FAMFS_LAB_ROLE".to_string(), role.role.to_string()),
                    ("FAMFS_LAB_HOST".to_string(), role.host.to_string()),
                    ("FAMFS_LAB_HOSTS".to_string(), hosts.to_string()),
                ]);
                let nonce = nonce * 100 + k as u64;
                handles.push(scope.spawn(move || {
                    let r = run_part(g, req, case, role, nonce, &extra, backings, rt);
                    (role, r)
                }));
            }
            for h in handles {
                match h.join() {
                    Ok(x) => done.push(x),
                    Err(_) => stopped = Some("a part's thread panicked".to_string()),
                }
            }
        });
        for role in step.iter() {
            if !done.iter().any(|(r, _)| r.host == role.host) {
                let why = format!("guest {} does not exist in this topology", role.host);
                done.push((*role, part_report(case, Outcome::Error, why)));
            }
        }
        for (role, r) in &done {
            env.extend(shares(role.host, &r.diagnostics));
        }
        let failed = done.iter().any(|(_, r)| r.outcome.is_failure());
        parts.extend(done);
        if failed {
            if k + 1 < steps.len() {
                stopped = Some(format!(
                    "steps {}..{} not run after a failure",
                    k + 2,
                    steps.len()
                ));
            }
            break;
        }
    }
    for g in guests.iter_mut() {
        let mine: Vec<&CaseReport> = parts
            .iter()
            .filter(|(r, _)| r.host == g.index)
            .map(|(_, c)| c)
            .collect();
        if !mine.is_empty() {
            g.cases
                .push((case, combine(case, &mine, started.elapsed())));
        }
    }
    let all: Vec<&CaseReport> = parts.iter().map(|(_, c)| c).collect();
    let mut merged = combine(case, &all, started.elapsed());
    let mut diag = Vec::new();
    for (role, r) in &parts {
        diag.push(format!(
            "-- guest {} role {}: {}{}",
            role.host,
            role.role,
            r.outcome,
            r.reason
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default()
        ));
        diag.extend(
            r.diagnostics
                .iter()
                .map(|l| format!("[host{}] {l}", role.host)),
        );
    }
    if let Some(s) = stopped {
        diag.push(s);
    }
    merged.diagnostics = diag;
    merged
}

/// One role on its guest; a role that ends its guest passes when the guest is gone.
#[allow(clippy::too_many_arguments)]
fn run_part(
    g: &mut Guest,
    req: &RunRequest,
    case: &'static Case,
    role: Role,
    nonce: u64,
    extra: &[(String, String)],
    backings: &Backings,
    rt: &tokio::runtime::Runtime,
) -> CaseReport {
    if !g.is_ready() {
        let why = format!(
            "guest {} is gone: {}",
            g.index,
            g.gone.as_deref().unwrap_or("never came up")
        );
        return part_report(case, Outcome::Error, why);
    }
    let (Some(agent), Some(map), Some(booted)) = (&g.agent, &g.map, g.booted.as_mut()) else {
        return part_report(case, Outcome::Error, "no QEMU session".into());
    };
    let results = g.dir.join("results");
    let mut r = run_case(
        booted, agent, req, case, nonce, map, backings, rt, extra, &results,
    );
    let guest_died = !agent.is_connected() || booted.vm.exit_report().is_some();
    if role.ends_guest {
        // Its pass is a kernel panic in its window, and the guest gone: not any death.
        let panicked = r
            .splats
            .iter()
            .any(|s| s.kind == lab_report::splat::SplatKind::KernelPanic);
        if guest_died && panicked {
            r.diagnostics.push(format!(
                "the guest panicked as the role intends ({})",
                r.reason.as_deref().unwrap_or("no reason given")
            ));
            r.diagnostics.extend(
                r.splats
                    .iter()
                    .map(|s| format!("expected: kernel {} at serial.log line {}", s.kind, s.line)),
            );
            r.splats.clear();
            r.outcome = Outcome::Pass;
            r.reason = None;
        } else if guest_died {
            r.outcome = Outcome::Error;
            r.reason = Some(format!(
                "guest {} ended without the kernel panic its {} role causes: {}",
                g.index,
                role.role,
                r.reason.as_deref().unwrap_or("no reason given")
            ));
        } else {
            r.outcome = Outcome::Fail;
            r.reason = Some(format!("guest {} survived its {} role", g.index, role.role));
        }
    }
    if guest_died {
        g.gone = Some(format!("it ended during {} ({})", case.id(), role.role));
    }
    r
}

fn part_report(case: &Case, outcome: Outcome, why: String) -> CaseReport {
    case_report(case, outcome, Some(why), 0, vec![])
}

/// One report from several parts: the first failure's outcome and reason (naming its guest
/// in the merged report's diagnostics), else pass; splats of all parts.
fn combine(case: &Case, parts: &[&CaseReport], took: Duration) -> CaseReport {
    let worst = parts.iter().find(|r| r.outcome.is_failure());
    let (outcome, reason) = match worst {
        Some(r) => (r.outcome, r.reason.clone()),
        None if parts.iter().all(|r| r.outcome == Outcome::Skip) => {
            (Outcome::Skip, parts.first().and_then(|r| r.reason.clone()))
        }
        None => (Outcome::Pass, None),
    };
    let diag = parts.iter().flat_map(|r| r.diagnostics.clone()).collect();
    let mut r = case_report(case, outcome, reason, took.as_millis() as u64, diag);
    r.splats = parts.iter().flat_map(|p| p.splats.clone()).collect();
    r.reproduce = worst.and_then(|w| w.reproduce.clone());
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whole_log;
    use lab_report::RunReport;

    #[test]
    fn share_lines_become_the_later_steps_environment() {
        let out = vec![
            "ok: something".to_string(),
            "SHARE: tree=a b;c".to_string(),
            "SHARE: data=ff=00".to_string(),
            "SHARE: no value".to_string(),
        ];
        assert_eq!(
            shares(1, &out),
            vec![
                ("FAMFS_LAB_SHARE_H1_TREE".to_string(), "a b;c".to_string()),
                ("FAMFS_LAB_SHARE_H1_DATA".to_string(), "ff=00".to_string()),
            ]
        );
    }

    #[test]
    fn each_guests_splats_outside_the_cases_fail_the_merged_run_under_its_name() {
        let guest = |index: u32| Guest::new(index, format!("/run/host{index}").into());
        let guests = [guest(0), guest(1)];
        let log = format!(
            "[ 1.0] {}\n[ 2.0] WARNING: CPU: 1 PID: 9 at fs/fuse/file.c:7 x+0x1/0x2\n",
            crate::markers::SETUP
        );
        let one = whole_log::Guest {
            prefix: "",
            log_name: "host1/serial.log",
        };
        let outside = vec![Vec::new(), whole_log::pseudo_cases(&log, one, "x")];
        let merged = merged_outside(&guests, outside);
        let names: Vec<&str> = merged.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["host1.setup"]);
        let case = lab_suite::catalog::find("shared.ring").expect("catalog has shared.ring");
        let pass = case_report(case, Outcome::Pass, None, 1, vec![]);
        let mut report = RunReport {
            suites: vec![lab_report::SuiteReport {
                name: "shared".into(),
                cases: vec![pass],
            }],
            ..RunReport::default()
        };
        assert!(!report.failed());
        whole_log::add(&mut report, merged);
        assert!(
            report.failed(),
            "a guest's setup WARNING must fail the merged run"
        );
    }

    #[test]
    fn combined_outcome_is_the_first_failure() {
        let case = lab_suite::catalog::find("shared.ring").expect("catalog has shared.ring");
        let pass = CaseReport::new(case.name, Outcome::Pass, 5);
        let mut fail = CaseReport::new(case.name, Outcome::Fail, 7);
        fail.reason = Some("message 3: CRC mismatch".into());
        let r = combine(case, &[&pass, &fail], Duration::from_millis(12));
        assert_eq!(r.outcome, Outcome::Fail);
        assert_eq!(r.reason.as_deref(), Some("message 3: CRC mismatch"));
        let r = combine(case, &[&pass, &pass], Duration::from_millis(12));
        assert_eq!(r.outcome, Outcome::Pass);
        assert_eq!(r.duration_ms, 12);
    }
}
