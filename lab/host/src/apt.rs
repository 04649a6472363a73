//! Installing missing host tools on Debian, including the two extra apt
//! suites the lab needs: `<codename>-backports` (QEMU 10) and
//! `trixie-backports` pinned to priority 1 (only for `apt-get download` of
//! the kernel source; nothing is ever installed from it).

use crate::prereqs::Tool;
use anyhow::{bail, Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// The apt sources file the lab owns.
pub const SOURCES_FILE: &str = "/etc/apt/sources.list.d/famfs-lab.sources";
/// The pin that keeps trixie-backports from ever being installed from.
pub const PIN_FILE: &str = "/etc/apt/preferences.d/famfs-lab-trixie-backports";
/// The suite that carries `linux-source-7.3`.
pub const KERNEL_SOURCE_SUITE: &str = "trixie-backports";

/// The host's Debian codename, or None when this is not Debian.
pub fn debian_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let id_is_debian = text.lines().any(|l| l.trim() == "ID=debian");
    let codename = text
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())?;
    id_is_debian.then_some(codename)
}

/// Whether we may change the host's packages: Debian and root.
pub fn can_install() -> bool {
    debian_codename().is_some() && unsafe { libc::geteuid() } == 0
}

/// The sources file content for this codename.
pub fn sources_text(codename: &str) -> String {
    let mut suites = vec![format!("{codename}-backports")];
    if codename != "trixie" {
        suites.push(KERNEL_SOURCE_SUITE.to_string());
    }
    suites
        .iter()
        .map(|suite| {
            format!(
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite}\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pin file content: trixie-backports at priority 1.
pub fn pin_text() -> String {
    format!("Package: *\nPin: release n={KERNEL_SOURCE_SUITE}\nPin-Priority: 1\n")
}

/// Writes the sources and the pin if they differ; returns whether anything
/// changed (then `apt-get update` is needed).
pub fn ensure_sources(codename: &str) -> Result<bool> {
    let mut changed = false;
    for (path, text) in [
        (SOURCES_FILE, sources_text(codename)),
        (PIN_FILE, pin_text()),
    ] {
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).with_context(|| format!("writing {path}"))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Whether apt has package lists for `suite` (a cheap check that avoids an
/// `apt-get update` on every run).
pub fn has_lists_for(suite: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/var/lib/apt/lists") else {
        return false;
    };
    dir.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.contains(&format!("_dists_{suite}_")) && name.ends_with("_Packages")
    })
}

/// Makes the lab's apt suites usable: sources, pin, and fresh lists.
pub fn prepare(sh: &Shell) -> Result<()> {
    let Some(codename) = debian_codename() else {
        bail!("this host is not Debian: the lab's apt setup only runs on Debian")
    };
    let changed = ensure_sources(&codename)?;
    let backports = format!("{codename}-backports");
    if changed || !has_lists_for(&backports) || !has_lists_for(KERNEL_SOURCE_SUITE) {
        crate::progress!("famfs-lab: apt-get update (the lab's apt suites: {backports}, {KERNEL_SOURCE_SUITE} pinned to 1)");
        crate::say::run(cmd!(sh, "apt-get update -q")).context("apt-get update failed")?;
    }
    Ok(())
}

/// Installs `tools` with apt-get, printing what and why.
pub fn install(sh: &Shell, tools: &[Tool]) -> Result<()> {
    if tools.is_empty() {
        return Ok(());
    }
    let codename = debian_codename().context("not a Debian host")?;
    prepare(sh)?;
    for t in tools {
        crate::progress!(
            "famfs-lab: installing {} for {} ({})",
            t.package,
            t.name(),
            t.why
        );
    }
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    let (plain, backports): (Vec<_>, Vec<_>) = tools.iter().partition(|t| t.suite.is_none());
    let names = |ts: &[&Tool]| {
        let mut v: Vec<&str> = ts.iter().map(|t| t.package).collect();
        v.dedup();
        v
    };
    let plain = names(&plain);
    if !plain.is_empty() {
        crate::say::run(cmd!(
            sh,
            "apt-get install -y -q --no-install-recommends {plain...}"
        ))
        .context("apt-get install failed")?;
    }
    let backports = names(&backports);
    if !backports.is_empty() {
        let suite = format!("{codename}-backports");
        crate::say::run(cmd!(sh, "apt-get install -y -q -t {suite} {backports...}"))
            .context("apt-get install from backports failed")?;
    }
    Ok(())
}

/// The command a user on another system should run, for error messages.
pub fn install_hint(tools: &[Tool]) -> String {
    let mut pkgs: Vec<&str> = tools.iter().map(|t| t.package).collect();
    pkgs.sort_unstable();
    pkgs.dedup();
    format!("sudo apt-get install {}", pkgs.join(" "))
}

/// Downloads one package's .deb from `suite` into `dir`; returns its path.
pub fn download(sh: &Shell, package: &str, suite: &str, dir: &Path) -> Result<std::path::PathBuf> {
    prepare(sh)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _cd = sh.push_dir(dir);
    crate::say::run(cmd!(sh, "apt-get download -q -t {suite} {package}"))
        .with_context(|| format!("apt-get download {package} from {suite} failed"))?;
    newest_deb(dir, package)
}

/// The newest downloaded .deb of `package` in `dir`.
pub fn newest_deb(dir: &Path, package: &str) -> Result<std::path::PathBuf> {
    let prefix = format!("{package}_");
    let mut debs: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    debs.pop()
        .with_context(|| format!("no {package}_*.deb in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookworm_gets_backports_and_pinned_trixie_backports() {
        let text = sources_text("bookworm");
        assert!(text.contains("Suites: bookworm-backports\n"));
        assert!(text.contains("Suites: trixie-backports\n"));
        assert!(
            !text.contains("Suites: trixie\n"),
            "plain trixie must never be added"
        );
        assert!(pin_text().contains("Pin-Priority: 1\n"));
    }

    #[test]
    fn trixie_lists_its_backports_once() {
        assert_eq!(sources_text("trixie").matches("Suites:").count(), 1);
    }

    #[test]
    fn newest_deb_picks_the_package_and_errors_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("other_1_all.deb"), b"").unwrap();
        let err = newest_deb(dir.path(), "linux-source-7.3").unwrap_err();
        assert!(err.to_string().contains("linux-source-7.3"));
        std::fs::write(dir.path().join("linux-source-7.3_7.3.4-1_all.deb"), b"").unwrap();
        let got = newest_deb(dir.path(), "linux-source-7.3").unwrap();
        assert!(got.ends_with("linux-source-7.3_7.3.4-1_all.deb"));
    }
}
