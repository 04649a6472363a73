//! Golden QEMU argv for the checked-in topologies: one argument per line in tests/golden/.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p lab-vm --test golden_args`.

use lab_vm::accel::Accel;
use lab_vm::qemu_args::{qemu_args, KernelBoot, QemuOptions, BASE_KERNEL_CMDLINE};
use lab_vm::topology::Topology;
use std::path::{Path, PathBuf};

fn check_golden(topology_name: &str) {
    let topology = Topology::load_named(topology_name).expect("topology loads");
    let run_dir = Path::new("/run/famfs-lab/run-1");
    let boot = KernelBoot {
        kernel: PathBuf::from("/lab/kernels/bzImage"),
        initramfs: PathBuf::from("/lab/images/initramfs.cpio.gz"),
        cmdline: format!("{BASE_KERNEL_CMDLINE} famfs_lab.agent=1"),
    };
    let mut options = QemuOptions::in_run_dir(run_dir);
    options.results_dir = Some(run_dir.join("results"));
    let args = qemu_args(&topology, Some(&boot), run_dir, Accel::Tcg, &options);
    let actual: String = args
        .iter()
        .map(|a| format!("{}\n", a.to_string_lossy()))
        .collect();

    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{topology_name}.args"));
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&golden, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if expected != actual {
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "QEMU argv for topology `{topology_name}` differs from {} (first difference at line {}).\n\
             If the change is intended, regenerate with:\n  \
             UPDATE_GOLDEN=1 cargo test -p lab-vm --test golden_args\n\
             and review the diff.\n--- actual ---\n{actual}",
            golden.display(),
            first_diff + 1
        );
    }
}

#[test]
fn default_topology_argv() {
    check_golden("default");
}

#[test]
fn two_devices_topology_argv() {
    check_golden("two-devices");
}
