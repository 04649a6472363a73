//! What a run does: which cases, in which order, which are skipped and
//! why, and the guest's setup plan derived from the topology.

use anyhow::{bail, Result};
use lab_suite::catalog::{self, Case, Hosts, Needs};
use lab_suite::plan::{PlannedMemdev, PlannedRegion, SetupPlan};
use lab_vm::qemu_args::device_serial;
use lab_vm::topology::Topology;
use std::path::Path;

/// A case as the run will treat it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub case: &'static Case,
    /// Why it will not run here, if it will not.
    pub skip: Option<String>,
}

/// What the kernel under test offers (read from its .config).
#[derive(Debug, Clone, Default)]
pub struct KernelFeatures {
    pub name: String,
    pub fmap: bool,
    /// `CONFIG_DEBUG_KMEMLEAK=y`: the run clears kmemleak after setup and scans it at the end
    /// (no other kernel is asked in the guest).
    pub kmemleak: bool,
    /// The kernel's compiled BPF selftests (its cache entry's `bpf-selftests/`), when its
    /// tree has them.
    pub bpf_selftests: Option<std::path::PathBuf>,
    /// `CONFIG_HZ`: the timer ticks per second (the loops per jiffy a TCG guest is told).
    pub hz: Option<u32>,
}

impl KernelFeatures {
    pub fn from_config(name: &str, config: &str) -> Self {
        KernelFeatures {
            name: name.to_string(),
            fmap: config.lines().any(|l| l.trim() == "CONFIG_FUSE_DAX_FMAP=y"),
            kmemleak: config
                .lines()
                .any(|l| l.trim() == "CONFIG_DEBUG_KMEMLEAK=y"),
            bpf_selftests: None,
            hz: config
                .lines()
                .find_map(|l| l.trim().strip_prefix("CONFIG_HZ="))
                .and_then(|v| v.parse().ok()),
        }
    }

    /// With the BPF selftests compiled into `dir` (a cache entry's `bpf-selftests/`), if it
    /// exists: a kernel whose tree had none has no such directory.
    pub fn with_bpf_selftests(mut self, dir: std::path::PathBuf) -> Self {
        self.bpf_selftests = dir.is_dir().then_some(dir);
        self
    }
}

/// Selects cases: `cases` (ids) if given, else every case of `suites`, else every case of
/// the default suites (on a multi-host topology: the multi-host cases); in catalog order.
/// `hosts` is the topology's number of guests: a case for another number is SKIP.
pub fn select(
    suites: &[String],
    cases: &[String],
    kernel: &KernelFeatures,
    hosts: u32,
) -> Result<Vec<Planned>> {
    for s in suites {
        if catalog::suite(s).is_none() {
            let known: Vec<_> = catalog::SUITES.iter().map(|s| s.name).collect();
            bail!("no suite {s:?} (known: {})", known.join(", "));
        }
    }
    for c in cases {
        if catalog::resolve(c).is_none() {
            bail!("no case {c:?}; cases are SUITE.NAME, e.g. smoke.memdevs (`cargo xtask lab list` shows them)");
        }
    }
    let chosen = catalog::CASES.iter().filter(|c| {
        if !cases.is_empty() {
            cases
                .iter()
                .any(|id| catalog::resolve(id).is_some_and(|r| r.id() == c.id()))
        } else if !suites.is_empty() {
            suites.iter().any(|s| s == c.suite)
        } else if hosts > 1 {
            matches!(c.hosts, Hosts::Shared(_))
        } else {
            catalog::suite(c.suite).is_some_and(|s| s.default)
        }
    });
    Ok(chosen
        .map(|case| Planned {
            case,
            skip: hosts_reason(case, hosts).or_else(|| skip_reason(case, kernel)),
        })
        .collect())
}

/// Why this kernel or topology cannot run `case_id`, known before boot: the topology has the
/// wrong number of guests, or the kernel's `.config` ([`KernelFeatures`]) lacks a feature the
/// case declares in the catalog (`needs`). None when everything the case needs is there (and
/// for ids that are not catalog cases): a SKIP of such a case is the case's own, and fails the
/// run unless `ci/expected/<kernel>.yaml` lists it. The same reasons [`select`] skips with.
pub fn skip_excuse(case_id: &str, kernel: &KernelFeatures, hosts: u32) -> Option<String> {
    let case = catalog::resolve(case_id)?;
    hosts_reason(case, hosts).or_else(|| skip_reason(case, kernel))
}

fn hosts_reason(case: &Case, hosts: u32) -> Option<String> {
    match case.hosts {
        Hosts::One if hosts > 1 => Some(format!(
            "a one-guest case; this topology boots {hosts} (run it with a one-host topology)"
        )),
        Hosts::Shared(_) if hosts < catalog::hosts_needed(&case.hosts) => Some(format!(
            "needs a topology with hosts: {} (e.g. --topology shared-2)",
            catalog::hosts_needed(&case.hosts)
        )),
        _ => None,
    }
}

fn skip_reason(case: &Case, kernel: &KernelFeatures) -> Option<String> {
    match case.needs {
        Needs::Nothing => None,
        Needs::FmapKernel if kernel.fmap => None,
        Needs::FmapKernel | Needs::BpfSelftests if !kernel.fmap => Some(format!(
            "kernel {} has no CONFIG_FUSE_DAX_FMAP (the famfs-bpf series)",
            kernel.name
        )),
        Needs::BpfSelftests if kernel.bpf_selftests.is_none() => Some(format!(
            "kernel {} has no compiled BPF selftests of the series: its tree has no \
             tools/testing/selftests/bpf/progs/fuse_dax_fmap*.c (or its cache entry predates them)",
            kernel.name
        )),
        Needs::FmapKernel | Needs::BpfSelftests => None,
    }
}

/// The guest's setup plan: every device with its serial number and backing
/// file, and the topology's regions.
pub fn setup_plan(topology: &Topology, run_dir: &Path) -> SetupPlan {
    SetupPlan {
        memdevs: topology
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| PlannedMemdev {
                id: d.id.clone(),
                serial: device_serial(i),
                size: d.size.0,
                backing: topology.backing_path(d, run_dir).display().to_string(),
            })
            .collect(),
        regions: topology
            .regions
            .iter()
            .map(|r| PlannedRegion {
                name: r.name.clone(),
                window: r.window,
                devices: r.devices.clone(),
                size: r.size.map(|s| s.0),
                granularity: r.granularity.map(|g| g.0),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock() -> KernelFeatures {
        KernelFeatures::from_config("stock", "CONFIG_FUSE_FS=y\n")
    }

    #[test]
    fn features_come_from_the_config() {
        let k =
            KernelFeatures::from_config("k", "CONFIG_FUSE_DAX_FMAP=y\nCONFIG_DEBUG_KMEMLEAK=y\n");
        assert!(k.fmap && k.kmemleak);
        let k = KernelFeatures::from_config("k", "# CONFIG_DEBUG_KMEMLEAK is not set\n");
        assert!(!k.fmap && !k.kmemleak);
    }

    #[test]
    fn default_is_the_default_suites() {
        let got = select(&[], &[], &stock(), 1).unwrap();
        assert!(!got.is_empty());
        assert!(got
            .iter()
            .all(|p| catalog::suite(p.case.suite).unwrap().default));
        assert!(got.iter().any(|p| p.case.suite == "smoke"));
        assert!(!got.iter().any(|p| p.case.suite == "selftest"));
    }

    #[test]
    fn one_case_by_id_and_unknown_names_fail_clearly() {
        let got = select(&[], &["selftest.fail".into()], &stock(), 1).unwrap();
        assert_eq!(got.len(), 1);
        let msg = select(&[], &["smoke.zzz".into()], &stock(), 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("smoke.zzz"), "{msg}");
        let msg = select(&["zzz".into()], &[], &stock(), 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("known: smoke"), "{msg}");
    }

    #[test]
    fn multi_host_topologies_run_the_shared_cases() {
        let fmap = KernelFeatures::from_config("k", "CONFIG_FUSE_DAX_FMAP=y\n");
        let two = select(&[], &[], &fmap, 2).unwrap();
        assert!(!two.is_empty());
        assert!(two
            .iter()
            .all(|p| p.case.suite == "shared" && p.skip.is_none()));
        // Asked on one guest, a shared case is SKIP and says which topology it needs.
        let one = select(&[], &["shared.ring".into()], &fmap, 1).unwrap();
        let why = one[0].skip.as_deref().unwrap_or_default();
        assert!(why.contains("hosts: 2"), "{why}");
        // And a one-guest case on two guests.
        let one = select(&[], &["fault.read_pte".into()], &fmap, 2).unwrap();
        let why = one[0].skip.as_deref().unwrap_or_default();
        assert!(why.contains("one-host topology"), "{why}");
        // One guest's defaults never include the shared suite.
        let one = select(&[], &[], &fmap, 1).unwrap();
        assert!(!one.iter().any(|p| p.case.suite == "shared"));
    }

    #[test]
    fn fmap_feature_is_read_from_the_config() {
        assert!(!stock().fmap);
        assert!(KernelFeatures::from_config("k", "CONFIG_X=y\nCONFIG_FUSE_DAX_FMAP=y\n").fmap);
        let hz = |config: &str| KernelFeatures::from_config("k", config).hz;
        assert_eq!(hz("CONFIG_HZ_250=y\nCONFIG_HZ=250\n"), Some(250));
        assert_eq!(hz("CONFIG_HZ_1000=y\n"), None);
        assert_eq!(hz("CONFIG_HZ=fast\n"), None);
    }

    #[test]
    fn bpf_selftests_need_the_series_and_its_compiled_selftests() {
        let id = "bpf_selftests.programs";
        let why = skip_excuse(id, &stock(), 1).unwrap_or_default();
        assert!(why.contains("CONFIG_FUSE_DAX_FMAP"), "{why}");
        let fmap = KernelFeatures::from_config("famfs-bpf", "CONFIG_FUSE_DAX_FMAP=y\n");
        let gone = tempfile::tempdir().unwrap().path().join("bpf-selftests");
        let without = fmap.clone().with_bpf_selftests(gone);
        let why = skip_excuse(id, &without, 1).unwrap_or_default();
        assert!(why.contains("fuse_dax_fmap*.c"), "{why}");
        let dir = tempfile::tempdir().unwrap();
        let with = fmap.with_bpf_selftests(dir.path().to_path_buf());
        assert_eq!(skip_excuse(id, &with, 1), None);
    }

    #[test]
    fn only_a_missing_feature_or_the_wrong_topology_excuses_a_skip() {
        let fmap = KernelFeatures::from_config("famfs-bpf", "CONFIG_FUSE_DAX_FMAP=y\n");
        // The stock kernel lacks what the fmap suites need; a case that needs nothing has no
        // excuse on any kernel.
        let why = skip_excuse("fault.read_pte", &stock(), 1).unwrap_or_default();
        assert!(why.contains("CONFIG_FUSE_DAX_FMAP"), "{why}");
        assert_eq!(skip_excuse("fault.read_pte", &fmap, 1), None);
        assert_eq!(skip_excuse("smoke.memdevs", &stock(), 1), None);
        assert_eq!(skip_excuse("smoke.memdevs", &fmap, 1), None);
        // Guests: a shared case on one, a one-guest case on two.
        assert!(skip_excuse("shared.ring", &fmap, 1).is_some());
        assert_eq!(skip_excuse("shared.ring", &fmap, 2), None);
        assert!(skip_excuse("smoke.memdevs", &fmap, 2).is_some());
        // Not a catalog case (the lab.* pseudo-cases): never excused.
        assert_eq!(skip_excuse("lab.boot", &stock(), 1), None);
        // The planner skips exactly the excused cases.
        for p in select(&[], &[], &fmap, 1).unwrap() {
            assert_eq!(
                p.skip,
                skip_excuse(&p.case.id(), &fmap, 1),
                "{}",
                p.case.id()
            );
        }
    }

    #[test]
    fn plan_follows_the_topology() {
        let topo = Topology::load_named("two-devices").unwrap();
        let plan = setup_plan(&topo, Path::new("/run/x"));
        assert_eq!(plan.memdevs.len(), topo.devices.len());
        assert_eq!(plan.memdevs[1].serial, device_serial(1));
        assert!(plan.memdevs[0].backing.starts_with("/run/x/"));
        assert_eq!(plan.regions.len(), topo.regions.len());
    }
}
