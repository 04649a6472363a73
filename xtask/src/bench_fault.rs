//! `cargo xtask lab bench fault`: one `lab up` of the `bench.fault` case with the settings in
//! `FAMFS_LAB_BENCH_FAULT`, then lab-bench's statistics over the guest's raw timings: the table
//! on stdout, `bench.json` and `bench-fault.svg` in the run directory, and with `--compare
//! OLD.json` the change per cell. `--report NEW.json` skips the run and reads a bench.json.

use anyhow::{bail, Context, Result};
use clap::Args;
use lab_bench::model::{BenchReport, RunInfo};
use lab_suite::benchdata::{FaultConfig, Samples, CONFIG_ENV, SAMPLES_FILE};
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
    /// Timed repetitions of every cell (after one untimed probe repetition).
    #[arg(long, default_value_t = 5)]
    pub reps: u32,
    /// 4 KiB pages faulted per PTE workload.
    #[arg(long, default_value_t = 256)]
    pub pte_pages: u32,
    /// 2 MiB pages faulted per PMD workload.
    #[arg(long, default_value_t = 16)]
    pub pmd_pages: u32,
    /// Files opened per open workload (cold and cached).
    #[arg(long, default_value_t = 8)]
    pub open_files: u32,
    /// The resolvers (fmap ops), in order.
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
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
}

impl FaultArgs {
    fn config(&self) -> Result<FaultConfig> {
        let mut resolvers = self.resolvers.clone();
        if self.slow && !resolvers.iter().any(|r| r == "famfs_slow") {
            resolvers.push("famfs_slow".into());
        }
        if self.reps == 0 {
            bail!("--reps must be at least 1");
        }
        if self.pte_pages == 0 || self.pmd_pages == 0 || self.open_files == 0 {
            bail!("--pte-pages, --pmd-pages and --open-files must be at least 1");
        }
        Ok(FaultConfig {
            reps: self.reps,
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
    if let Some(old) = old {
        println!();
        print!("{}", lab_bench::compare::render(&old, &new));
    }
    Ok(())
}

/// Runs the case, computes and writes everything, prints the table.
fn measure(sh: &Shell, args: &FaultArgs) -> Result<BenchReport> {
    let cfg = args.config()?;
    // The runner hands FAMFS_LAB_* variables of this process to every case.
    std::env::set_var(CONFIG_ENV, serde_json::to_string(&cfg)?);
    let up = crate::up::UpArgs {
        cases: vec![CASE.into()],
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
    };
    let bench = BenchReport::from_samples(info, &samples);
    println!();
    print!("{}", lab_bench::table::render(&bench));
    let json = run_dir.join("bench.json");
    bench.save(&json)?;
    let svg = run_dir.join("bench-fault.svg");
    if let Err(e) = lab_bench::chart::write_svg(&bench, &svg) {
        lab_host::progress!("famfs-lab: no chart: {e:#}");
    } else {
        lab_host::progress!("famfs-lab: wrote {}", svg.display());
    }
    lab_host::progress!("famfs-lab: wrote {}", json.display());
    Ok(bench)
}
