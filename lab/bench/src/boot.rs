//! The boot benchmark's numbers (`cargo xtask lab bench boot`): where one whole `lab up` of one
//! case spends its time, and how it compares with a peer booting the same kernel.
//!
//! The stages come from three clocks that meet at one point. The bench times the command from
//! spawn to exit; the run's meta says when QEMU started (after the command started) and when the
//! agent answered (after QEMU started); the serial log's kernel timestamps place the guest's own
//! steps (init, the agent's ready marker, the setup's and the case's markers) on the guest clock,
//! which under TCG or KVM without `-icount` runs with the host's. The agent's ready marker is
//! where the guest clock is pinned to the host's: guest time t is host time
//! `qemu_start + agent_ready - (t_ready - t)`. The stages then add up to the command's wall time.

use serde::{Deserialize, Serialize};

/// What the guest writes to kmsg, in order, that the stages are cut at.
pub mod marks {
    /// The agent as PID 1, once /dev is mounted (`lab_agent_proto::INIT_STARTED_MARKER`; the
    /// kernel's own "Run /init" line is info level, off the console during boot).
    pub const INIT: &str = "famfs-lab-agent: PID 1";
    /// The agent serves (`famfs-lab-agent`'s READY_MARKER).
    pub const READY: &str = "famfs-lab-agent: ready";
    /// The setup found every planned memdev (`famfs-lab-cases setup`).
    pub const MEMDEVS: &str = "famfs-lab: setup: memdevs";
    /// The setup created and committed every planned region.
    pub const REGIONS: &str = "famfs-lab: setup: regions";
    /// Every region's dax device is there (bound to device_dax).
    pub const DAX: &str = "famfs-lab: setup: dax";
    /// The runner's end-of-case marker (`famfs-lab: end <case> #<n>`).
    pub const CASE_END: &str = "famfs-lab: end ";
}

/// The stage names, in order.
pub const STAGES: [&str; 9] = [
    "host, before QEMU",
    "QEMU, firmware, kernel load",
    "kernel init",
    "init: agent up",
    "CXL enumeration",
    "region",
    "dax device bind",
    "first case",
    "power off, report, exit",
];

/// One run of ours as the bench saw it.
#[derive(Debug, Clone)]
pub struct RunFacts<'a> {
    /// Spawn to exit of the whole command.
    pub wall_ms: f64,
    /// The command's start to QEMU's start (the run's meta `qemu_start_ms`).
    pub qemu_start_ms: f64,
    /// QEMU's start to the agent's answer (the run's meta `boot_ms`).
    pub agent_ready_ms: f64,
    /// The run's serial log.
    pub serial: &'a str,
}

/// A kernel log line's timestamp in seconds and its message: `[    1.698056] Run /init ...`.
pub fn kernel_line(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, message) = rest.split_once(']')?;
    let t: f64 = stamp.trim().parse().ok()?;
    t.is_finite()
        .then_some((t, message.strip_prefix(' ').unwrap_or(message)))
}

/// The guest time (s) of the first kernel line whose message starts with `prefix`, at or after
/// `from` seconds.
fn first_at(serial: &str, prefix: &str, from: f64) -> Option<f64> {
    serial
        .lines()
        .filter_map(kernel_line)
        .find(|(t, m)| *t >= from && m.starts_with(prefix))
        .map(|(t, _)| t)
}

/// The stages of one run (ms, in [`STAGES`] order), or which mark the serial log lacks.
pub fn stages(f: &RunFacts) -> Result<Vec<f64>, String> {
    let need = |what: &str, from: f64| {
        first_at(f.serial, what, from).ok_or_else(|| format!("no {what:?} in the serial log"))
    };
    let init = need(marks::INIT, 0.0)?;
    let ready = need(marks::READY, init)?;
    let memdevs = need(marks::MEMDEVS, ready)?;
    let regions = need(marks::REGIONS, memdevs)?;
    let dax = need(marks::DAX, regions)?;
    let case_end = need(marks::CASE_END, dax)?;
    let ms = |s: f64| s * 1000.0;
    // Host time of guest time 0 (ms since the command started).
    let guest_zero = f.qemu_start_ms + f.agent_ready_ms - ms(ready);
    let case_end_host = guest_zero + ms(case_end);
    Ok(vec![
        f.qemu_start_ms,
        f.agent_ready_ms - ms(ready),
        ms(init),
        ms(ready - init),
        ms(memdevs - ready),
        ms(regions - memdevs),
        ms(dax - regions),
        ms(case_end - dax),
        f.wall_ms - case_end_host,
    ])
}

/// Median, min and max of some repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// None for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: crate::stats::median(values)?,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// One repetition: ours and the peer's, in the order they ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootRep {
    pub rep: usize,
    /// Who ran first: `["lab", "vng"]` or `["vng", "lab"]` (alternating), or `["lab"]`.
    pub order: Vec<String>,
    pub lab: LabSample,
    pub peer: Option<PeerSample>,
}

impl BootRep {
    /// Ours over the peer's wall time, when both ran and succeeded.
    pub fn ratio(&self) -> Option<f64> {
        let p = self.peer.as_ref().filter(|p| p.ok)?;
        (self.lab.passed && p.wall_ms > 0.0).then(|| self.lab.wall_ms / p.wall_ms)
    }

    /// The whole `cargo xtask lab up` (ours with cargo's start) over the peer's wall time.
    pub fn ratio_with_cargo(&self) -> Option<f64> {
        let p = self.peer.as_ref().filter(|p| p.ok)?;
        let cargo = self.lab.cargo_ms?;
        (self.lab.passed && p.wall_ms > 0.0).then(|| (self.lab.wall_ms + cargo) / p.wall_ms)
    }
}

/// One `lab up` of ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSample {
    pub run_id: String,
    pub wall_ms: f64,
    /// Every case passed (exit status 0).
    pub passed: bool,
    /// The stages in [`STAGES`] order (empty when the serial log lacked a mark).
    pub stages_ms: Vec<f64>,
    /// Why there are no stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages_missing: Option<String>,
    /// What cargo adds in front of the command when a user types `cargo xtask lab up`: its
    /// own start and freshness check of xtask, timed on its own just before this run (`cargo
    /// xtask --version`); not in `wall_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cargo_ms: Option<f64>,
}

/// One boot of the peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSample {
    pub wall_ms: f64,
    /// It exited 0.
    pub ok: bool,
}

/// The whole benchmark: what ran where, every repetition, and the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootBench {
    pub facts: BootFacts,
    pub reps: Vec<BootRep>,
    pub summary: BootSummary,
}

/// What the numbers were taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootFacts {
    /// The `lab up` command timed (without cargo).
    pub lab_command: String,
    /// The peer's command, when there is one.
    pub peer_command: Option<String>,
    pub peer_version: Option<String>,
    pub accel: String,
    pub kernel_key: String,
    /// The kernel image both booted.
    pub kernel_image: String,
    pub host_cpus: usize,
    /// `/proc/loadavg`'s three averages before and after the measuring.
    pub load_before: Vec<f64>,
    pub load_after: Vec<f64>,
    /// Whether the measuring held the kernel-build lock (no kernel build ran meanwhile).
    pub held_build_lock: bool,
}

/// Median, min and max of everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootSummary {
    pub lab_ms: Option<Spread>,
    pub peer_ms: Option<Spread>,
    /// Ours / peer's, paired by repetition.
    pub ratio: Option<Spread>,
    /// Cargo's own start in front of the command ([`LabSample::cargo_ms`]).
    #[serde(default)]
    pub cargo_ms: Option<Spread>,
    /// (Ours + cargo's start) / peer's, paired by repetition.
    #[serde(default)]
    pub ratio_with_cargo: Option<Spread>,
    /// Per stage, in [`STAGES`] order, over the repetitions that have stages.
    pub stages: Vec<(String, Option<Spread>)>,
}

/// The summary of `reps`.
pub fn summarize(reps: &[BootRep]) -> BootSummary {
    let lab: Vec<f64> = reps.iter().map(|r| r.lab.wall_ms).collect();
    let peer: Vec<f64> = reps
        .iter()
        .filter_map(|r| r.peer.as_ref().filter(|p| p.ok).map(|p| p.wall_ms))
        .collect();
    let ratios: Vec<f64> = reps.iter().filter_map(BootRep::ratio).collect();
    let cargo: Vec<f64> = reps.iter().filter_map(|r| r.lab.cargo_ms).collect();
    let with_cargo: Vec<f64> = reps.iter().filter_map(BootRep::ratio_with_cargo).collect();
    let staged: Vec<&Vec<f64>> = reps
        .iter()
        .map(|r| &r.lab.stages_ms)
        .filter(|s| s.len() == STAGES.len())
        .collect();
    let stages = STAGES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let v: Vec<f64> = staged.iter().map(|s| s[i]).collect();
            (name.to_string(), Spread::of(&v))
        })
        .collect();
    BootSummary {
        lab_ms: Spread::of(&lab),
        peer_ms: Spread::of(&peer),
        ratio: Spread::of(&ratios),
        cargo_ms: Spread::of(&cargo),
        ratio_with_cargo: Spread::of(&with_cargo),
        stages,
    }
}

/// `/proc/loadavg`'s three load averages.
pub fn parse_loadavg(text: &str) -> Vec<f64> {
    text.split_whitespace()
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect()
}

fn secs(ms: f64) -> String {
    format!("{:.2}", ms / 1000.0)
}

fn spread_cells(s: &Option<Spread>, f: impl Fn(f64) -> String) -> [String; 3] {
    match s {
        Some(s) => [f(s.median), f(s.min), f(s.max)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// The table: each repetition, the totals with the ratio, and the stages.
pub fn render(b: &BootBench, peer_name: Option<&str>) -> String {
    let peer = peer_name.unwrap_or("peer");
    let mut out = String::new();
    let row = |cells: [String; 5]| {
        let [rep, order, lab, peer, ratio] = cells;
        match peer_name {
            Some(_) => format!("{rep:>4}  {order:<10}  {lab:>8}  {peer:>8}  {ratio:>7}\n"),
            None => format!("{rep:>4}  {lab:>8}\n"),
        }
    };
    out.push_str(&row([
        "rep".into(),
        "order".into(),
        "lab s".into(),
        format!("{peer} s"),
        "ratio".into(),
    ]));
    for r in &b.reps {
        let peer_s = match &r.peer {
            Some(p) if p.ok => secs(p.wall_ms),
            Some(_) => "failed".into(),
            None => "-".into(),
        };
        let lab_s = if r.lab.passed {
            secs(r.lab.wall_ms)
        } else {
            format!("{} FAIL", secs(r.lab.wall_ms))
        };
        out.push_str(&row([
            r.rep.to_string(),
            r.order.join(","),
            lab_s,
            peer_s,
            r.ratio().map(|x| format!("{x:.2}")).unwrap_or("-".into()),
        ]));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<28}  {:>8}  {:>8}  {:>8}\n",
        "", "median", "min", "max"
    ));
    let rows = [
        ("lab up (s)", spread_cells(&b.summary.lab_ms, secs)),
        (
            &*format!("{peer} (s)"),
            spread_cells(&b.summary.peer_ms, secs),
        ),
        (
            &*format!("ratio lab / {peer}"),
            spread_cells(&b.summary.ratio, |x| format!("{x:.2}")),
        ),
        (
            "cargo's own start (s)",
            spread_cells(&b.summary.cargo_ms, secs),
        ),
        (
            &*format!("ratio (cargo + lab) / {peer}"),
            spread_cells(&b.summary.ratio_with_cargo, |x| format!("{x:.2}")),
        ),
    ];
    for (name, [m, lo, hi]) in rows {
        let ours = name == "lab up (s)" || name.starts_with("cargo's");
        let unmeasured = name.starts_with("cargo's") && b.summary.cargo_ms.is_none()
            || name.starts_with("ratio (cargo") && b.summary.ratio_with_cargo.is_none();
        if (peer_name.is_none() && !ours) || unmeasured {
            continue;
        }
        out.push_str(&format!("{name:<28}  {m:>8}  {lo:>8}  {hi:>8}\n"));
    }
    out.push('\n');
    let total: f64 = b
        .summary
        .stages
        .iter()
        .filter_map(|(_, s)| s.map(|s| s.median))
        .sum();
    out.push_str(&format!(
        "{:<28}  {:>8}  {:>8}  {:>8}  {:>6}\n",
        "where lab up's time goes", "median s", "min", "max", "share"
    ));
    for (name, s) in &b.summary.stages {
        let [m, lo, hi] = spread_cells(s, secs);
        let share = s
            .filter(|_| total > 0.0)
            .map(|s| format!("{:.0}%", s.median / total * 100.0))
            .unwrap_or("-".into());
        out.push_str(&format!(
            "{name:<28}  {m:>8}  {lo:>8}  {hi:>8}  {share:>6}\n"
        ));
    }
    out.push_str(&format!("{:<28}  {:>8}\n", "sum of medians", secs(total)));
    out
}

#[cfg(test)]
#[path = "boot_tests.rs"]
mod tests;
