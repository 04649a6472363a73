//! The host tools the lab needs, how to tell whether each is present, and
//! which Debian package brings it.

use std::path::Path;

/// What the lab needs a tool for; `check` selects groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Fetching, patching and building kernels.
    Kernel,
    /// Building the guest image.
    Image,
    /// Booting the VM.
    Vm,
    /// Building the BPF objects and the guest binaries that link libbpf.
    Bpf,
}

/// How presence is checked.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable found on `PATH` (or in /usr/sbin, /sbin for root tools).
    Binary(&'static str),
    /// A file that must exist (headers of -dev packages).
    File(&'static str),
}

/// One host requirement.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub probe: Probe,
    pub package: &'static str,
    /// Debian suite to install from, when the default one is too old.
    pub suite: Option<&'static str>,
    /// Every need it serves (libelf-dev serves the kernel build and libbpf-sys).
    pub needs: &'static [Need],
    pub why: &'static str,
}

const fn bin(
    name: &'static str,
    package: &'static str,
    needs: &'static [Need],
    why: &'static str,
) -> Tool {
    Tool {
        probe: Probe::Binary(name),
        package,
        suite: None,
        needs,
        why,
    }
}

const fn file(
    path: &'static str,
    package: &'static str,
    needs: &'static [Need],
    why: &'static str,
) -> Tool {
    Tool {
        probe: Probe::File(path),
        package,
        suite: None,
        needs,
        why,
    }
}

/// The kernel build, and the vendored libbpf build of libbpf-sys (guest binaries).
const KERNEL_AND_BPF: &[Need] = &[Need::Kernel, Need::Bpf];

/// Every tool the lab uses, in install order.
pub const TOOLS: &[Tool] = &[
    bin(
        "gcc",
        "build-essential",
        KERNEL_AND_BPF,
        "compiles the kernel and libbpf-sys's vendored libbpf",
    ),
    bin(
        "make",
        "make",
        KERNEL_AND_BPF,
        "drives the kernel build and libbpf-sys's vendored libbpf",
    ),
    bin("flex", "flex", &[Need::Kernel], "kconfig lexer"),
    bin("bison", "bison", &[Need::Kernel], "kconfig parser"),
    bin("bc", "bc", &[Need::Kernel], "kernel build arithmetic"),
    bin(
        "perl",
        "perl",
        &[Need::Kernel],
        "kernel build scripts and checkpatch",
    ),
    bin(
        "python3",
        "python3",
        &[Need::Kernel],
        "kernel build scripts",
    ),
    bin(
        "git",
        "git",
        &[Need::Kernel],
        "source trees and patch series",
    ),
    bin(
        "xz",
        "xz-utils",
        &[Need::Kernel],
        "unpacks the kernel source",
    ),
    bin(
        "objcopy",
        "binutils",
        &[Need::Kernel],
        "the stripped vmlinux QEMU boots",
    ),
    bin(
        "pahole",
        "dwarves",
        &[Need::Kernel],
        "generates BTF for vmlinux",
    ),
    file(
        "/usr/include/libelf.h",
        "libelf-dev",
        KERNEL_AND_BPF,
        "objtool, resolve_btfids and libbpf",
    ),
    file(
        "/usr/include/openssl/ssl.h",
        "libssl-dev",
        &[Need::Kernel],
        "module signing tools",
    ),
    file(
        "/usr/lib/python3/dist-packages/ply/__init__.py",
        "python3-ply",
        &[Need::Kernel],
        "checkpatch's SPDX check (scripts/spdxcheck.py)",
    ),
    file(
        "/usr/lib/python3/dist-packages/git/__init__.py",
        "python3-git",
        &[Need::Kernel],
        "checkpatch's SPDX check (scripts/spdxcheck.py)",
    ),
    bin("cpio", "cpio", &[Need::Image], "checks guest images"),
    bin(
        "busybox",
        "busybox-static",
        &[Need::Image],
        "the guest's shell and utilities",
    ),
    bin(
        "kmod",
        "kmod",
        &[Need::Image],
        "module loading in the guest",
    ),
    bin(
        "cxl",
        "ndctl",
        &[Need::Image],
        "CXL region setup in the guest",
    ),
    bin(
        "daxctl",
        "daxctl",
        &[Need::Image],
        "dax device modes in the guest",
    ),
    bin(
        "bpftool",
        "bpftool",
        &[Need::Kernel, Need::Image],
        "BTF dumps and struct_ops listing",
    ),
    Tool {
        probe: Probe::Binary("qemu-system-x86_64"),
        package: "qemu-system-x86",
        suite: Some("backports"),
        needs: &[Need::Vm],
        why: "runs the guest with emulated CXL memory",
    },
    bin(
        "clang",
        "clang",
        &[Need::Kernel, Need::Bpf],
        "compiles BPF programs (the kernel's BPF selftests too)",
    ),
    bin("pkg-config", "pkg-config", &[Need::Bpf], "libbpf-sys build"),
    file(
        "/usr/include/zlib.h",
        "zlib1g-dev",
        &[Need::Bpf],
        "libbpf-sys build",
    ),
];

impl Tool {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self.probe {
            Probe::Binary(b) => b,
            Probe::File(f) => f,
        }
    }

    /// Whether the tool is on this host.
    pub fn present(&self) -> bool {
        match self.probe {
            Probe::Binary(b) => find_binary(b).is_some(),
            Probe::File(f) => Path::new(f).exists(),
        }
    }
}

/// Looks an executable up on `PATH` plus the sbin directories (root tools
/// such as bpftool live there and `PATH` may lack them).
pub fn find_binary(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(std::path::PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The tools serving any of `needs`.
pub fn tools_for(needs: &[Need]) -> impl Iterator<Item = &'static Tool> + '_ {
    TOOLS
        .iter()
        .filter(move |t| t.needs.iter().any(|n| needs.contains(n)))
}

/// The tools of the given needs that are missing here.
pub fn missing(needs: &[Need]) -> Vec<Tool> {
    tools_for(needs).filter(|t| !t.present()).copied().collect()
}

/// A step of a verb that runs host tools. A verb checks the needs of every stage it will run
/// ([`needs_of`]) before its first long step, so it never builds for ten minutes and then
/// misses a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Fetching, patching, configuring, building and checking a kernel.
    Kernel,
    /// `cargo build` of the guest binaries: BPF objects (clang) and libbpf-sys.
    GuestBinaries,
    /// The initramfs: busybox, ndctl, bpftool and friends copied from the host.
    Initramfs,
    /// QEMU.
    Boot,
    /// The workspace's unit and integration tests (they build BPF and boot QEMU).
    UnitTests,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Kernel,
        Stage::GuestBinaries,
        Stage::Initramfs,
        Stage::Boot,
        Stage::UnitTests,
    ];

    /// The needs whose tools this stage runs.
    pub fn needs(self) -> &'static [Need] {
        match self {
            Stage::Kernel => &[Need::Kernel],
            Stage::GuestBinaries => &[Need::Bpf],
            Stage::Initramfs => &[Need::Image],
            Stage::Boot => &[Need::Vm],
            Stage::UnitTests => &[Need::Bpf, Need::Image, Need::Vm],
        }
    }
}

/// The needs of every stage in `stages`, each once.
pub fn needs_of(stages: &[Stage]) -> Vec<Need> {
    let mut needs: Vec<Need> = Vec::new();
    for n in stages.iter().flat_map(|s| s.needs()) {
        if !needs.contains(n) {
            needs.push(*n);
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_has_tools_and_names_are_unique() {
        for need in [Need::Kernel, Need::Image, Need::Vm, Need::Bpf] {
            assert!(tools_for(&[need]).next().is_some(), "{need:?}");
        }
        let mut names: Vec<_> = TOOLS.iter().map(Tool::name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn finds_sh_and_not_a_made_up_tool() {
        assert!(find_binary("sh").is_some());
        assert!(find_binary("famfs-lab-no-such-tool").is_none());
    }
}
