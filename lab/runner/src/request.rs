//! What a run is asked to do: the kernel, image, topology, cases and how to reach the guest.

use crate::plan::KernelFeatures;
use lab_vm::topology::Topology;
use lab_vm::AccelChoice;
use std::path::PathBuf;
use std::time::Duration;

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub kernel: KernelFeatures,
    pub kernel_hash: String,
    /// What QEMU boots: vmlinux through its PVH entry, or bzImage (the kernel cache entry's
    /// `boot_image`).
    pub kernel_image: PathBuf,
    pub initramfs: PathBuf,
    pub topology: Topology,
    pub suites: Vec<String>,
    pub cases: Vec<String>,
    pub accel: AccelChoice,
    /// The command that reruns this run; `--case ID` is appended per failure.
    pub reproduce: String,
    /// Extra kernel command line.
    pub cmdline: String,
    /// The fmap ops variant the cases mount with (`FAMFS_LAB_OPS` in the
    /// guest): famfs, famfs_maplookup or famfs_native.
    pub ops: String,
    pub boot_timeout: Duration,
    /// A shadow tree the user brought (`lab up --shadow`), for the `shadow` suite.
    pub user_tree: Option<crate::user_tree::UserTree>,
    /// Where the console goes and whether QEMU's gdb stub listens (a run: `serial.log` only).
    pub console: Console,
    /// Guest time: the host's clock, or QEMU's instruction counter (`-icount`, TCG only;
    /// every host-side wait then scaled by [`lab_vm::Clock::timeout_scale`]).
    pub clock: lab_vm::Clock,
}

impl RunRequest {
    /// `base` scaled for this run's clock (icount runs are slower; waits keep a limit).
    pub fn wait(&self, base: Duration) -> Duration {
        base * self.clock.timeout_scale()
    }
}

/// How the guest's console and debugger are wired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Console {
    /// The console on this process's terminal as well as in `serial.log` (`lab shell`).
    pub terminal: bool,
    /// QEMU's gdb stub on `127.0.0.1:PORT`.
    pub gdb_port: Option<u16>,
    /// QEMU's `vmcoreinfo` device, so a memory dump carries the guest's vmcoreinfo (drgn).
    pub vmcoreinfo: bool,
}
