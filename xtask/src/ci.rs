//! `cargo xtask ci ...`: the CI matrix (`ci/matrix.yaml`) and what the
//! workflow runs, so any cell runs locally exactly as in CI.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use lab_ci::Schedule;
use std::path::{Path, PathBuf};
use xshell::Shell;

use crate::build_args::BuildArgs;
use crate::ci_data::load;
use crate::up::UpArgs;

#[derive(Subcommand)]
pub enum Ci {
    /// Prints the GitHub Actions `strategy.matrix` of ci/matrix.yaml (one
    /// line of JSON), after checking it and ci/expected/.
    Matrix {
        /// The distinct kernels of the cells instead (built once, first).
        #[arg(long)]
        kernels: bool,
        /// The nightly cells (the workflow's `schedule:`) instead of the push and
        /// pull-request ones.
        #[arg(long)]
        nightly: bool,
    },
    /// Lists the cells (push and pull request, then nightly): id, then the command each runs.
    List {
        /// As JSON: `[{id, label, kernel, fragments, ops, topology, accel, suites,
        /// timeout_minutes, command}]`.
        #[arg(long)]
        json: bool,
    },
    /// Runs one cell exactly as CI does (same `lab up`, same environment).
    Run {
        /// The cell's id, e.g. famfs-bpf.famfs.default.tcg (`ci list`).
        #[arg(long)]
        entry: String,
        /// Only check host tools; never install.
        #[arg(long)]
        no_install: bool,
    },
    /// Prints the kernel's cache key (what `kernel build` caches it under
    /// and CI's actions/cache is keyed on): stdout's only line (a first
    /// fetch of Debian's source says what it does on stderr).
    KernelKey(KernelKeyArgs),
    /// Prints a run's results.json as Markdown (for $GITHUB_STEP_SUMMARY).
    Summary {
        /// A run directory (default: the newest in target/lab/runs).
        run_dir: Option<PathBuf>,
        /// The cell the run was, for the title and the rerun command.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Prints, as Markdown, the unit tests that could not run here and why (the `SKIP:` lines
    /// of nextest's JUnit report), for $GITHUB_STEP_SUMMARY.
    Skips {
        /// The JUnit report (default: that of nextest's `ci` profile).
        #[arg(value_name = "JUNIT")]
        junit: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct KernelKeyArgs {
    /// The kernel of this cell (instead of --kernel/--fragment).
    #[arg(long, conflicts_with_all = ["kernel", "fragments", "source_dir"])]
    pub entry: Option<String>,
    #[command(flatten)]
    pub kernel: BuildArgs,
}

impl Ci {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Ci::Matrix { kernels, nightly } => {
                let (matrix, _) = load()?;
                let schedule = if nightly {
                    Schedule::Nightly
                } else {
                    Schedule::Push
                };
                println!(
                    "{}",
                    if kernels {
                        matrix.kernels_json_of(schedule)
                    } else {
                        matrix.github_json_of(schedule)
                    }
                );
                Ok(())
            }
            Ci::List { json: true } => {
                let (matrix, _) = load()?;
                println!("{}", list_json(matrix.cells()));
                Ok(())
            }
            Ci::List { json: false } => {
                let (matrix, _) = load()?;
                for c in matrix.all_cells() {
                    println!(
                        "{:48} {:>3} min  {}",
                        c.id,
                        c.timeout_minutes,
                        c.shell_command()
                    );
                }
                Ok(())
            }
            Ci::Run { entry, no_install } => {
                let (matrix, _) = load()?;
                let cell = matrix.cell(&entry)?;
                let args = up_args(cell, no_install)?;
                lab_host::progress!("famfs-lab: cell {}: {}", cell.id, cell.shell_command());
                // The accelerator reaches the lab through the environment,
                // as in CI; the ops are a `lab up --ops` argument.
                for (key, value) in cell.env() {
                    if std::env::var(key).is_ok_and(|v| v != value) {
                        lab_host::progress!(
                            "famfs-lab: {key}={value} for this cell (was {})",
                            std::env::var(key)?
                        );
                    }
                    std::env::set_var(key, value);
                }
                crate::up::exit_with(crate::up::up(sh, &args)?)
            }
            Ci::KernelKey(args) => {
                let build = match &args.entry {
                    Some(id) => {
                        let (matrix, _) = load()?;
                        up_args(matrix.cell(id)?, args.kernel.no_install)?.kernel
                    }
                    None => args.kernel,
                };
                crate::host::preflight(sh, crate::host::KERNEL_STAGES, build.no_install)?;
                println!("{}", lab_kernel::build::cache_key(sh, &build.request())?);
                Ok(())
            }
            Ci::Summary { run_dir, entry } => {
                print!("{}", summary(run_dir, entry.as_deref())?);
                Ok(())
            }
            Ci::Skips { junit } => {
                let path = junit.unwrap_or_else(|| junit_path("ci"));
                match std::fs::read_to_string(&path) {
                    Ok(xml) => print!(
                        "{}",
                        lab_ci::skips::markdown(&lab_ci::skips::from_junit(&xml))
                    ),
                    Err(e) => println!("Unit tests: no JUnit report ({}: {e}).", path.display()),
                }
                Ok(())
            }
        }
    }
}

/// The cells as JSON, for `ci list --json`.
fn list_json(cells: &[lab_ci::Cell]) -> serde_json::Value {
    cells
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "label": c.label,
                "kernel": c.kernel,
                "fragments": c.fragments,
                "ops": c.ops,
                "topology": c.topology,
                "accel": c.accel.as_str(),
                "suites": c.suites,
                "timeout_minutes": c.timeout_minutes,
                "command": c.shell_command(),
            })
        })
        .collect()
}

/// What `lab up` gets for `cell`: its argument list parsed by `lab up`'s
/// own flag definitions, so `ci run` and a typed `cargo xtask lab up ...`
/// cannot differ.
fn up_args(cell: &lab_ci::Cell, no_install: bool) -> Result<UpArgs> {
    #[derive(Parser)]
    #[command(name = "cargo xtask lab up")]
    struct LabUp {
        #[command(flatten)]
        up: UpArgs,
    }
    let mut argv = cell.lab_up_args();
    if argv.get(..2) != Some(&["lab".to_string(), "up".to_string()][..]) {
        bail!("cell {}: {argv:?} is not a `lab up` command", cell.id);
    }
    if no_install {
        argv.push("--no-install".into());
    }
    let parsed = LabUp::try_parse_from(
        std::iter::once("cargo xtask lab up".to_string()).chain(argv.drain(2..)),
    )
    .with_context(|| format!("cell {}: `lab up` refuses its arguments", cell.id))?;
    Ok(parsed.up)
}

fn summary(run_dir: Option<PathBuf>, entry: Option<&str>) -> Result<String> {
    let dir = match run_dir {
        Some(d) => Some(d),
        None => newest_run(&lab_host::paths::runs_dir()),
    };
    let Some(dir) = dir else {
        return Ok(lab_ci::summary::no_results("", entry));
    };
    let json = dir.join(lab_report::run_dir::RESULTS_JSON);
    let Ok(text) = std::fs::read_to_string(&json) else {
        return Ok(lab_ci::summary::no_results(
            &dir.display().to_string(),
            entry,
        ));
    };
    let report = lab_report::RunReport::from_json(&text)
        .with_context(|| format!("parsing {}", json.display()))?;
    Ok(lab_ci::summary::markdown(&report, entry))
}

/// Where nextest writes the JUnit report of `profile` (.config/nextest.toml).
pub(crate) fn junit_path(profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| lab_host::paths::repo_root().join("target"));
    target.join("nextest").join(profile).join("junit.xml")
}

/// The most recently modified run directory.
fn newest_run(runs: &Path) -> Option<PathBuf> {
    std::fs::read_dir(runs)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_is_a_valid_lab_up_with_its_values() {
        let (matrix, _) = load().unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!matrix.cells().is_empty());
        assert!(!matrix.cells_of(Schedule::Nightly).is_empty());
        for cell in matrix.all_cells() {
            let up = up_args(cell, false).unwrap_or_else(|e| panic!("{e:#}"));
            assert_eq!(up.kernel.kernel, cell.kernel, "{}", cell.id);
            assert_eq!(up.kernel.fragments, cell.fragments, "{}", cell.id);
            assert_eq!(up.topology, cell.topology, "{}", cell.id);
            assert_eq!(up.suites, cell.suites, "{}", cell.id);
            assert!(up.cases.is_empty() && up.kernel.source_dir.is_none() && !up.kernel.no_install);
        }
        let cell = &matrix.cells()[0];
        assert!(up_args(cell, true).unwrap().kernel.no_install);
    }

    #[test]
    fn list_json_has_every_cell_with_its_command() {
        let (matrix, _) = load().unwrap();
        let v = list_json(matrix.cells());
        let rows = v.as_array().expect("an array");
        assert_eq!(rows.len(), matrix.cells().len());
        for (row, cell) in rows.iter().zip(matrix.cells()) {
            assert_eq!(row["id"], cell.id.as_str());
            assert_eq!(row["accel"], cell.accel.as_str());
            assert_eq!(row["command"], cell.shell_command().as_str());
            assert_eq!(row["timeout_minutes"], cell.timeout_minutes);
        }
    }

    #[test]
    fn the_cells_environment_is_what_the_lab_reads() {
        assert_eq!(lab_ci::matrix::ACCEL_ENV, lab_vm::accel::ACCEL_ENV);
    }

    #[test]
    fn a_bad_entry_lists_the_valid_ids() {
        let (matrix, _) = load().unwrap();
        let msg = format!("{:#}", anyhow::Error::from(matrix.cell("BAD").unwrap_err()));
        assert!(msg.contains("no cell \"BAD\""), "{msg}");
        for c in matrix.all_cells() {
            assert!(msg.contains(&c.id), "{msg}");
        }
    }

    #[test]
    fn summary_without_a_run_says_so() {
        let missing = std::env::temp_dir().join("famfs-lab-no-such-run");
        assert!(newest_run(&missing).is_none());
        let got = summary(Some(missing), Some("stock.default.tcg")).unwrap();
        assert!(got.contains("stock.default.tcg: no results"), "{got}");
    }
}
