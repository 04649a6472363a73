//! `cargo xtask lab bench ...`: benchmarks print a table and write JSON;
//! they are never part of the tests.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use xshell::Shell;

#[derive(Subcommand)]
pub enum Bench {
    /// Boot time: QEMU start to agent ready, to devices ready (first case),
    /// and the whole `lab up` of one smoke case, over several runs.
    Boot(BootArgs),
    /// The DAX fault path: PTE/PMD/open fault cost per fmap resolver (famfs_native, famfs,
    /// famfs_maplookup) and on the raw device, in one VM run; table, bench.json, SVG chart.
    Fault(crate::bench_fault::FaultArgs),
}

#[derive(Args, Debug)]
pub struct BootArgs {
    #[command(flatten)]
    pub lab: crate::up::UpArgs,
    /// Repetitions.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
}

impl Bench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Bench::Boot(args) => boot(sh, args),
            Bench::Fault(args) => crate::bench_fault::run(sh, args),
        }
    }
}

fn boot(sh: &Shell, mut args: BootArgs) -> Result<()> {
    if args.lab.cases.is_empty() && args.lab.suites.is_empty() {
        args.lab.cases = vec!["smoke.memdevs".into()];
    }
    let mut rows = Vec::new();
    for rep in 0..args.reps.max(1) {
        let started = std::time::Instant::now();
        let report = crate::up::up_report(sh, &args.lab)?;
        let wall = started.elapsed().as_millis() as u64;
        let ms = |k: &str| report.meta.get(k).and_then(|v| v.parse::<u64>().ok());
        rows.push(json!({
            "rep": rep,
            "accel": report.accel,
            "agent_ready_ms": ms("boot_ms"),
            "first_case_ms": ms("first_case_ms"),
            "run_ms": report.duration_ms,
            "lab_up_wall_ms": wall,
            "failed": report.failed(),
        }));
    }
    println!(
        "{:>4} {:>6} {:>15} {:>14} {:>10} {:>14}",
        "rep", "accel", "agent ready s", "first case s", "run s", "lab up wall s"
    );
    let secs = |v: &serde_json::Value| {
        v.as_u64()
            .map(|m| format!("{:.2}", m as f64 / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    for r in &rows {
        println!(
            "{:>4} {:>6} {:>15} {:>14} {:>10} {:>14}",
            r["rep"],
            r["accel"].as_str().unwrap_or("?"),
            secs(&r["agent_ready_ms"]),
            secs(&r["first_case_ms"]),
            secs(&r["run_ms"]),
            secs(&r["lab_up_wall_ms"])
        );
    }
    let dir = lab_host::paths::repo_root().join("target/lab/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("boot.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({ "runs": rows }))?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    lab_host::progress!("famfs-lab: wrote {}", path.display());
    Ok(())
}
