//! One lab run: boot -> setup -> cases -> power off -> report.

use crate::host_bytes::{self, Backings};
use crate::markers;
use crate::plan::{self, KernelFeatures, Planned};
use crate::user_tree::UserTree;
use anyhow::{Context, Result};
use famfs_lab_cases::catalog::{Case, Expect, HostPart};
use famfs_lab_cases::devices::DeviceMap;
use famfs_lab_cases::verify;
use famfs_lab_cases::{EXIT_FAIL, EXIT_SKIP};
use famfs_shadow::ShadowTree;
use lab_agent_proto::client::{AgentClient, AgentError};
use lab_agent_proto::messages::{ExecRequest, ExitStatus};
use lab_report::{CaseReport, Outcome, RunReport, SuiteReport};
use lab_vm::qemu_args::{KernelBoot, BASE_KERNEL_CMDLINE};
use lab_vm::topology::Topology;
use lab_vm::{AccelChoice, Vm, VmSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub kernel: KernelFeatures,
    pub kernel_hash: String,
    pub bzimage: PathBuf,
    pub initramfs: PathBuf,
    pub topology: Topology,
    pub suites: Vec<String>,
    pub cases: Vec<String>,
    pub accel: AccelChoice,
    /// The command that reruns this run; `--case ID` is appended per failure.
    pub reproduce: String,
    /// Extra kernel command line.
    pub cmdline: String,
    /// The fmap ops variant the cases mount with (`FAMFS_LAB_OPS` in the
    /// guest): famfs, famfs_maplookup or famfs_native.
    pub ops: String,
    pub boot_timeout: Duration,
    /// A shadow tree the user brought (`lab up --shadow`), for the `shadow` suite.
    pub user_tree: Option<crate::user_tree::UserTree>,
    /// Where the console goes and whether QEMU's gdb stub listens (a run: `serial.log` only).
    pub console: Console,
    /// Guest time: the host's clock, or QEMU's instruction counter (`-icount`, TCG only;
    /// every host-side wait then scaled by [`lab_vm::Clock::timeout_scale`]).
    pub clock: lab_vm::Clock,
}

impl RunRequest {
    /// `base` scaled for this run's clock (icount runs are slower; waits keep a limit).
    pub fn wait(&self, base: Duration) -> Duration {
        base * self.clock.timeout_scale()
    }
}

/// How the guest's console and debugger are wired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Console {
    /// The console on this process's terminal as well as in `serial.log` (`lab shell`).
    pub terminal: bool,
    /// QEMU's gdb stub on `127.0.0.1:PORT`.
    pub gdb_port: Option<u16>,
    /// QEMU's `vmcoreinfo` device, so a memory dump carries the guest's vmcoreinfo (drgn).
    pub vmcoreinfo: bool,
}

/// `meta` key present when kmemleak was cleared after setup (and is checked at the end).
const KMEMLEAK_META: &str = "kmemleak";

/// How long the guest may take to power off before QEMU is stopped.
pub(crate) const POWEROFF: Duration = Duration::from_secs(15);
/// Lines of serial log shown when the guest dies or hangs.
pub(crate) const LAST_LINES: usize = 40;

/// Runs the request and writes the report into the run directory.
pub fn run(req: &RunRequest, started_at: String) -> Result<RunReport> {
    if req.topology.hosts > 1 {
        if req.user_tree.is_some() {
            anyhow::bail!(
                "--shadow runs on one-guest topologies; topology {} has hosts: {}",
                req.topology.name,
                req.topology.hosts
            );
        }
        return crate::multi::run(req, started_at);
    }
    let planned = plan::select(&req.suites, &req.cases, &req.kernel, req.topology.hosts)?;
    let (backings, user) = stage_host(req, &planned)?;
    let user = user.as_ref().map(|(u, t)| (u, t));
    let rt = runtime()?;
    let start = Instant::now();
    let (mut session, accel) = boot(req, &rt)?;
    let mut meta = BTreeMap::new();
    if accel != req.accel {
        meta.insert("accel_fallback".into(), accel.reason.clone());
    }
    // From here on the run is what it really runs under (TCG after a silent KVM guest).
    let req = &RunRequest {
        accel,
        ..req.clone()
    };
    meta.insert("accel_reason".into(), req.accel.reason.clone());
    if req.clock != lab_vm::Clock::Host {
        meta.insert("clock".into(), req.clock.to_string());
    }
    meta.insert("image".into(), req.initramfs.display().to_string());
    let mut leak_case = None;
    let cases = match attach(&mut session, req, &rt) {
        Ok((agent, ready)) => {
            meta.insert("boot_ms".into(), ready.as_millis().to_string());
            lab_host::progress!(
                "famfs-lab: guest agent ready {:.2}s after QEMU start ({})",
                ready.as_secs_f64(),
                req.accel.accel.as_str()
            );
            let cases = drive(
                &mut session,
                &agent,
                req,
                &planned,
                &backings,
                user,
                &rt,
                start,
                &mut meta,
            );
            // On a kmemleak kernel: what the cases leaked, as the pseudo-case lab.kmemleak.
            if meta.contains_key(KMEMLEAK_META) {
                leak_case = Some(crate::leaks::check(&agent, &req.reproduce));
            }
            crate::whole_log::mark(&agent, markers::POWEROFF);
            let _ = agent.poweroff(Duration::from_secs(5));
            cases
        }
        Err(e) => {
            let why = format!("the guest never became ready: {e:#}");
            eprintln!("famfs-lab: {why}");
            RunReport::set_lab_error(&mut meta, &why);
            not_run(&planned, &why, &session.tail())
        }
    };
    rt.block_on(async {
        if session.vm.wait_exit(req.wait(POWEROFF)).await.is_err() {
            let _ = session.vm.shutdown(req.wait(POWEROFF)).await;
        }
    });
    let mut report = assemble(req, started_at, start.elapsed(), cases, meta);
    // Splats outside every case window (boot, setup, between cases, power off) fail the run.
    crate::whole_log::add_from(&mut report, &session.serial, &req.reproduce);
    if let Some(c) = leak_case {
        crate::whole_log::add(&mut report, vec![c]);
    }
    lab_report::write_run_dir(&req.run_dir, &report)?;
    host_bytes::discard_after(&req.run_dir, &backings, report.failed());
    Ok(report)
}

/// The host's part before boot: the run directory with its topology, the backing files with
/// the planned cases' bytes, and the user's tree checked and copied into the results share.
pub(crate) fn stage_host(
    req: &RunRequest,
    planned: &[Planned],
) -> Result<(Backings, Option<(UserTree, ShadowTree)>)> {
    std::fs::create_dir_all(req.run_dir.join("results"))?;
    std::fs::write(
        req.run_dir.join("topology.yaml"),
        serde_norway::to_string(&req.topology)?,
    )?;
    let backings = prepare_bytes(req, planned, &[req.run_dir.join("results")])?;
    stage_bpf_selftests(req, planned)?;
    let user = match &req.user_tree {
        Some(u) => {
            let tree = u.check()?;
            u.stage(&req.run_dir.join("results"))?;
            Some((u.clone(), tree))
        }
        None => None,
    };
    Ok((backings, user))
}

/// The runtime QEMU and QMP run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Boots the run's one guest through the KVM guard (QEMU is killed on Ctrl-C); returns the
/// session and the accelerator it really runs under.
pub(crate) fn boot(
    req: &RunRequest,
    rt: &tokio::runtime::Runtime,
) -> Result<(Session, AccelChoice)> {
    rt.block_on(async {
        lab_vm::process_cleanup::install_signal_cleanup()
            .context("installing the Ctrl-C handler")?;
        crate::kvm_guard::boot_guarded(req, req.topology.clone(), &req.run_dir).await
    })
}

/// Puts the kernel's compiled BPF selftests into the results share when a planned case loads
/// them (`bpf_selftests`).
fn stage_bpf_selftests(req: &RunRequest, planned: &[Planned]) -> Result<()> {
    let wanted = planned
        .iter()
        .any(|p| p.skip.is_none() && p.case.host == HostPart::BpfSelftests);
    let Some(compiled) = req.kernel.bpf_selftests.as_deref().filter(|_| wanted) else {
        return Ok(());
    };
    let m = crate::bpf_selftests::stage(compiled, &req.run_dir.join("results"))
        .context("staging the kernel's BPF selftests")?;
    lab_host::progress!(
        "famfs-lab: {} BPF selftest objects staged ({} did not compile)",
        m.objects.len(),
        m.errors.len()
    );
    Ok(())
}

/// Creates the backing files in the run directory and writes the bytes the planned cases
/// expect before boot: the fmap suites' fill (its plan goes into each of `results`) and each
/// case's own bytes.
pub(crate) fn prepare_bytes(
    req: &RunRequest,
    planned: &[Planned],
    results: &[PathBuf],
) -> Result<Backings> {
    let backings: Backings = req
        .topology
        .devices
        .iter()
        .map(|d| (d.id.clone(), req.topology.backing_path(d, &req.run_dir)))
        .collect();
    lab_vm::backing::create_backing_files(&req.topology, &req.run_dir)?;
    // The fmap suites' fill first: the other cases' own bytes go on top of it.
    let head = planned
        .iter()
        .filter(|p| p.skip.is_none())
        .filter_map(|p| match p.case.host {
            HostPart::FmapPattern { fill_head } | HostPart::RegionFill { fill_head } => {
                Some(fill_head)
            }
            _ => None,
        })
        .max();
    if let Some(head) = head {
        let fill_plan = host_bytes::fill_plan(&req.topology, head);
        host_bytes::fill(&fill_plan, &backings).context("filling the backing files")?;
        let json = serde_json::to_string_pretty(&fill_plan)?;
        for dir in results {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(verify::FILL_PLAN), &json)?;
        }
    }
    for p in planned.iter().filter(|p| p.skip.is_none()) {
        host_bytes::before_boot(&p.case.host, &backings)?;
    }
    Ok(backings)
}

pub(crate) struct Session {
    pub(crate) vm: Vm,
    pub(crate) serial: lab_vm::serial_log::SerialLog,
}

impl Session {
    pub(crate) fn tail(&self) -> String {
        self.serial.last_lines(LAST_LINES)
    }
}

/// Boots one guest of `topology` under `accel` with its sockets, serial log and results in
/// `dir` (callers go through [`crate::kvm_guard::boot_guarded`]).
pub(crate) async fn boot_at(
    req: &RunRequest,
    accel: &AccelChoice,
    topology: Topology,
    dir: &Path,
) -> Result<Session> {
    let cmdline = format!("{BASE_KERNEL_CMDLINE} kasan_multi_shot {}", req.cmdline)
        .trim()
        .to_string();
    let boot = KernelBoot {
        kernel: req.bzimage.clone(),
        initramfs: req.initramfs.clone(),
        cmdline,
    };
    let mut spec = VmSpec::new(topology, Some(boot), dir, accel.accel);
    let clock_args = req
        .clock
        .qemu_args(accel.accel)
        .map_err(|e| anyhow::anyhow!("clock {}: {e}", req.clock))?;
    spec.extra_args
        .extend(clock_args.into_iter().map(Into::into));
    spec.options.results_dir = Some(dir.join("results"));
    if req.console.terminal {
        spec.options.serial = lab_vm::SerialOutput::Terminal(dir.join("serial.log"));
    }
    spec.options.gdb_port = req.console.gdb_port;
    if req.console.vmcoreinfo {
        spec.extra_args
            .extend(["-device".into(), "vmcoreinfo".into()]);
    }
    let vm = Vm::launch(spec).await.context("starting QEMU")?;
    let serial = vm
        .serial_log()
        .cloned()
        .context("the serial console must go to a file")?;
    Ok(Session { vm, serial })
}

/// Connects to the agent and waits for it to be ready; returns the time
/// from QEMU start to ready.
fn attach(
    s: &mut Session,
    req: &RunRequest,
    rt: &tokio::runtime::Runtime,
) -> Result<(AgentClient, Duration)> {
    attach_at(s, req, &req.run_dir, rt)
}

/// [`attach`] to the guest whose files are in `dir`.
pub(crate) fn attach_at(
    s: &mut Session,
    req: &RunRequest,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<(AgentClient, Duration)> {
    let started = Instant::now();
    let socket = dir.join("agent.sock");
    let boot_timeout = req.wait(req.boot_timeout);
    let agent = AgentClient::connect(&socket, Instant::now() + boot_timeout)
        .context("connecting to the agent socket")?;
    match agent.wait_ready(boot_timeout) {
        Ok(_) => {}
        Err(e) => {
            let exited = rt.block_on(async { s.vm.exit_report() });
            let why = match exited {
                Some(x) => format!(
                    "QEMU exited ({}){}",
                    x.status,
                    x.guest_panic.map(|p| format!(": {p}")).unwrap_or_default()
                ),
                None => format!("{e}"),
            };
            anyhow::bail!(
                "waiting for the agent ({:?} boot timeout): {why}\nlast serial lines:\n{}",
                boot_timeout,
                s.tail()
            );
        }
    }
    agent
        .hello(req.wait(Duration::from_secs(10)))
        .context("agent hello")?;
    Ok((agent, started.elapsed()))
}

#[allow(clippy::too_many_arguments)]
fn drive(
    s: &mut Session,
    agent: &AgentClient,
    req: &RunRequest,
    planned: &[Planned],
    backings: &Backings,
    user: Option<(&UserTree, &ShadowTree)>,
    rt: &tokio::runtime::Runtime,
    start: Instant,
    meta: &mut BTreeMap<String, String>,
) -> Vec<(&'static Case, CaseReport)> {
    let setup_started = Instant::now();
    let map = match setup(agent, req) {
        Ok(map) => map,
        Err(e) => {
            let why = format!("guest setup failed: {e:#}");
            eprintln!("famfs-lab: {why}");
            RunReport::set_lab_error(meta, &why);
            return not_run(planned, &why, &s.tail());
        }
    };
    if let Some((u, tree)) = user {
        match u.prepare(tree, &map, backings, &req.run_dir.join("results")) {
            Ok(note) => lab_host::progress!("famfs-lab: {note}"),
            Err(e) => {
                let why = format!("writing the user tree's bytes: {e:#}");
                eprintln!("famfs-lab: {why}");
                RunReport::set_lab_error(meta, &why);
                return not_run(planned, &why, &s.tail());
            }
        }
    }
    meta.insert(
        "setup_ms".into(),
        setup_started.elapsed().as_millis().to_string(),
    );
    if crate::leaks::clear(agent) {
        meta.insert(KMEMLEAK_META.into(), "cleared after setup".into());
    }
    meta.insert(
        "first_case_ms".into(),
        start.elapsed().as_millis().to_string(),
    );
    lab_host::progress!(
        "famfs-lab: devices ready; first case {:.2}s after QEMU start",
        start.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        if let Some(why) = &p.skip {
            out.push((
                p.case,
                case_report(p.case, Outcome::Skip, Some(why.clone()), 0, vec![]),
            ));
            continue;
        }
        let results = req.run_dir.join("results");
        let r = run_case(
            s,
            agent,
            req,
            p.case,
            i as u64,
            &map,
            backings,
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
                (
                    p.case,
                    case_report(p.case, Outcome::Error, Some(why.clone()), 0, vec![]),
                )
            }));
            break;
        }
    }
    out
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

pub(crate) fn setup(agent: &AgentClient, req: &RunRequest) -> Result<DeviceMap> {
    setup_at(agent, &req.topology, &req.run_dir, req.wait(SETUP_TIMEOUT))
}

/// How long the guest's setup (regions, dax devices) may take on the host clock.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Creates the regions and dax devices of `topology` in the guest; writes `dir/devices.json`.
pub(crate) fn setup_at(
    agent: &AgentClient,
    topology: &Topology,
    dir: &Path,
    timeout: Duration,
) -> Result<DeviceMap> {
    crate::whole_log::mark(agent, markers::SETUP);
    let plan = plan::setup_plan(topology, dir);
    let json = serde_json::to_string(&plan)?;
    let r = agent
        .exec(
            ExecRequest::new(["famfs-lab-cases", "setup", json.as_str()]).timeout(timeout),
            timeout + Duration::from_secs(10),
        )
        .context("running famfs-lab-cases setup")?;
    if !r.success() {
        anyhow::bail!("{:?}\n{}{}", r.status, r.stdout, r.stderr);
    }
    let map: DeviceMap = serde_json::from_str(&r.stdout)
        .with_context(|| format!("parsing the device map: {}", r.stdout))?;
    std::fs::write(dir.join("devices.json"), &r.stdout)?;
    Ok(map)
}

/// Runs `case` in one guest: `extra` adds to its environment (a multi-host role), `results`
/// is the host side of that guest's results share.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_case(
    s: &mut Session,
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
    let exec = agent.kmsg(&begin, Duration::from_secs(5)).and_then(|_| {
        let mut r = ExecRequest::new(["famfs-lab-cases", "run", id.as_str()])
            .env("FAMFS_LAB_OPS", req.ops.as_str())
            .timeout(timeout);
        for (k, v) in env.iter().chain(extra) {
            r = r.env(k, v);
        }
        agent.exec(r, timeout + Duration::from_secs(15))
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

fn assemble(
    req: &RunRequest,
    started_at: String,
    took: Duration,
    cases: Vec<(&'static Case, CaseReport)>,
    meta: BTreeMap<String, String>,
) -> RunReport {
    report_of(req, &started_at, took, cases, meta)
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

#[cfg(test)]
mod tests {
    use super::*;
    use famfs_lab_cases::catalog::find;

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
