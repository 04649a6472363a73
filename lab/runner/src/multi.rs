//! A multi-host run (`hosts: N` in the topology): N guests, each with its own QEMU, serial
//! log, agent and directory `RUN/host<i>/`, all mapping the same backing files in `RUN/`.
//! They boot and set up in parallel; each case of the `shared` suite runs in steps whose roles
//! run at once on their guests. A guest that dies only ends its own parts: the others finish.
//! Reports: one per guest in its directory, and the merged one in `RUN/`.

use crate::host_bytes::Backings;
use crate::plan;
use crate::run::{self, RunRequest, Session};
use crate::whole_log;
use anyhow::{Context, Result};
use famfs_lab_cases::catalog::{Case, Hosts, Role};
use famfs_lab_cases::devices::DeviceMap;
use lab_agent_proto::client::AgentClient;
use lab_report::{CaseReport, Outcome, RunReport};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One guest of the run.
struct Guest {
    index: u32,
    dir: PathBuf,
    session: Option<Session>,
    agent: Option<AgentClient>,
    map: Option<DeviceMap>,
    /// Why it takes no more parts (never booted, died, ended on purpose).
    gone: Option<String>,
    /// Its parts, per case, for its own report.
    cases: Vec<(&'static Case, CaseReport)>,
}

impl Guest {
    /// Up, set up, and not gone: it can take a part.
    fn is_ready(&self) -> bool {
        self.gone.is_none() && self.agent.is_some() && self.map.is_some()
    }
}

/// The directory of guest `index` in the run directory.
pub fn guest_dir(run_dir: &std::path::Path, index: u32) -> PathBuf {
    run_dir.join(format!("host{index}"))
}

pub fn run(req: &RunRequest, started_at: String) -> Result<RunReport> {
    let hosts = req.topology.hosts;
    let planned = plan::select(&req.suites, &req.cases, &req.kernel, hosts)?;
    std::fs::create_dir_all(&req.run_dir)?;
    std::fs::write(
        req.run_dir.join("topology.yaml"),
        serde_norway::to_string(&req.topology)?,
    )?;
    let dirs: Vec<PathBuf> = (0..hosts).map(|i| guest_dir(&req.run_dir, i)).collect();
    let results: Vec<PathBuf> = dirs.iter().map(|d| d.join("results")).collect();
    let backings = run::prepare_bytes(req, &planned, &results)?;
    let shared_topology = req.topology.for_host(&req.run_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let start = Instant::now();
    rt.block_on(async { lab_vm::process_cleanup::install_signal_cleanup() })
        .context("installing the Ctrl-C handler")?;
    // QEMU starts running as soon as it is launched: the guests boot side by side.
    // The first guest's boot is watched (a silent KVM guest restarts under TCG); the others
    // follow with what it runs under.
    let mut guests: Vec<Guest> = Vec::new();
    let mut effective = req.clone();
    for (i, dir) in dirs.iter().enumerate() {
        let booted = if i == 0 {
            rt.block_on(crate::kvm_guard::boot_guarded(
                &effective,
                shared_topology.clone(),
                dir,
            ))
            .map(|(s, accel)| {
                effective.accel = accel;
                s
            })
        } else {
            rt.block_on(run::boot_at(
                &effective,
                &effective.accel,
                shared_topology.clone(),
                dir,
            ))
        };
        let (session, gone) = match booted {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(format!("QEMU did not start: {e:#}"))),
        };
        guests.push(Guest {
            index: i as u32,
            dir: dir.clone(),
            session,
            agent: None,
            map: None,
            gone,
            cases: Vec::new(),
        });
    }
    let mut meta = BTreeMap::new();
    if effective.accel != req.accel {
        meta.insert("accel_fallback".into(), effective.accel.reason.clone());
    }
    let req = &effective;
    meta.insert("accel_reason".into(), req.accel.reason.clone());
    meta.insert("image".into(), req.initramfs.display().to_string());
    meta.insert("hosts".into(), hosts.to_string());
    std::thread::scope(|scope| {
        for g in guests.iter_mut().filter(|g| g.gone.is_none()) {
            let (rt, topo) = (&rt, &shared_topology);
            scope.spawn(move || bring_up(g, req, topo, rt));
        }
    });
    for g in &guests {
        let state = g.gone.as_deref().unwrap_or("ready");
        lab_host::progress!("famfs-lab: guest {}: {state}", g.index);
        if let Some(why) = &g.gone {
            let why = format!("guest {} never became ready: {why}", g.index);
            RunReport::set_lab_error(&mut meta, &why);
        }
        if let Some(m) = &g.map {
            let devs: Vec<&str> = m.dax.iter().map(|d| d.name.as_str()).collect();
            meta.insert(format!("host{}_devices", g.index), devs.join(" "));
        }
    }
    meta.insert(
        "first_case_ms".into(),
        start.elapsed().as_millis().to_string(),
    );
    let mut merged = Vec::new();
    for (n, p) in planned.iter().enumerate() {
        let r = match (&p.skip, p.case.hosts) {
            (Some(why), _) => run::case_report(p.case, Outcome::Skip, Some(why.clone()), 0, vec![]),
            (None, Hosts::Shared(steps)) => {
                run_shared(&mut guests, req, p.case, steps, n as u64, &backings, &rt)
            }
            (None, Hosts::One) => run::case_report(
                p.case,
                Outcome::Error,
                Some("a one-guest case in a multi-host run".into()),
                0,
                vec![],
            ),
        };
        run::print_case(&r, p.case);
        merged.push((p.case, r));
    }
    for g in guests.iter_mut() {
        power_off(g, &rt);
    }
    let took = start.elapsed();
    // Each guest's splats outside every case window: in its own report as `lab.boot`, ...,
    // in the merged one as `lab.host<i>.boot`, ...
    let outside: Vec<Vec<CaseReport>> = guests.iter().map(|g| outside_cases(g, req)).collect();
    for (g, extra) in guests.iter().zip(&outside) {
        let mut m = meta.clone();
        m.insert("host".into(), g.index.to_string());
        if let Some(why) = &g.gone {
            m.insert("gone".into(), why.clone());
        }
        let mut r = run::report_of(req, &started_at, took, g.cases.clone(), m);
        whole_log::add(&mut r, extra.clone());
        lab_report::write_run_dir(&g.dir, &r)
            .with_context(|| format!("writing guest {}'s report", g.index))?;
    }
    let mut report = run::report_of(req, &started_at, took, merged, meta);
    whole_log::add(&mut report, merged_outside(&guests, outside));
    lab_report::write_run_dir(&req.run_dir, &report)?;
    crate::host_bytes::discard_after(&req.run_dir, &backings, report.failed());
    Ok(report)
}

/// Agent, setup; on failure the guest is gone with the reason and its serial tail.
fn bring_up(
    g: &mut Guest,
    req: &RunRequest,
    topology: &lab_vm::Topology,
    rt: &tokio::runtime::Runtime,
) {
    let Some(session) = g.session.as_mut() else {
        return;
    };
    let up = run::attach_at(session, req, &g.dir, rt).and_then(|(agent, ready)| {
        lab_host::progress!(
            "famfs-lab: guest {} agent ready {:.2}s after QEMU start ({})",
            g.index,
            ready.as_secs_f64(),
            req.accel.accel.as_str()
        );
        let map = run::setup_at(&agent, topology, &g.dir, req.wait(run::SETUP_TIMEOUT))
            .context("guest setup")?;
        Ok((agent, map))
    });
    match up {
        Ok((agent, map)) => {
            g.agent = Some(agent);
            g.map = Some(map);
        }
        Err(e) => g.gone = Some(format!("{e:#}")),
    }
}

/// The pseudo-cases of guest `g`'s serial log (none for a guest whose QEMU never started).
fn outside_cases(g: &Guest, req: &RunRequest) -> Vec<CaseReport> {
    let Some(session) = &g.session else {
        return Vec::new();
    };
    let log_name = format!("host{}/serial.log", g.index);
    let guest = whole_log::Guest {
        prefix: "",
        log_name: &log_name,
    };
    whole_log::judge_serial(&session.serial, guest, &req.reproduce)
}

/// Every guest's pseudo-cases for the merged report, each name prefixed with `host<i>.`.
fn merged_outside(guests: &[Guest], outside: Vec<Vec<CaseReport>>) -> Vec<CaseReport> {
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

fn power_off(g: &mut Guest, rt: &tokio::runtime::Runtime) {
    if let Some(a) = &g.agent {
        if g.gone.is_none() {
            whole_log::mark(a, crate::markers::POWEROFF);
            let _ = a.poweroff(Duration::from_secs(5));
        }
    }
    if let Some(s) = g.session.as_mut() {
        rt.block_on(async {
            if s.vm.wait_exit(run::POWEROFF).await.is_err() {
                let _ = s.vm.shutdown(run::POWEROFF).await;
            }
        });
    }
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
    let (Some(agent), Some(map), Some(session)) = (&g.agent, &g.map, g.session.as_mut()) else {
        return part_report(case, Outcome::Error, "no QEMU session".into());
    };
    let results = g.dir.join("results");
    let mut r = run::run_case(
        session, agent, req, case, nonce, map, backings, rt, extra, &results,
    );
    let guest_died = !agent.is_connected() || session.vm.exit_report().is_some();
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
    run::case_report(case, outcome, Some(why), 0, vec![])
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
    let mut r = run::case_report(case, outcome, reason, took.as_millis() as u64, diag);
    r.splats = parts.iter().flat_map(|p| p.splats.clone()).collect();
    r.reproduce = worst.and_then(|w| w.reproduce.clone());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let guest = |index: u32| Guest {
            index,
            dir: PathBuf::from(format!("/run/host{index}")),
            session: None,
            agent: None,
            map: None,
            gone: None,
            cases: Vec::new(),
        };
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
        let case = famfs_lab_cases::catalog::find("shared.ring").expect("catalog has shared.ring");
        let pass = run::case_report(case, Outcome::Pass, None, 1, vec![]);
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
        let case = famfs_lab_cases::catalog::find("shared.ring").expect("catalog has shared.ring");
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
