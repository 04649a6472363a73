//! `lab shell --gdb` / `lab exec --gdb`: QEMU's gdb stub on a free loopback port, the kernel's
//! vmlinux and its gdb scripts (`lx-symbols`, `lx-dmesg`, ...: `make scripts_gdb` in the
//! kernel's build tree, once), and the gdb command line that uses them. `--drgn`: drgn on the
//! host, on a memory dump of the guest (the guest image has no Python).

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The kernel command line a debugger needs on a kernel of `config`: symbols at their link
/// addresses (`nokaslr` where the kernel randomizes them; elsewhere the word would only reach
/// init as an argument).
pub fn debug_cmdline(config: &str) -> &'static str {
    if config
        .lines()
        .any(|l| l.trim() == "CONFIG_RANDOMIZE_BASE=y")
    {
        "nokaslr"
    } else {
        ""
    }
}

/// A free TCP port on 127.0.0.1 (the listener is closed again; QEMU binds it right after).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port for the gdb stub")?;
    Ok(l.local_addr()?.port())
}

/// What gdb needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gdb {
    pub port: u16,
    pub vmlinux: PathBuf,
    /// `vmlinux-gdb.py` (the kernel's gdb scripts), if they could be made.
    pub scripts: Option<PathBuf>,
    /// Where the modules are, for `lx-symbols`.
    pub modules: PathBuf,
}

impl Gdb {
    /// The gdb command line: symbols, the kernel's scripts, attached to the stub.
    pub fn command(&self) -> String {
        let q = |p: &Path| lab_vm::qemu_args::shell_quote(p.as_os_str());
        let mut s = format!("gdb -q {}", q(&self.vmlinux));
        if let Some(py) = &self.scripts {
            let dir = py.parent().unwrap_or(Path::new("/"));
            s.push_str(&format!(
                " -iex {} -ex {}",
                sh_word(&format!("add-auto-load-safe-path {}", dir.display())),
                sh_word(&format!("source {}", py.display()))
            ));
        }
        s.push_str(&format!(
            " -ex {}",
            sh_word(&format!("target remote 127.0.0.1:{}", self.port))
        ));
        if self.scripts.is_some() {
            s.push_str(&format!(
                " -ex {}",
                sh_word(&format!("lx-symbols {}", q(&self.modules)))
            ));
        }
        s
    }

    /// The lines the banner and the terminal show.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![
            format!("gdb: QEMU's gdb stub listens on 127.0.0.1:{}", self.port),
            format!("  vmlinux: {}", self.vmlinux.display()),
            format!("  on the host: {}", self.command()),
        ];
        match &self.scripts {
            Some(_) => v.push(
                "  then e.g. lx-dmesg, lx-ps, `break fuse_dax_fmap_iomap_begin`, continue".into(),
            ),
            None => v.push(
                "  (no kernel gdb scripts: lx-* commands are missing; see the warning above)"
                    .into(),
            ),
        }
        v
    }
}

/// Single-quotes a word for sh.
fn sh_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// vmlinux, and the kernel's gdb scripts: made with `make scripts_gdb` in the kernel's build
/// tree when missing (a generated `constants.py` and links to the source's scripts; the kernel
/// itself is not rebuilt). A failure only costs the lx-* commands, with a warning.
pub fn prepare(sh: &Shell, kernel: &lab_kernel::BuiltKernel, port: u16) -> Result<Gdb> {
    let vmlinux = kernel.entry.vmlinux();
    if !vmlinux.is_file() {
        bail!(
            "--gdb: the kernel's cache entry has no vmlinux ({}); rebuild it (cargo xtask kernel build)",
            vmlinux.display()
        );
    }
    let build = lab_kernel::build::work_dir(&lab_host::paths::cache_root(), &kernel.meta.label)
        .join("build");
    let scripts = match scripts(sh, &build) {
        Ok(p) => Some(p),
        Err(e) => {
            lab_host::progress!("famfs-lab: warning: --gdb: no kernel gdb scripts: {e:#}");
            None
        }
    };
    Ok(Gdb {
        port,
        vmlinux,
        scripts,
        modules: kernel.entry.modules_root(),
    })
}

fn scripts(sh: &Shell, build: &Path) -> Result<PathBuf> {
    let py = build.join("vmlinux-gdb.py");
    let constants = build.join("scripts/gdb/linux/constants.py");
    if py.exists() && constants.is_file() {
        return Ok(py);
    }
    if !build.join("Makefile").is_file() {
        bail!(
            "the kernel's build tree {} is gone (`cargo xtask kernel build` makes it again)",
            build.display()
        );
    }
    lab_host::progress!(
        "famfs-lab: making the kernel's gdb scripts (make scripts_gdb in {})",
        build.display()
    );
    lab_host::say::run(cmd!(sh, "make -s -C {build} scripts_gdb"))
        .with_context(|| format!("make scripts_gdb in {}", build.display()))?;
    if !(py.exists() && constants.is_file()) {
        bail!(
            "make scripts_gdb left no {} and {}",
            py.display(),
            constants.display()
        );
    }
    Ok(py)
}

/// `--drgn`: drgn must be on the host (the guest image has no Python); the error names the fix.
pub fn drgn_check() -> Result<PathBuf> {
    find_on_path("drgn").context(
        "--drgn: drgn is not installed on this host, and the guest image has no Python to run it; \
         install it with `apt-get install python3-drgn` (Debian 12) or `pip install drgn`, \
         or use --gdb",
    )
}

/// `--drgn` on a kernel of `config`: drgn opens a QEMU memory dump only with the guest's
/// vmcoreinfo, which the kernel hands QEMU's `vmcoreinfo` device through fw_cfg.
pub fn drgn_kernel_check(config: &str) -> Result<()> {
    let has = |opt: &str| {
        config
            .lines()
            .any(|l| l.trim() == format!("{opt}=y") || l.trim() == format!("{opt}=m"))
    };
    let missing: Vec<&str> = ["CONFIG_VMCORE_INFO", "CONFIG_FW_CFG_SYSFS"]
        .into_iter()
        .filter(|o| !has(o))
        .collect();
    if !missing.is_empty() {
        bail!(
            "--drgn: this kernel has no {} (drgn reads a dump of the guest only with the \
             vmcoreinfo the kernel gives QEMU through fw_cfg); build one with a config fragment \
             holding CONFIG_KEXEC=y (it selects VMCORE_INFO) and CONFIG_FW_CFG_SYSFS=y \
             (`--fragment FILE`), or use --gdb",
            missing.join(" and ")
        );
    }
    Ok(())
}

/// The lines that say how to look at the guest with drgn.
pub fn drgn_lines(drgn: &Path, vmlinux: &Path, run_dir: &Path) -> Vec<String> {
    let core = run_dir.join("vmcore");
    vec![
        "drgn: dump the guest's memory from QEMU's monitor, then open it on the host:".into(),
        format!(
            "  Ctrl-A c, `dump-guest-memory {}`, Ctrl-A c (the guest pauses during the dump)",
            core.display()
        ),
        format!(
            "  on the host: {} -s {} -c {}",
            drgn.display(),
            vmlinux.display(),
            core.display()
        ),
    ]
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gdb(scripts: bool) -> Gdb {
        Gdb {
            port: 41234,
            vmlinux: "/c/k/vmlinux".into(),
            scripts: scripts.then(|| PathBuf::from("/w/build/vmlinux-gdb.py")),
            modules: "/c/k/modroot".into(),
        }
    }

    #[test]
    fn command_sources_the_scripts_and_attaches_to_the_stub() {
        assert_eq!(
            gdb(true).command(),
            "gdb -q /c/k/vmlinux -iex 'add-auto-load-safe-path /w/build' \
             -ex 'source /w/build/vmlinux-gdb.py' -ex 'target remote 127.0.0.1:41234' \
             -ex 'lx-symbols /c/k/modroot'"
        );
        assert_eq!(
            gdb(false).command(),
            "gdb -q /c/k/vmlinux -ex 'target remote 127.0.0.1:41234'"
        );
        let lines = gdb(true).lines().join("\n");
        assert!(
            lines.contains("127.0.0.1:41234") && lines.contains("lx-dmesg"),
            "{lines}"
        );
    }

    #[test]
    fn nokaslr_only_where_the_kernel_randomizes() {
        assert_eq!(
            debug_cmdline("CONFIG_X=y\nCONFIG_RANDOMIZE_BASE=y\n"),
            "nokaslr"
        );
        assert_eq!(debug_cmdline("# CONFIG_RANDOMIZE_BASE is not set\n"), "");
    }

    #[test]
    fn free_ports_are_free() {
        let p = free_port().unwrap();
        assert!(p > 0);
        TcpListener::bind(("127.0.0.1", p)).unwrap();
    }

    #[test]
    fn drgn_needs_vmcoreinfo_and_fw_cfg() {
        let e = drgn_kernel_check("# CONFIG_FW_CFG_SYSFS is not set\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONFIG_VMCORE_INFO and CONFIG_FW_CFG_SYSFS")
                && e.contains("CONFIG_KEXEC=y"),
            "{e}"
        );
        drgn_kernel_check("CONFIG_VMCORE_INFO=y\nCONFIG_FW_CFG_SYSFS=m\n").unwrap();
    }

    #[test]
    fn drgn_lines_name_the_dump_and_the_command() {
        let l = drgn_lines(
            Path::new("/usr/bin/drgn"),
            Path::new("/k/vmlinux"),
            Path::new("/r"),
        );
        let t = l.join("\n");
        assert!(t.contains("dump-guest-memory /r/vmcore"), "{t}");
        assert!(
            t.contains("/usr/bin/drgn -s /k/vmlinux -c /r/vmcore"),
            "{t}"
        );
    }
}
