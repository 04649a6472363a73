//! `cargo xtask test`: the README's test command (and `.ci/run`'s): host
//! setup, the dependency checks (`cargo xtask deps`), the unit tests under nextest, then a full `lab up`, a sample of random topologies,
//! and one `lab exec` (`exec_check`).

use anyhow::Result;
use clap::Args;
use lab_host::stage::Timings;
use xshell::{cmd, Shell};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Only the unit tests (no VM).
    #[arg(long)]
    pub unit_only: bool,
    /// Only the end-to-end check of `lab exec` (one guest; no unit tests, no `lab up`).
    #[arg(long, conflicts_with = "unit_only")]
    pub exec_only: bool,
    #[command(flatten)]
    pub lab: crate::up::UpArgs,
}

impl TestArgs {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let mut t = Timings::default();
        t.stage("host setup", || {
            crate::host::preflight(sh, crate::host::TEST_STAGES, self.lab.kernel.no_install)
        })?;
        if self.exec_only {
            let r = t.stage("lab exec (end to end)", || {
                crate::exec_check::run(sh, &self.lab.kernel)
            });
            lab_host::say::progress_block(&t.table());
            return r;
        }
        let profile = if std::env::var_os("CI").is_some() {
            "ci"
        } else {
            "default"
        };
        // Licenses, bans, duplicate versions and unused dependencies, before anything is built.
        let deps = t.stage("dependency checks (cargo deny, cargo machete)", || {
            crate::deps::check(sh, self.lab.kernel.no_install)
        });
        if let Err(e) = deps {
            lab_host::say::progress_block(&t.table());
            eprintln!("error: dependency checks failed: {e:#}");
            std::process::exit(lab_report::EXIT_CASES_FAILED);
        }
        let unit = t.stage("unit tests (nextest)", || {
            let cargo = crate::cargo();
            lab_host::say::run(cmd!(
                sh,
                "{cargo} nextest run --workspace --profile {profile}"
            ))
        });
        if let Err(e) = unit {
            lab_host::say::progress_block(&t.table());
            eprintln!("error: unit tests failed: {e:#}");
            std::process::exit(lab_report::EXIT_CASES_FAILED);
        }
        // Tests that lack a capability here (FUSE mount, bpf(2)) pass after saying so: show them.
        if let Ok(xml) = std::fs::read_to_string(crate::ci::junit_path(profile)) {
            let skips = lab_ci::skips::from_junit(&xml);
            if !skips.is_empty() {
                lab_host::progress!("famfs-lab: {} unit test(s) skipped here:", skips.len());
                for s in &skips {
                    lab_host::progress!("  {s}");
                }
            }
        }
        if self.unit_only {
            lab_host::say::progress_block(&t.table());
            return Ok(());
        }
        let mut code = t.stage("lab up", || crate::up::up(sh, &self.lab))?;
        if code == 0 {
            // The topology property on a fixed sample: ~5 s a topology under TCG.
            let sample = crate::topo_fuzz_model::TopoFuzzArgs::sample(&self.lab.kernel);
            let fuzz = t.stage("topology sample (topo-fuzz)", || {
                crate::topo_fuzz::run(sh, &sample)
            })?;
            if fuzz != 0 {
                eprintln!("error: topo-fuzz: an accepted topology failed in the guest (see above)");
                code = lab_report::EXIT_CASES_FAILED;
            }
        }
        if code == 0 {
            let guess = t.stage("lab up on a stale guess", || {
                crate::guess_check::run(sh, &self.lab)
            });
            if let Err(e) = guess {
                eprintln!("error: {e:#}");
                code = lab_report::EXIT_CASES_FAILED;
            }
        }
        if code == 0 {
            // What `lab shell` and `lab exec` set up, and what `lab exec` passes through.
            let exec = t.stage("lab exec (end to end)", || {
                crate::exec_check::run(sh, &self.lab.kernel)
            });
            if let Err(e) = exec {
                eprintln!("error: {e:#}");
                code = lab_report::EXIT_CASES_FAILED;
            }
        }
        lab_host::say::progress_block(&t.table());
        match code {
            0 => Ok(()),
            lab_report::EXIT_CASES_FAILED => {
                eprintln!("error: lab up: some cases failed (see the summary above)");
                std::process::exit(code)
            }
            _ => {
                eprintln!("error: lab up: the lab could not run the cases (see above)");
                std::process::exit(code)
            }
        }
    }
}
