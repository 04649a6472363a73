//! `cargo xtask host ...`: host prerequisites.

use anyhow::{bail, Result};
use clap::Subcommand;
use lab_host::prereqs::{self, Need, Stage};
use xshell::Shell;

#[derive(Subcommand)]
pub enum Host {
    /// Installs every missing host tool (Debian, as root), or prints the
    /// command to do it.
    Setup {
        /// Only check; never install.
        #[arg(long)]
        no_install: bool,
    },
}

impl Host {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Host::Setup { no_install } => {
                preflight(sh, &Stage::ALL, no_install)?;
                lab_host::progress!("famfs-lab: every host tool is present");
                Ok(())
            }
        }
    }
}

/// The stages of `kernel build` and the other kernel verbs.
pub const KERNEL_STAGES: &[Stage] = &[Stage::Kernel];
/// The stages of `image build`.
pub const IMAGE_STAGES: &[Stage] = &[Stage::Kernel, Stage::GuestBinaries, Stage::Initramfs];
/// The stages of `lab up`, `lab shell`, `lab bench`, `ci run`.
pub const LAB_STAGES: &[Stage] = &[
    Stage::Kernel,
    Stage::GuestBinaries,
    Stage::Initramfs,
    Stage::Boot,
];
/// The stages of `cargo xtask test`.
pub const TEST_STAGES: &[Stage] = &[
    Stage::UnitTests,
    Stage::Kernel,
    Stage::GuestBinaries,
    Stage::Initramfs,
    Stage::Boot,
];

/// Checks (and installs, where allowed) every tool the `stages` of a verb will run, before
/// the verb's first long step.
pub fn preflight(sh: &Shell, stages: &[Stage], no_install: bool) -> Result<()> {
    ensure(sh, &prereqs::needs_of(stages), no_install)
}

/// Makes sure the tools for `needs` are here: installs the missing ones
/// with apt-get where allowed, else fails with the install command.
pub fn ensure(sh: &Shell, needs: &[Need], no_install: bool) -> Result<()> {
    let missing = prereqs::missing(needs);
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|t| format!("  {} ({}): {}", t.name(), t.package, t.why))
        .collect();
    if no_install || !lab_host::apt::can_install() {
        bail!(
            "missing host tools:\n{}\ninstall them with: {}\n(on Debian as root, run without --no-install and the lab installs them)",
            list.join("\n"),
            lab_host::apt::install_hint(&missing)
        );
    }
    lab_host::apt::install(sh, &missing)?;
    let still = prereqs::missing(needs);
    if !still.is_empty() {
        let names: Vec<_> = still.iter().map(|t| t.name()).collect();
        bail!("still missing after apt-get install: {}", names.join(", "));
    }
    Ok(())
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod preflight_tests;
