//! The fault-path benchmark's exchange with the host (`cargo xtask lab bench fault`): the host
//! hands its settings to the `bench.fault` case in [`CONFIG_ENV`] (JSON), the case writes raw
//! per-touch timings to `/results/` [`SAMPLES_FILE`], the host computes the statistics.
//!
//! One cell is one resolver (fmap ops, or the raw device) running one workload. A repetition of
//! a cell touches `n` pages twice in the same order on one fresh mapping: the first touch
//! faults, the second finds the page mapped and costs only the memory access (MMIO under TCG).
//! The per-touch times of both are kept; fault cost = first - second, page by page.

use serde::{Deserialize, Serialize};

/// The environment variable carrying [`FaultConfig`] as JSON (a `FAMFS_LAB_*` variable, so the
/// runner passes it from the host's environment to the case).
pub const CONFIG_ENV: &str = "FAMFS_LAB_BENCH_FAULT";
/// The samples file in the results share.
pub const SAMPLES_FILE: &str = "bench.fault.samples.json";
/// The resolver name of the floor: the same faults on the raw dax device (device_dax).
pub const FLOOR: &str = "device_dax";
/// The resolver every ratio is taken against.
pub const BASELINE: &str = "famfs_native";
/// The breakdown variants (fault benchmark only, famfs-fused's bpf/): `famfs_direct` (famfs's
/// logic, meta by plain loads, no kfunc), `famfs_kfunc` (one kfunc call, no logic),
/// `famfs_trivial` (no kfunc, no logic). Together with `famfs` they show where the BPF cost is.
pub const BREAKDOWN: &[&str] = &["famfs_direct", "famfs_kfunc", "famfs_trivial"];
/// Resolvers that map only files of one simple extent (the `one` files): run on those only.
pub const ONE_EXTENT_ONLY: &[&str] = &["famfs_kfunc", "famfs_trivial"];
/// The files a fault workload of `resolver` runs on (the floor: `dev`).
pub fn files_of(resolver: &str) -> &'static [&'static str] {
    if resolver == FLOOR {
        &["dev"]
    } else if ONE_EXTENT_ONLY.contains(&resolver) {
        &["one"]
    } else {
        &["simple", "il", "one"]
    }
}

/// The order the units (the floor and the resolvers) run in, in timed round `round` (1-based):
/// `units` rotated left by `round - 1`, so over `units.len()` rounds each unit takes every
/// position once. Rounds before the timed ones (probe, warm-up: 0) keep `units` as they are.
pub fn rotation<T: Clone>(units: &[T], round: u32) -> Vec<T> {
    if units.is_empty() {
        return Vec::new();
    }
    let k = (round.saturating_sub(1) as usize) % units.len();
    units[k..].iter().chain(&units[..k]).cloned().collect()
}

/// What the host asks the guest to measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultConfig {
    /// Timed repetitions of every cell.
    pub reps: u32,
    /// 4 KiB pages touched per PTE workload.
    pub pte_pages: u32,
    /// 2 MiB pages touched per PMD workload.
    pub pmd_pages: u32,
    /// Files opened per open workload.
    pub open_files: u32,
    /// fmap ops to mount with, in order (`famfs_native`, `famfs`, ...).
    pub resolvers: Vec<String>,
    /// Also measure the floor (raw device_dax).
    pub floor: bool,
    /// Untimed warm-up rounds after the probe: every unit faults every workload once, so no
    /// timed round pays for a first run of a code path (TCG translation, caches).
    #[serde(default = "one")]
    pub warmup: u32,
}

fn one() -> u32 {
    1
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            reps: 5,
            pte_pages: 256,
            pmd_pages: 20,
            open_files: 8,
            resolvers: vec![
                "famfs_native".into(),
                "famfs".into(),
                "famfs_maplookup".into(),
            ],
            floor: true,
            warmup: 1,
        }
    }
}

/// What a workload faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// 4 KiB pages (MADV_NOHUGEPAGE).
    Pte,
    /// 2 MiB pages.
    Pmd,
    /// open + mmap + first fault of a file.
    Open,
}

/// The order of the touches (for `Open`: whether the inode was cached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Seq,
    Rand,
    /// Open: the inode (and its fmap) dropped before (GET_FMAP + parse on open).
    Cold,
    /// Open: the inode and its fmap cached.
    Cached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Write,
}

/// One workload: `pte.seq.read.simple`, `pmd.rand.write.il`, `open.cold.read.files`, ...
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Workload {
    pub size: Size,
    pub order: Order,
    pub access: Access,
    /// `simple`, `il` (2-way interleaved), `files` (the open workloads' files) or `dev` (floor).
    pub file: String,
}

impl Workload {
    pub fn new(size: Size, order: Order, access: Access, file: &str) -> Workload {
        Workload {
            size,
            order,
            access,
            file: file.into(),
        }
    }

    /// The floor's workload this one compares with (same faults on the raw device).
    pub fn floor(&self) -> Workload {
        let order = match self.order {
            Order::Cold | Order::Cached => Order::Cached,
            o => o,
        };
        Workload::new(self.size, order, self.access, "dev")
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).unwrap_or_default();
        let part = |k: &str| s[k].as_str().unwrap_or("?").to_string();
        write!(
            f,
            "{}.{}.{}.{}",
            part("size"),
            part("order"),
            part("access"),
            self.file
        )
    }
}

/// One repetition: nanoseconds of each touch, in touch order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rep {
    /// The round (1..=reps) it ran in: every resolver runs once per round, so cells of one
    /// round ran close in time and their ratio is paired.
    #[serde(default)]
    pub round: u32,
    /// Where its unit ran in that round (0: first; [`RoundOrder`]).
    #[serde(default)]
    pub position: Option<u32>,
    pub first_ns: Vec<u64>,
    pub second_ns: Vec<u64>,
}

/// What the kernel says the faults of the (untimed) probe repetition were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSizes {
    /// PTE faults that mapped (fs_dax tracepoints); None without them.
    pub pte: Option<u64>,
    /// PMD faults that mapped a 2 MiB page.
    pub pmd: Option<u64>,
    /// PMD faults that fell back to PTEs.
    pub fallback: Option<u64>,
    /// Faults that failed.
    pub failed: Option<u64>,
    /// /proc/self/smaps of the mapping: Rss and FilePmdMapped in KiB.
    pub smaps_rss_kib: Option<u64>,
    pub smaps_pmd_kib: Option<u64>,
}

/// The BPF programs' own time in the probe repetition (`kernel.bpf_stats_enabled`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfRun {
    pub calls: u64,
    pub run_ns: u64,
}

/// One cell's raw data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSamples {
    pub resolver: String,
    pub workload: Workload,
    /// Faults (touches) per repetition.
    pub faults: u32,
    pub reps: Vec<Rep>,
    #[serde(default)]
    pub sizes: Option<FaultSizes>,
    #[serde(default)]
    pub bpf: Option<BpfRun>,
    /// Counters worth keeping (GET_FMAP during the cold opens, ...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Why the cell has no (or too few) samples.
    #[serde(default)]
    pub error: Option<String>,
}

/// What a round is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Round 0: tracepoints and bpf stats on, fault sizes recorded, nothing timed.
    Probe,
    /// Untimed: every code path faulted once more before the timed rounds.
    Warmup,
    /// Timed.
    Timed,
}

/// The order the units ran in, one per round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundOrder {
    /// 0 for the probe and warm-ups, 1..=reps for the timed rounds.
    pub round: u32,
    pub phase: Phase,
    pub order: Vec<String>,
}

/// The samples file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    pub config: Option<FaultConfig>,
    pub cells: Vec<CellSamples>,
    /// What the guest could not measure (no tracepoints, no bpf stats, ...).
    pub notes: Vec<String>,
    /// Whether bpf stats (`kernel.bpf_stats_enabled`) were available.
    pub bpf_stats: bool,
    /// Whether the fs_dax tracepoints were available.
    pub tracepoints: bool,
    /// Every round's order of the units, in the order the rounds ran.
    #[serde(default)]
    pub rounds: Vec<RoundOrder>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_and_floor() {
        let w = Workload::new(Size::Pmd, Order::Rand, Access::Write, "il");
        assert_eq!(w.to_string(), "pmd.rand.write.il");
        assert_eq!(w.floor().to_string(), "pmd.rand.write.dev");
        let o = Workload::new(Size::Open, Order::Cold, Access::Read, "files");
        assert_eq!(o.floor().to_string(), "open.cached.read.dev");
    }

    #[test]
    fn rotation_puts_every_unit_in_every_position() {
        let u = ["dev", "native", "famfs", "map"];
        assert_eq!(rotation(&u, 0), u);
        assert_eq!(rotation(&u, 1), u);
        assert_eq!(rotation(&u, 2), ["native", "famfs", "map", "dev"]);
        assert_eq!(rotation(&u, 4), ["map", "dev", "native", "famfs"]);
        assert_eq!(rotation(&u, 5), u);
        for unit in u {
            let mut positions: Vec<usize> = (1..=4)
                .map(|r| rotation(&u, r).iter().position(|x| *x == unit).unwrap())
                .collect();
            positions.sort();
            assert_eq!(positions, [0, 1, 2, 3], "{unit}");
        }
        assert!(rotation::<&str>(&[], 3).is_empty());
    }

    #[test]
    fn files_per_resolver() {
        assert_eq!(files_of(FLOOR), ["dev"]);
        assert_eq!(files_of("famfs_trivial"), ["one"]);
        assert_eq!(files_of("famfs"), ["simple", "il", "one"]);
        assert_eq!(files_of("famfs_direct"), ["simple", "il", "one"]);
    }

    #[test]
    fn old_samples_and_configs_still_parse() {
        let c: FaultConfig = serde_json::from_str(
            r#"{"reps":3,"pte_pages":8,"pmd_pages":2,"open_files":1,"resolvers":[],"floor":true}"#,
        )
        .unwrap();
        assert_eq!(c.warmup, 1);
        let r: Rep = serde_json::from_str(r#"{"round":2,"first_ns":[1],"second_ns":[0]}"#).unwrap();
        assert_eq!(r.position, None);
    }

    #[test]
    fn config_round_trips() {
        let c = FaultConfig::default();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<FaultConfig>(&text).unwrap(), c);
        assert_eq!(c.reps, 5);
    }
}
