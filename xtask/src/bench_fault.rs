//! `cargo xtask lab bench fault`: one `lab up` of the `bench.fault` case with the settings in
//! `FAMFS_LAB_BENCH_FAULT`, then lab-bench's statistics over the guest's raw timings: the table
//! on stdout, `bench.json` and `bench-fault.svg` in the run directory, and with `--compare
//! OLD.json` the change per cell. `--report NEW.json` skips the run and reads a bench.json.
//! `--clock icount` runs the guest under QEMU's instruction counter (TCG, `-icount`): every
//! time is then in guest instructions, the same from run to run.

use anyhow::{bail, Context, Result};
use clap::Args;
use lab_bench::model::{BenchReport, RunInfo};
use lab_suite::benchdata::{FaultConfig, Samples, BREAKDOWN, CONFIG_ENV, SAMPLES_FILE};
use std::path::PathBuf;
use xshell::Shell;

const CASE: &str = "bench.fault";

#[derive(Args, Debug)]
pub struct FaultArgs {
    #[command(flatten)]
    pub kernel: crate::build_args::BuildArgs,
    /// A topology name (lab/topologies/NAME.yaml) or a path to one.
    #[arg(long, default_value = "default")]
    pub topology: String,
    /// Timed repetitions (rounds) of every cell, after the probe and the warm-up; default: each
    /// unit (floor and resolvers) once in every position under icount (deterministic), twice
    /// on the wall clock (so an order effect can be told from noise).
    #[arg(long)]
    pub reps: Option<u32>,
    /// Untimed warm-up rounds after the probe (every unit faults every workload).
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Guest time: `host` (wall clock, ns) or `icount` (QEMU -icount under TCG: guest
    /// instructions, deterministic; cannot see cache misses or memory latency).
    #[arg(long, value_enum, default_value_t = ClockMode::Host)]
    pub clock: ClockMode,
    /// With --clock icount: one guest instruction is 2^N guest ns (0: a guest ns is an
    /// instruction).
    #[arg(long, default_value_t = 0)]
    pub icount_shift: u8,
    /// Leave out the breakdown variants (famfs_direct, famfs_kfunc, famfs_trivial).
    #[arg(long)]
    pub no_breakdown: bool,
    /// The guest's vCPUs (default: 1 under icount, else the topology's).
    #[arg(long)]
    pub cpus: Option<u32>,
    /// With --compare: compare even runs of different accelerators, clocks or CPUs.
    #[arg(long)]
    pub allow_unlike: bool,
    /// 4 KiB pages faulted per PTE workload.
    #[arg(long, default_value_t = 256)]
    pub pte_pages: u32,
    /// 2 MiB pages faulted per PMD workload. Not 16: fs-dax's page-cache tree of a file grows a
    /// level when an entry at 16 MiB (index 4096) goes in, and a sequential read's faults after
    /// cost ~80 more instructions; 16 pages split 8/8 between the two and put the p50 on the
    /// edge (it flipped between runs on one outlier). With 20 the p50 is a fault in the deeper
    /// tree, as in most of a big file; the files (40 MiB) still fit the two-devices topology's
    /// 512 MiB device. The PTE workloads spread their pages over the same file length.
    #[arg(long, default_value_t = 20)]
    pub pmd_pages: u32,
    /// Files opened per open workload (cold and cached).
    #[arg(long, default_value_t = 8)]
    pub open_files: u32,
    /// The resolvers (fmap ops); the breakdown variants are added unless --no-breakdown.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "famfs_native,famfs,famfs_maplookup"
    )]
    pub resolvers: Vec<String>,
    /// Also run `famfs_slow` (famfs plus a busy loop in iomap_begin): a known slowdown the
    /// table must show.
    #[arg(long)]
    pub slow: bool,
    /// Leave out the floor (the same faults on the raw device_dax device).
    #[arg(long)]
    pub no_floor: bool,
    /// Print the change of every cell against this earlier bench.json.
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Do not run: read this bench.json (with --compare: compare two files).
    #[arg(long, value_name = "NEW.json")]
    pub report: Option<PathBuf>,
    /// Also write the summary chart (SVG) of the run or of --report here.
    #[arg(long, value_name = "SVG")]
    pub chart: Option<PathBuf>,
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
}

/// Kernel arguments of an icount run: no address-space randomization (user mappings, kernel
/// image), so a fault takes the same path (page-table pages to allocate, alignments) on every
/// boot, and the instruction counts repeat from run to run.
pub const ICOUNT_CMDLINE: &str = "norandmaps nokaslr";

/// How the guest is set up beyond the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub cpus: Option<u32>,
    pub cmdline: &'static str,
}

impl Guest {
    /// As bench.json records it (`cpus=1 cmdline=norandmaps nokaslr`; empty for the defaults).
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(n) = self.cpus {
            v.push(format!("cpus={n}"));
        }
        if !self.cmdline.is_empty() {
            v.push(format!("cmdline={}", self.cmdline));
        }
        v.join(" ")
    }
}

/// `--clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClockMode {
    Host,
    Icount,
}

impl FaultArgs {
    /// The guest clock asked for.
    pub fn clock(&self) -> Result<lab_vm::Clock> {
        match self.clock {
            ClockMode::Host => Ok(lab_vm::Clock::Host),
            ClockMode::Icount => {
                lab_vm::Clock::icount(self.icount_shift).map_err(|e| anyhow::anyhow!("{e}"))
            }
        }
    }

    /// The guest under `clock`: under icount one vCPU (QEMU runs the vCPUs in turn on one
    /// thread anyway; with one, a task that waits for another, e.g. an open waiting for the
    /// FUSE server, hands over instead of idling a vCPU, whose idle time icount skips to the
    /// next timer) and no randomization ([`ICOUNT_CMDLINE`]).
    pub fn guest(&self, clock: lab_vm::Clock) -> Guest {
        match clock {
            lab_vm::Clock::Icount { .. } => Guest {
                cpus: self.cpus.or(Some(1)),
                cmdline: ICOUNT_CMDLINE,
            },
            lab_vm::Clock::Host => Guest {
                cpus: self.cpus,
                cmdline: "",
            },
        }
    }

    fn config(&self) -> Result<FaultConfig> {
        let per_position = match self.clock {
            ClockMode::Icount => 1,
            ClockMode::Host => 2,
        };
        let mut resolvers = self.resolvers.clone();
        if self.slow && !resolvers.iter().any(|r| r == "famfs_slow") {
            resolvers.push("famfs_slow".into());
        }
        if !self.no_breakdown {
            for b in BREAKDOWN {
                if !resolvers.iter().any(|r| r == b) {
                    resolvers.push(b.to_string());
                }
            }
        }
        let units = resolvers.len() as u32 + u32::from(!self.no_floor);
        let reps = self.reps.unwrap_or(per_position * units.max(1));
        if reps == 0 {
            bail!("--reps must be at least 1");
        }
        if self.pte_pages == 0 || self.pmd_pages == 0 || self.open_files == 0 {
            bail!("--pte-pages, --pmd-pages and --open-files must be at least 1");
        }
        Ok(FaultConfig {
            reps,
            warmup: self.warmup,
            pte_pages: self.pte_pages,
            pmd_pages: self.pmd_pages,
            open_files: self.open_files,
            resolvers,
            floor: !self.no_floor,
        })
    }
}

pub fn run(sh: &Shell, args: FaultArgs) -> Result<()> {
    let old = match &args.compare {
        Some(p) => Some(BenchReport::load(p)?),
        None => None,
    };
    let new = match &args.report {
        Some(p) => BenchReport::load(p)?,
        None => measure(sh, &args)?,
    };
    if args.report.is_some() {
        print!("{}", lab_bench::table::render(&new));
    }
    if let Some(svg) = &args.chart {
        lab_bench::chart::write_summary_svg(&new, svg)?;
        lab_host::progress!("famfs-lab: wrote {}", svg.display());
    }
    if let Some(old) = old {
        lab_bench::compare::check_alike(&old, &new, args.allow_unlike)?;
        println!();
        print!("{}", lab_bench::compare::render(&old, &new));
    }
    Ok(())
}

/// Runs the case, computes and writes everything, prints the table.
fn measure(sh: &Shell, args: &FaultArgs) -> Result<BenchReport> {
    let cfg = args.config()?;
    let clock = args.clock()?;
    let guest = args.guest(clock);
    // The runner hands FAMFS_LAB_* variables of this process to every case.
    std::env::set_var(CONFIG_ENV, serde_json::to_string(&cfg)?);
    let up = crate::up::UpArgs {
        cases: vec![CASE.into()],
        cmdline: guest.cmdline.to_string(),
        clock,
        cpus: guest.cpus,
        ..crate::up::UpArgs::driven(
            args.kernel.clone(),
            &args.topology,
            crate::ops::Ops::Famfs,
            args.boot_timeout,
        )
    };
    let report = crate::up::up_report(sh, &up)?;
    let run_dir = lab_host::paths::runs_dir().join(&report.run_id);
    let samples_path = run_dir.join("results").join(SAMPLES_FILE);
    let text = std::fs::read_to_string(&samples_path).with_context(|| {
        let outcome = report
            .suites
            .iter()
            .flat_map(|s| &s.cases)
            .map(|c| {
                format!(
                    "{}: {:?} {}",
                    c.name,
                    c.outcome,
                    c.reason.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "reading {} (the {CASE} case writes it; its outcome: {outcome}; serial log in {})",
            samples_path.display(),
            run_dir.display()
        )
    })?;
    let samples: Samples = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", samples_path.display()))?;
    let info = RunInfo {
        run_id: report.run_id.clone(),
        accel: report.accel.clone(),
        kernel: report.kernel.clone(),
        kernel_hash: report.kernel_hash.clone(),
        topology: report.topology.clone(),
        started_at: report.started_at.clone(),
        clock: clock.name().to_string(),
        icount_shift: match clock {
            lab_vm::Clock::Icount { shift } => Some(shift),
            lab_vm::Clock::Host => None,
        },
        cpu: host_cpu(),
        guest_cpu: guest_cpu(&report.accel),
        qemu: qemu_version(),
        guest: with_timers(guest.describe(), &report.accel, clock),
    };
    let bench = BenchReport::from_samples(info, &samples);
    let table = lab_bench::table::render(&bench);
    println!();
    print!("{table}");
    // the run directory, and the latest run of this clock in target/lab/bench/fault-CLOCK/
    let latest = lab_host::paths::repo_root()
        .join("target/lab/bench")
        .join(format!("fault-{}", clock.name()));
    std::fs::create_dir_all(&latest).with_context(|| format!("creating {}", latest.display()))?;
    for dir in [&run_dir, &latest] {
        bench.save(&dir.join("bench.json"))?;
        let t = dir.join("table.txt");
        std::fs::write(&t, &table).with_context(|| format!("writing {}", t.display()))?;
        let charts = [
            lab_bench::chart::write_summary_svg(&bench, &dir.join("bench-fault.svg")),
            lab_bench::chart::write_svg(&bench, &dir.join("bench-fault-cells.svg")),
        ];
        for e in charts.into_iter().filter_map(Result::err) {
            lab_host::progress!("famfs-lab: no chart: {e:#}");
        }
    }
    lab_host::progress!(
        "famfs-lab: wrote bench.json, table.txt, bench-fault.svg (summary) and bench-fault-cells.svg to {} and {}",
        run_dir.display(),
        latest.display()
    );
    Ok(bench)
}

/// The host CPU's `model name` (/proc/cpuinfo); empty if it cannot be read.
fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| cpu_model(&t))
        .unwrap_or_default()
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The guest's setup with the words the runner adds to its command line for its timers
/// (`noapictimer` under TCG with the host clock): runs with other timers are not alike.
fn with_timers(setup: String, accel: &str, clock: lab_vm::Clock) -> String {
    let a = if accel == "kvm" {
        lab_vm::Accel::Kvm
    } else {
        lab_vm::Accel::Tcg
    };
    match lab_runner::guest::timer_cmdline(a, clock) {
        "" => setup,
        words if setup.is_empty() => format!("timers={words}"),
        words => format!("{setup} timers={words}"),
    }
}

/// The guest CPU model the lab gives QEMU under `accel` (`-cpu`).
fn guest_cpu(accel: &str) -> String {
    let a = if accel == "kvm" {
        lab_vm::Accel::Kvm
    } else {
        lab_vm::Accel::Tcg
    };
    lab_vm::accel::accel_args(a)[3].to_string()
}

/// `qemu-system-x86_64 --version`'s first line; empty if it does not run.
fn qemu_version() -> String {
    std::process::Command::new(lab_vm::accel::DEFAULT_QEMU)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FaultArgs,
    }

    fn parse(extra: &[&str]) -> FaultArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("valid").args
    }

    #[test]
    fn the_guest_setup_names_the_timers_the_runner_changes() {
        let host = lab_vm::Clock::Host;
        let icount = lab_vm::Clock::Icount { shift: 0 };
        assert_eq!(
            with_timers(String::new(), "tcg", host),
            "timers=noapictimer"
        );
        assert_eq!(
            with_timers("cpus=1".into(), "tcg", host),
            "cpus=1 timers=noapictimer"
        );
        assert_eq!(with_timers("cpus=1".into(), "tcg", icount), "cpus=1");
        assert_eq!(with_timers(String::new(), "kvm", host), "");
    }

    #[test]
    fn breakdown_variants_and_reps_per_unit_by_default() {
        let c = parse(&[]).config().unwrap();
        assert_eq!(
            c.resolvers,
            [
                "famfs_native",
                "famfs",
                "famfs_maplookup",
                "famfs_direct",
                "famfs_kfunc",
                "famfs_trivial"
            ]
        );
        // the floor and six resolvers: each in every position twice (wall clock)
        assert_eq!((c.reps, c.warmup), (14, 1));
        // under icount once
        assert_eq!(parse(&["--clock", "icount"]).config().unwrap().reps, 7);
        let c = parse(&["--no-breakdown", "--no-floor", "--reps", "4"])
            .config()
            .unwrap();
        assert_eq!(c.resolvers.len(), 3);
        assert_eq!(c.reps, 4);
        assert!(parse(&["--reps", "0"]).config().is_err());
    }

    #[test]
    fn clock_modes() {
        assert_eq!(parse(&[]).clock().unwrap(), lab_vm::Clock::Host);
        assert_eq!(
            parse(&["--clock", "icount", "--icount-shift", "2"])
                .clock()
                .unwrap(),
            lab_vm::Clock::Icount { shift: 2 }
        );
        assert!(parse(&["--clock", "icount", "--icount-shift", "11"])
            .clock()
            .is_err());
        let icount = lab_vm::Clock::Icount { shift: 0 };
        let g = parse(&[]).guest(icount);
        assert_eq!(g.describe(), "cpus=1 cmdline=norandmaps nokaslr");
        assert_eq!(parse(&["--cpus", "2"]).guest(icount).cpus, Some(2));
        assert_eq!(parse(&[]).guest(lab_vm::Clock::Host).describe(), "");
    }

    #[test]
    fn cpu_model_from_cpuinfo() {
        let t = "processor\t: 0\nvendor_id\t: X\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(t).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("nothing"), None);
        assert_eq!(guest_cpu("tcg"), "max,hypervisor=off");
        assert_eq!(guest_cpu("kvm"), "host");
    }
}
