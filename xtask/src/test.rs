//! `cargo xtask test`: the README's test command (and `.ci/run`'s): host
//! setup, the unit tests under nextest, then a full `lab up`.

use anyhow::Result;
use clap::Args;
use lab_host::stage::Timings;
use xshell::{cmd, Shell};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Only the unit tests (no VM).
    #[arg(long)]
    pub unit_only: bool,
    #[command(flatten)]
    pub lab: crate::lab::UpArgs,
}

impl TestArgs {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let mut t = Timings::default();
        t.stage("host setup", || {
            crate::host::preflight(sh, crate::host::TEST_STAGES, self.lab.kernel.no_install)
        })?;
        let cargo = crate::cargo();
        let profile = if std::env::var_os("CI").is_some() {
            "ci"
        } else {
            "default"
        };
        let unit = t.stage("unit tests (nextest)", || {
            cmd!(sh, "{cargo} nextest run --workspace --profile {profile}")
                .run()
                .map_err(anyhow::Error::from)
        });
        if let Err(e) = unit {
            eprint!("{}", t.table());
            eprintln!("error: unit tests failed: {e}");
            std::process::exit(lab_report::EXIT_CASES_FAILED);
        }
        if self.unit_only {
            eprint!("{}", t.table());
            return Ok(());
        }
        let code = t.stage("lab up", || crate::lab::up(sh, &self.lab))?;
        eprint!("{}", t.table());
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
