//! `bench.json`: every cell's statistics, ratios and checks, computed from the guest's samples,
//! plus the run it came from (accelerator, clock, CPU, kernel: what makes two runs comparable).
//! Under `--clock icount` every time is converted to guest instructions (unit `insn`).

use crate::position::{self, PositionEffect};
use crate::stats::{self, CellStats};
use anyhow::{Context, Result};
use lab_suite::benchdata::{
    CellSamples, FaultConfig, FaultSizes, Rep, RoundOrder, Samples, Size, Workload, BASELINE, FLOOR,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when a field changes meaning (2: clock, units, rotation, positions, breakdown).
pub const VERSION: u32 = 2;

/// Where the numbers come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    /// `tcg` or `kvm`.
    pub accel: String,
    pub kernel: String,
    /// The kernel's cache key (its content hash).
    pub kernel_hash: String,
    pub topology: String,
    pub started_at: String,
    /// `host` (wall clock) or `icount` (guest instructions); files of version 1 were `host`.
    #[serde(default = "host_clock")]
    pub clock: String,
    /// `-icount shift=N` (one instruction = 2^N guest ns).
    #[serde(default)]
    pub icount_shift: Option<u8>,
    /// The host's CPU (`model name` of /proc/cpuinfo); empty if unknown.
    #[serde(default)]
    pub cpu: String,
    /// The guest's CPU model (QEMU `-cpu`).
    #[serde(default)]
    pub guest_cpu: String,
    /// `qemu-system-x86_64 --version`, first line.
    #[serde(default)]
    pub qemu: String,
    /// What the bench changed in the guest (`cpus=1 cmdline=norandmaps nokaslr`).
    #[serde(default)]
    pub guest: String,
}

fn host_clock() -> String {
    "host".into()
}

impl RunInfo {
    /// The unit of every time in the report: guest instructions under icount, else ns.
    pub fn unit(&self) -> &'static str {
        if self.clock == "icount" {
            "insn"
        } else {
            "ns"
        }
    }

    /// The clock as the table and compare print it (`host`, `icount shift=0`).
    pub fn clock_label(&self) -> String {
        match self.icount_shift {
            Some(s) if self.clock == "icount" => format!("icount shift={s}"),
            _ => self.clock.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub resolver: String,
    pub workload: Workload,
    /// Faults per repetition.
    pub faults: u32,
    pub stats: Option<CellStats>,
    /// The cost relative to `famfs_native` on the same workload: the median over the rounds of
    /// (this cell's median / native's median in that round); p50 / p50 if no round pairs.
    pub ratio_native: Option<f64>,
    /// The per-round ratios to `famfs_native`.
    #[serde(default)]
    pub ratio_native_rounds: Vec<f64>,
    /// The same relative to the floor (raw device_dax) on the same faults.
    pub ratio_floor: Option<f64>,
    /// What a fault costs over `famfs_native`'s (unit of the report; median over the rounds of
    /// the difference of the rounds' medians).
    #[serde(default)]
    pub added_native: Option<f64>,
    /// The same over the floor's.
    #[serde(default)]
    pub added_floor: Option<f64>,
    /// Whether the ratio (to native; native's: to the floor) depends on the unit's position
    /// in the round.
    #[serde(default)]
    pub position: Option<PositionEffect>,
    /// The BPF programs' own run time per call in the probe repetition (bpf stats; unit of
    /// the report).
    pub bpf_ns_per_call: Option<f64>,
    /// What the kernel says the faults were, e.g. `PTE 256/256`; `!` marks a mismatch.
    pub fault_size: Option<String>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// A resolver's ratio to `famfs_native` over all cells of one fault size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioSummary {
    pub resolver: String,
    pub size: Size,
    /// Geometric mean of the cells' `ratio_native`.
    pub ratio_native: Option<f64>,
    pub ratio_floor: Option<f64>,
    /// Median of the cells' `added_native` / `added_floor`.
    #[serde(default)]
    pub added_native: Option<f64>,
    #[serde(default)]
    pub added_floor: Option<f64>,
    pub cells: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub version: u32,
    pub run: RunInfo,
    pub config: Option<FaultConfig>,
    pub bpf_stats: bool,
    pub tracepoints: bool,
    pub notes: Vec<String>,
    pub cells: Vec<Cell>,
    pub summary: Vec<RatioSummary>,
    /// The order of the units in every round.
    #[serde(default)]
    pub rounds: Vec<RoundOrder>,
}

impl BenchReport {
    /// Statistics, ratios and summaries of the guest's samples (under icount: in guest
    /// instructions, the guest's ns shifted right by the icount shift).
    pub fn from_samples(run: RunInfo, s: &Samples) -> BenchReport {
        let converted;
        let s = match run.icount_shift.filter(|&k| k > 0 && run.clock == "icount") {
            Some(k) => {
                converted = to_instructions(s, k);
                &converted
            }
            None => s,
        };
        let stats: BTreeMap<(String, Workload), Option<CellStats>> = s
            .cells
            .iter()
            .map(|c| {
                (
                    (c.resolver.clone(), c.workload.clone()),
                    stats::summarize(&c.reps),
                )
            })
            .collect();
        let reps: BTreeMap<(String, Workload), &[Rep]> = s
            .cells
            .iter()
            .map(|c| ((c.resolver.clone(), c.workload.clone()), c.reps.as_slice()))
            .collect();
        let p50 = |r: &str, w: &Workload| {
            stats
                .get(&(r.to_string(), w.clone()))
                .and_then(|s| s.as_ref())
                .map(|s| s.p50)
        };
        let cells: Vec<Cell> = s
            .cells
            .iter()
            .map(|c| {
                let own = p50(&c.resolver, &c.workload);
                // paired by round if possible, else p50 over p50
                let rel = |r: &str, w: &Workload| {
                    let other = reps
                        .get(&(r.to_string(), w.clone()))
                        .copied()
                        .unwrap_or(&[]);
                    match stats::paired_ratio(&c.reps, other) {
                        Some((m, per)) => (Some(m), per),
                        None => (stats::ratio(own, p50(r, w)), Vec::new()),
                    }
                };
                let (ratio_native, ratio_native_rounds) = if c.resolver == FLOOR {
                    (None, Vec::new())
                } else {
                    rel(BASELINE, &c.workload)
                };
                let other = |r: &str, w: &Workload| {
                    reps.get(&(r.to_string(), w.clone()))
                        .copied()
                        .unwrap_or(&[])
                };
                let added = |r: &str, w: &Workload| {
                    (c.resolver != FLOOR && c.resolver != r)
                        .then(|| stats::paired_difference(&c.reps, other(r, w)))
                        .flatten()
                };
                // the order effect on the ratio to native (native's own: to the floor)
                let reference = if c.resolver == BASELINE {
                    other(FLOOR, &c.workload.floor())
                } else {
                    other(BASELINE, &c.workload)
                };
                let by_position: Vec<(u32, f64)> = stats::round_ratios(&c.reps, reference)
                    .into_iter()
                    .filter_map(|(_, p, r)| Some((p?, r)))
                    .collect();
                let position = (c.resolver != FLOOR)
                    .then(|| position::effect(&by_position))
                    .flatten();
                Cell {
                    resolver: c.resolver.clone(),
                    workload: c.workload.clone(),
                    faults: c.faults,
                    stats: stats
                        .get(&(c.resolver.clone(), c.workload.clone()))
                        .cloned()
                        .flatten(),
                    ratio_native,
                    ratio_native_rounds,
                    ratio_floor: if c.resolver == FLOOR {
                        None
                    } else {
                        rel(FLOOR, &c.workload.floor()).0
                    },
                    added_native: added(BASELINE, &c.workload),
                    added_floor: added(FLOOR, &c.workload.floor()),
                    position,
                    bpf_ns_per_call: c
                        .bpf
                        .as_ref()
                        .filter(|b| b.calls > 0)
                        .map(|b| b.run_ns as f64 / b.calls as f64),
                    fault_size: fault_size(c),
                    notes: c.notes.clone(),
                    error: c.error.clone(),
                }
            })
            .collect();
        let summary = summarize_ratios(&cells);
        BenchReport {
            version: VERSION,
            run,
            config: s.config.clone(),
            bpf_stats: s.bpf_stats,
            tracepoints: s.tracepoints,
            notes: s.notes.clone(),
            cells,
            summary,
            rounds: s.rounds.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<BenchReport> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a bench.json of lab-bench", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The resolvers in the order of the config (floor first), then any others.
    pub fn resolvers(&self) -> Vec<String> {
        let mut v = vec![FLOOR.to_string()];
        if let Some(c) = &self.config {
            v.extend(c.resolvers.iter().cloned());
        }
        for c in &self.cells {
            if !v.contains(&c.resolver) {
                v.push(c.resolver.clone());
            }
        }
        v.retain(|r| self.cells.iter().any(|c| &c.resolver == r));
        v
    }
}

fn summarize_ratios(cells: &[Cell]) -> Vec<RatioSummary> {
    let mut out = Vec::new();
    let mut resolvers: Vec<&str> = Vec::new();
    for c in cells {
        if c.resolver != FLOOR && !resolvers.contains(&c.resolver.as_str()) {
            resolvers.push(&c.resolver);
        }
    }
    for r in resolvers {
        for size in [Size::Pte, Size::Pmd, Size::Open] {
            let mine: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.resolver == r && c.workload.size == size)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let native: Vec<f64> = mine.iter().filter_map(|c| c.ratio_native).collect();
            let floor: Vec<f64> = mine.iter().filter_map(|c| c.ratio_floor).collect();
            let add_n: Vec<f64> = mine.iter().filter_map(|c| c.added_native).collect();
            let add_f: Vec<f64> = mine.iter().filter_map(|c| c.added_floor).collect();
            out.push(RatioSummary {
                resolver: r.to_string(),
                size,
                ratio_native: stats::geomean(&native),
                ratio_floor: stats::geomean(&floor),
                added_native: stats::median(&add_n),
                added_floor: stats::median(&add_f),
                cells: native.len(),
            });
        }
    }
    out
}

/// The samples with every time (touches, bpf run time) shifted right by `shift`: guest ns under
/// `-icount shift=N` to instructions.
fn to_instructions(s: &Samples, shift: u8) -> Samples {
    let mut s = s.clone();
    for c in &mut s.cells {
        for r in &mut c.reps {
            for v in r.first_ns.iter_mut().chain(r.second_ns.iter_mut()) {
                *v >>= shift;
            }
        }
        if let Some(b) = &mut c.bpf {
            b.run_ns >>= shift;
        }
    }
    s
}

/// `PTE 256/256`, `PMD 8/8`, `PMD 6/8 fallback 2 !`; from smaps when there are no tracepoints.
fn fault_size(c: &CellSamples) -> Option<String> {
    let s: &FaultSizes = c.sizes.as_ref()?;
    let n = u64::from(c.faults);
    match (s.pte, s.pmd, c.workload.size) {
        (_, _, Size::Open) => None,
        (Some(pte), Some(pmd), size) => {
            let (got, name, other) = match size {
                Size::Pmd => (pmd, "PMD", pte),
                _ => (pte, "PTE", pmd),
            };
            let (fb, failed) = (s.fallback.unwrap_or(0), s.failed.unwrap_or(0));
            let mut t = format!("{name} {got}/{n}");
            if other > 0 {
                t.push_str(&format!(
                    " {} {other}",
                    if name == "PTE" { "PMD" } else { "PTE" }
                ));
            }
            if fb > 0 {
                t.push_str(&format!(" fallback {fb}"));
            }
            if failed > 0 {
                t.push_str(&format!(" failed {failed}"));
            }
            if got != n || other > 0 || failed > 0 {
                t.push_str(" !");
            }
            Some(t)
        }
        // No tracepoints (the raw device has none): the mapping's Rss after n touches is n x 4 KiB
        // for PTE faults, n x 2 MiB for PMD faults (smaps' FilePmdMapped does not count DAX).
        (_, _, size) => {
            let rss = s.smaps_rss_kib?;
            let (name, per) = if size == Size::Pmd {
                ("PMD", 2048)
            } else {
                ("PTE", 4)
            };
            let mark = if rss == n * per { "" } else { " !" };
            Some(format!("{name} {}/{n} (Rss {rss}K){mark}", rss / per))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::benchdata::{Access, BpfRun, Order};

    fn cell(resolver: &str, w: &Workload, first: &[u64]) -> CellSamples {
        CellSamples {
            resolver: resolver.into(),
            workload: w.clone(),
            faults: first.len() as u32,
            reps: vec![Rep {
                round: 1,
                position: None,
                first_ns: first.to_vec(),
                second_ns: vec![0; first.len()],
            }],
            sizes: None,
            bpf: None,
            notes: vec![],
            error: None,
        }
    }

    #[test]
    fn ratios_to_native_and_floor() {
        let w = Workload::new(Size::Pte, Order::Seq, Access::Read, "simple");
        let wi = Workload::new(Size::Pte, Order::Seq, Access::Read, "il");
        let mut famfs = cell("famfs", &w, &[300, 300, 300]);
        famfs.bpf = Some(BpfRun {
            calls: 4,
            run_ns: 1000,
        });
        famfs.sizes = Some(FaultSizes {
            pte: Some(3),
            pmd: Some(0),
            ..FaultSizes::default()
        });
        let s = Samples {
            cells: vec![
                cell(FLOOR, &w.floor(), &[100, 100, 100]),
                cell(BASELINE, &w, &[200, 200, 200]),
                famfs,
                cell("famfs", &wi, &[500, 500, 500]),
                cell(BASELINE, &wi, &[250, 250, 250]),
            ],
            ..Samples::default()
        };
        let r = BenchReport::from_samples(RunInfo::default(), &s);
        let f = &r.cells[2];
        assert_eq!(f.ratio_native, Some(1.5));
        assert_eq!(f.ratio_floor, Some(3.0));
        assert_eq!(f.bpf_ns_per_call, Some(250.0));
        assert_eq!(f.fault_size.as_deref(), Some("PTE 3/3"));
        assert_eq!(r.cells[1].ratio_native, Some(1.0));
        assert_eq!(r.cells[0].ratio_native, None);
        // famfs PTE: geomean(1.5, 2.0) = sqrt(3)
        let sum = r
            .summary
            .iter()
            .find(|x| x.resolver == "famfs" && x.size == Size::Pte)
            .unwrap();
        assert!((sum.ratio_native.unwrap() - 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(sum.cells, 2);
        assert_eq!(r.resolvers(), vec![FLOOR, BASELINE, "famfs"]);
    }

    #[test]
    fn fault_size_labels() {
        let w = Workload::new(Size::Pmd, Order::Seq, Access::Read, "il");
        let mut c = cell("famfs", &w, &[1, 1, 1, 1]);
        c.sizes = Some(FaultSizes {
            pte: Some(0),
            pmd: Some(3),
            fallback: Some(1),
            failed: Some(0),
            ..FaultSizes::default()
        });
        assert_eq!(fault_size(&c).as_deref(), Some("PMD 3/4 fallback 1 !"));
        c.sizes = Some(FaultSizes {
            smaps_rss_kib: Some(8192),
            smaps_pmd_kib: Some(0),
            ..FaultSizes::default()
        });
        assert_eq!(fault_size(&c).as_deref(), Some("PMD 4/4 (Rss 8192K)"));
        c.sizes = Some(FaultSizes {
            smaps_rss_kib: Some(16),
            ..FaultSizes::default()
        });
        assert_eq!(fault_size(&c).as_deref(), Some("PMD 0/4 (Rss 16K) !"));
    }
}
