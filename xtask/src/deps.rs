//! `cargo xtask deps`: the dependency checks of CI's checks job and of `cargo xtask test`:
//! `cargo deny check` (licenses, bans with duplicate versions, sources; `deny.toml`) and
//! `cargo machete` (dependencies declared and never used). The two cargo tools are installed
//! from crates.io at the versions below when missing (`cargo install --locked`), like the host
//! tools `host setup` installs; `--no-install` only checks.

use anyhow::{bail, Context, Result};
use clap::Args;
use xshell::{cmd, Shell};

/// The cargo subcommands the checks run: (binary, crate, version).
pub const CARGO_TOOLS: &[(&str, &str, &str)] = &[
    ("cargo-deny", "cargo-deny", "0.20.2"),
    ("cargo-machete", "cargo-machete", "0.9.2"),
];

/// What `cargo deny check` checks: not advisories, whose database is fetched from outside
/// the package registries (the one place this lab's machines reach).
pub const DENY_CHECKS: &[&str] = &["licenses", "bans", "sources"];

#[derive(Args, Debug)]
pub struct DepsArgs {
    /// Only check that the tools are here; never install them.
    #[arg(long)]
    pub no_install: bool,
}

impl DepsArgs {
    pub fn run(self, sh: &Shell) -> Result<()> {
        check(sh, self.no_install)
    }
}

/// Installs the missing tools (unless `no_install`), then runs both checks; fails naming the
/// check that found something.
pub fn check(sh: &Shell, no_install: bool) -> Result<()> {
    ensure_tools(sh, no_install)?;
    let cargo = crate::cargo();
    lab_host::say::run(cmd!(sh, "{cargo} deny --locked check {DENY_CHECKS...}"))
        .context("cargo deny (deny.toml: licenses, bans and duplicate versions, sources)")?;
    // `cargo-machete` itself: through the toolchain's cargo it takes `machete` for a path.
    lab_host::say::run(cmd!(sh, "cargo-machete"))
        .context("cargo machete: a dependency is declared and never used (remove it, or list it under [package.metadata.cargo-machete] ignored with the reason)")?;
    lab_host::progress!("famfs-lab: dependencies: cargo deny and cargo machete found nothing");
    Ok(())
}

/// The version `cargo-<tool> --version` prints, if the tool runs.
fn installed_version(sh: &Shell, bin: &str) -> Option<String> {
    let out = cmd!(sh, "{bin} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    version_in(&out).map(String::from)
}

/// `cargo-deny 0.20.2` -> `0.20.2`.
fn version_in(out: &str) -> Option<&str> {
    out.split_whitespace().nth(1)
}

fn ensure_tools(sh: &Shell, no_install: bool) -> Result<()> {
    let cargo = crate::cargo();
    for (bin, krate, version) in CARGO_TOOLS {
        if installed_version(sh, bin).as_deref() == Some(*version) {
            continue;
        }
        if no_install {
            bail!("{bin} {version} is missing: cargo install --locked {krate}@{version}");
        }
        lab_host::progress!("famfs-lab: installing {krate} {version} (cargo install)");
        let spec = format!("{krate}@{version}");
        lab_host::say::run(cmd!(sh, "{cargo} install --locked {spec}"))
            .with_context(|| format!("cargo install --locked {spec}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_a_tool_prints() {
        assert_eq!(version_in("cargo-deny 0.20.2\n"), Some("0.20.2"));
        assert_eq!(version_in("cargo-machete 0.9.2"), Some("0.9.2"));
        assert_eq!(version_in(""), None);
    }

    #[test]
    fn deny_toml_is_where_cargo_deny_looks() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("deny.toml")).expect("deny.toml at the root");
        for section in ["[licenses]", "[bans]", "[sources]"] {
            assert!(text.contains(section), "deny.toml has no {section}");
        }
        assert!(!DENY_CHECKS.contains(&"advisories"));
    }
}
