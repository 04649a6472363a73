//! One lab run, as a pipeline: plan -> stage (host bytes before boot) -> boot -> bring up
//! (agent, setup) -> cases -> power off -> report. One or N guests go through the same
//! [`Session`]; only the cases differ: one guest runs them one after another here, N guests run
//! the steps of shared cases ([`crate::shared`]).

use crate::assemble::report_of;
use crate::case::{case_report, not_run, print_case, run_case};
use crate::host_bytes::{self, Backings};
use crate::plan::{self, Planned};
use crate::request::RunRequest;
use crate::session::{guest_dir, Session};
use crate::stage::{self, Staged};
use crate::whole_log;
use anyhow::{Context, Result};
use lab_report::{CaseReport, Outcome, RunReport};
use lab_suite::catalog::{Case, HostPart};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `meta` key present when kmemleak was cleared after setup (and is checked at the end).
const KMEMLEAK_META: &str = "kmemleak";

/// What a run booted on a guess learns once the guess is checked ([`run_checked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    /// The kernel and image booted are the ones the sources and tools make now.
    Confirmed,
    /// They are not: the guests were stopped before their setup, nothing ran.
    Stale,
}

/// Runs the request and writes the report into the run directory (and, with N guests, each
/// guest's own report into its directory).
pub fn run(req: &RunRequest, started_at: String) -> Result<RunReport> {
    run_checked(req, started_at, || Ok(Guess::Confirmed))?
        .ok_or_else(|| anyhow::anyhow!("a run that guessed nothing came out stale"))
}

/// [`run`] for a request whose kernel and image are a guess (the last ones these inputs
/// made): QEMU starts at once, and `check` (the real lookup, running beside the boot) is
/// asked before anything reaches the guests. None when it says [`Guess::Stale`] (the guests
/// are stopped; the run directory is left for the caller); its error ends the run likewise.
pub fn run_checked(
    req: &RunRequest,
    started_at: String,
    check: impl FnOnce() -> Result<Guess>,
) -> Result<Option<RunReport>> {
    let hosts = req.topology.hosts.max(1);
    if hosts > 1 && req.user_tree.is_some() {
        anyhow::bail!(
            "--shadow runs on one-guest topologies; topology {} has hosts: {}",
            req.topology.name,
            req.topology.hosts
        );
    }
    let planned = plan::select(&req.suites, &req.cases, &req.kernel, req.topology.hosts)?;
    if let Some(runs) = req.run_dir.parent() {
        prune_runs(runs, std::time::SystemTime::now());
    }
    let results: Vec<PathBuf> = (0..hosts)
        .map(|i| guest_dir(&req.run_dir, hosts, i).join("results"))
        .collect();
    let staged = stage::host(req, &planned, &results)?;
    let before_qemu = lab_host::stage::since_process_start();
    let mut session = Session::boot(req)?;
    if check()? == Guess::Stale {
        return Ok(None);
    }
    let mut meta = BTreeMap::new();
    // Where in the command QEMU started (`lab bench boot`'s first stage).
    if let Some(t) = before_qemu {
        meta.insert("qemu_start_ms".into(), t.as_millis().to_string());
    }
    if let Some(why) = &session.accel_fallback {
        meta.insert("accel_fallback".into(), why.clone());
    }
    meta.insert("accel_reason".into(), session.req.accel.reason.clone());
    if session.req.clock != lab_vm::Clock::Host {
        meta.insert("clock".into(), session.req.clock.to_string());
    }
    meta.insert("image".into(), req.initramfs.display().to_string());
    session.bring_up();
    let report = if hosts == 1 {
        one_guest(&mut session, &planned, &staged, meta, &started_at)?
    } else {
        many_guests(&mut session, &planned, &staged.backings, meta, &started_at)?
    };
    host_bytes::discard_after(&req.run_dir, &staged.backings, report.failed());
    Ok(Some(report))
}

/// Run directories kept: the newest (a failed run keeps its backing files, up to a GiB) and
/// any touched within two hours; a run whose process is still alive is never pruned.
const KEEP_RUNS: lab_host::prune::Keep = lab_host::prune::Keep {
    newest: 40,
    in_use: std::time::Duration::from_secs(2 * 3600),
};

/// Best effort: prunes the run directories (`<secs>-<pid>`) in `runs` to [`KEEP_RUNS`],
/// leaving those of live processes (a long run of another process, e.g. a mutate campaign's).
fn prune_runs(runs: &std::path::Path, now: std::time::SystemTime) -> Vec<PathBuf> {
    lab_host::prune::by_recency(runs, KEEP_RUNS, now, |dir| {
        run_pid(dir).is_some_and(|pid| !std::path::Path::new("/proc").join(pid).exists())
    })
}

/// The process id in a run directory's name `<secs>-<pid>` (None for other names).
fn run_pid(dir: &std::path::Path) -> Option<&str> {
    let (secs, pid) = dir.file_name()?.to_str()?.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(secs) && digits(pid)).then_some(pid)
}

/// One guest: its cases one after another, then its report in `RUN/`.
fn one_guest(
    session: &mut Session,
    planned: &[Planned],
    staged: &Staged,
    mut meta: BTreeMap<String, String>,
    started_at: &str,
) -> Result<RunReport> {
    let mut leak_case = None;
    let cases = match cases_of_one(session, planned, staged, &mut meta) {
        Ok(cases) => {
            // On a kmemleak kernel: what the cases leaked, as the pseudo-case lab.kmemleak.
            let g = &session.guests[0];
            if let (true, Some(agent)) = (meta.contains_key(KMEMLEAK_META), &g.agent) {
                leak_case = Some(crate::leaks::check(agent, &session.req.reproduce));
            }
            cases
        }
        Err(why) => {
            eprintln!("famfs-lab: {why}");
            RunReport::set_lab_error(&mut meta, &why);
            not_run(planned, &why, &session.guests[0].tail())
        }
    };
    session.power_off();
    let req = &session.req;
    let mut report = report_of(req, started_at, session.started.elapsed(), cases, meta);
    // Splats outside every case window (boot, setup, between cases, power off) fail the run.
    if let Some(b) = &session.guests[0].booted {
        whole_log::add_from(&mut report, &b.serial, &req.reproduce);
    }
    if let Some(c) = leak_case {
        whole_log::add(&mut report, vec![c]);
    }
    lab_report::write_run_dir(&req.run_dir, &report)?;
    Ok(report)
}

/// The cases on the one guest, once it is up: the user's tree's bytes, kmemleak cleared, then
/// each case; a dead guest ends the run there. `Err` is why none could run.
fn cases_of_one(
    session: &mut Session,
    planned: &[Planned],
    staged: &Staged,
    meta: &mut BTreeMap<String, String>,
) -> Result<Vec<(&'static Case, CaseReport)>, String> {
    let (req, rt, started) = (&session.req, &session.rt, session.started);
    let g = &mut session.guests[0];
    if let Some(ready) = g.ready {
        meta.insert("boot_ms".into(), ready.as_millis().to_string());
    }
    if let Some(why) = &g.gone {
        return Err(why.clone());
    }
    let (Some(agent), Some(map), Some(booted)) = (&g.agent, &g.map, g.booted.as_mut()) else {
        return Err("the guest is not set up".into());
    };
    if let Some((u, tree)) = &staged.user {
        match u.prepare(tree, map, &staged.backings, &req.run_dir.join("results")) {
            Ok(note) => lab_host::progress!("famfs-lab: {note}"),
            Err(e) => return Err(format!("writing the user tree's bytes: {e:#}")),
        }
    }
    if let Some(setup) = g.setup {
        meta.insert("setup_ms".into(), setup.as_millis().to_string());
    }
    // Only a kernel with kmemleak is asked (a guest round trip with a shell costs ~50 ms).
    if req.kernel.kmemleak && crate::leaks::clear(agent) {
        meta.insert(KMEMLEAK_META.into(), "cleared after setup".into());
    }
    meta.insert(
        "first_case_ms".into(),
        started.elapsed().as_millis().to_string(),
    );
    lab_host::progress!(
        "famfs-lab: devices ready; first case {:.2}s after QEMU start",
        started.elapsed().as_secs_f64()
    );
    let results = g.dir.join("results");
    let mut out = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        if let Some(why) = &p.skip {
            let r = case_report(p.case, Outcome::Skip, Some(why.clone()), 0, vec![]);
            out.push((p.case, r));
            continue;
        }
        let r = run_case(
            booted,
            agent,
            req,
            p.case,
            i as u64,
            map,
            &staged.backings,
            rt,
            &[],
            &results,
        );
        let dead = r.outcome == Outcome::Error && !agent.is_connected();
        // The BPF selftests' case reports each program as a case of its own.
        let reports = match p.case.host {
            HostPart::BpfSelftests => {
                crate::bpf_selftests::only_asked(crate::bpf_selftests::expand(r), &req.cases)
            }
            _ => vec![r],
        };
        for r in reports {
            print_case(&r, p.case);
            out.push((p.case, r));
        }
        if dead {
            let why = format!("not run: the guest died during {}", p.case.id());
            out.extend(planned[i + 1..].iter().map(|p| {
                let r = case_report(p.case, Outcome::Error, Some(why.clone()), 0, vec![]);
                (p.case, r)
            }));
            break;
        }
    }
    Ok(out)
}

/// N guests: the shared cases' steps, then a report per guest in its directory and the merged
/// one in `RUN/`.
fn many_guests(
    session: &mut Session,
    planned: &[Planned],
    backings: &Backings,
    mut meta: BTreeMap<String, String>,
    started_at: &str,
) -> Result<RunReport> {
    meta.insert("hosts".into(), session.guests.len().to_string());
    for g in &session.guests {
        let state = g.gone.as_deref().unwrap_or("ready");
        lab_host::progress!("famfs-lab: guest {}: {state}", g.index);
        if let Some(why) = &g.gone {
            let why = format!("guest {}: {why}", g.index);
            RunReport::set_lab_error(&mut meta, &why);
        }
        if let Some(m) = &g.map {
            let devs: Vec<&str> = m.dax.iter().map(|d| d.name.as_str()).collect();
            meta.insert(format!("host{}_devices", g.index), devs.join(" "));
        }
    }
    meta.insert(
        "first_case_ms".into(),
        session.started.elapsed().as_millis().to_string(),
    );
    let merged = crate::shared::cases(session, planned, backings);
    session.power_off();
    let (req, took) = (&session.req, session.started.elapsed());
    // Each guest's splats outside every case window: in its own report as `lab.boot`, ...,
    // in the merged one as `lab.host<i>.boot`, ...
    let outside: Vec<Vec<CaseReport>> = session
        .guests
        .iter()
        .map(|g| g.outside_cases(&format!("host{}/serial.log", g.index), &req.reproduce))
        .collect();
    for (g, extra) in session.guests.iter().zip(&outside) {
        let mut m = meta.clone();
        m.insert("host".into(), g.index.to_string());
        if let Some(why) = &g.gone {
            m.insert("gone".into(), why.clone());
        }
        let mut r = report_of(req, started_at, took, g.cases.clone(), m);
        whole_log::add(&mut r, extra.clone());
        lab_report::write_run_dir(&g.dir, &r)
            .with_context(|| format!("writing guest {}'s report", g.index))?;
    }
    let mut report = report_of(req, started_at, took, merged, meta);
    whole_log::add(
        &mut report,
        crate::shared::merged_outside(&session.guests, outside),
    );
    lab_report::write_run_dir(&req.run_dir, &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// Above PID_MAX_LIMIT (2^22): no process has it.
    const NO_PID: u32 = 4_200_000;

    #[test]
    fn only_run_directories_beyond_the_newest_and_the_recent_are_pruned() {
        let runs = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let make = |name: &str, used: SystemTime| {
            let dir = runs.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(used)
                .unwrap();
        };
        let n = KEEP_RUNS.newest as u32;
        for i in 0..n + 3 {
            make(
                &format!("{}-{}", 1_700_000_000 + i, NO_PID + i),
                now - day * (i + 1),
            );
        }
        make(
            &format!("1799999999-{NO_PID}"),
            now - Duration::from_secs(60),
        );
        // A day old and beyond the newest, but its process (this test) is alive.
        let alive = format!("1600000000-{}", std::process::id());
        make(&alive, now - day * 500);
        make("my-notes", now - day * 99);
        make("bench", now - day * 99);
        let removed = prune_runs(runs.path(), now);
        // The fresh run counts among the newest: the four oldest runs go, nothing else.
        assert_eq!(removed.len(), 4, "{removed:?}");
        for i in n - 1..n + 3 {
            let name = format!("{}-{}", 1_700_000_000 + i, NO_PID + i);
            assert!(!runs.path().join(&name).exists(), "{name} kept");
        }
        for kept in [
            &format!("1799999999-{NO_PID}") as &str,
            "my-notes",
            "bench",
            &format!("1700000000-{NO_PID}"),
            &alive,
        ] {
            assert!(runs.path().join(kept).is_dir(), "{kept} removed");
        }
    }
}
