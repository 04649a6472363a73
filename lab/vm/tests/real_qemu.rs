//! Tests against the real qemu-system-x86_64 (TCG, no kernel). They fail, naming the fix, when
//! QEMU is not installed.

use lab_vm::accel::{
    probe_firmware, probe_kvm_cached, run_probe_guest, verdict, Accel, GuestRun, DEFAULT_QEMU,
};
use lab_vm::topology::Topology;
use lab_vm::vm::{ShutdownOutcome, Vm, VmSpec};
use lab_vm::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn require_qemu() {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(DEFAULT_QEMU).is_file()))
        .unwrap_or(false);
    assert!(found, "{DEFAULT_QEMU} is not installed: run `cargo xtask host setup` (these tests need the real QEMU)");
}

/// A process is gone when it no longer exists or is only a zombie waiting for init.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn paused_spec(topology: &str, run_dir: &Path) -> VmSpec {
    let topology = Topology::load_named(topology).expect("topology");
    let mut spec = VmSpec::new(topology, None, run_dir, Accel::Tcg);
    spec.options.start_paused = true;
    spec
}

#[tokio::test]
async fn launch_query_status_quit() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vm = Vm::launch(paused_spec("default", dir.path()))
        .await
        .expect("QEMU starts");
    let pid = vm.pid();
    let status = vm
        .qmp()
        .expect("qmp")
        .query_status()
        .await
        .expect("query-status");
    assert!(!status.running, "-S keeps the vCPUs stopped: {status:?}");
    assert!(vm.is_running());

    let cmdline =
        std::fs::read_to_string(dir.path().join("qemu-cmdline.txt")).expect("cmdline file");
    assert!(
        cmdline.contains("cxl-type3,bus=rp0,volatile-memdev=vmem-mem0,id=mem0"),
        "{cmdline}"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("mem0.raw"))
            .expect("backing")
            .len(),
        1 << 30
    );
    assert!(dir.path().join("qemu.stderr").is_file());

    vm.qmp().expect("qmp").quit().await.expect("quit");
    let exit = vm
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("QEMU exits after quit");
    assert!(exit.success(), "{exit}");
    assert!(process_gone(pid), "QEMU pid {pid} still exists");
    assert!(vm.qmp().is_ok(), "client object stays until shutdown/kill");
}

#[tokio::test]
async fn dropping_a_vm_kills_qemu() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    // Not paused: the firmware runs (and finds nothing to boot) while we drop it.
    let mut spec = paused_spec("two-devices", dir.path());
    spec.options.start_paused = false;
    let mut vm = Vm::launch(spec).await.expect("QEMU starts");
    let pid = vm.pid();
    assert!(
        vm.qmp()
            .expect("qmp")
            .query_status()
            .await
            .expect("status")
            .running
    );
    drop(vm);
    assert!(process_gone(pid), "QEMU pid {pid} survived drop");
}

#[tokio::test]
async fn shutdown_of_a_guest_without_acpi_handling_falls_back_to_quit() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vm = Vm::launch(paused_spec("default", dir.path()))
        .await
        .expect("QEMU starts");
    let outcome = vm.shutdown(Duration::from_secs(4)).await.expect("shutdown");
    assert!(
        matches!(outcome, ShutdownOutcome::Quit(s) if s.success()),
        "{outcome:?}"
    );
    assert!(!vm.is_running());
    assert!(vm.exit_report().expect("exited").guest_panic.is_none());
}

#[tokio::test]
async fn qemu_start_failure_reports_stderr() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = paused_spec("default", dir.path());
    spec.extra_args = vec!["-device".into(), "no-such-device-model".into()];
    let start = Instant::now();
    let err = Vm::launch(spec)
        .await
        .expect_err("QEMU must refuse the device");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "should give up as soon as QEMU exits"
    );
    match &err {
        Error::QemuExited { stderr_tail, .. } => {
            assert!(stderr_tail.contains("no-such-device-model"), "{err}")
        }
        other => panic!("expected QemuExited, got {other}"),
    }
}

#[tokio::test]
async fn missing_qemu_binary_names_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = paused_spec("default", dir.path());
    spec.qemu = PathBuf::from("qemu-system-does-not-exist");
    let err = Vm::launch(spec).await.expect_err("missing binary");
    assert!(err.to_string().contains("cargo xtask host setup"), "{err}");
}

#[test]
fn the_probe_stub_prints_under_tcg() {
    require_qemu();
    let run = run_probe_guest(
        Path::new(DEFAULT_QEMU),
        Accel::Tcg,
        &probe_firmware(),
        Duration::from_secs(10),
    );
    assert!(matches!(run, GuestRun::Printed { .. }), "{run:?}");
}

/// The machine kind where QEMU reports `running` and the guest never executes, as the probe
/// sees it: a guest that prints nothing. A firmware of `hlt` only, under TCG, is such a guest.
#[test]
fn a_guest_that_prints_nothing_is_not_a_working_accelerator() {
    require_qemu();
    let silent_rom = vec![0xf4u8; 64 * 1024];
    let run = run_probe_guest(
        Path::new(DEFAULT_QEMU),
        Accel::Tcg,
        &silent_rom,
        Duration::from_secs(2),
    );
    assert!(matches!(run, GuestRun::Silent { .. }), "{run:?}");
    let v = verdict(Ok(()), Some(run));
    assert!(!v.works);
    assert!(v.reason.contains("printed nothing in 2 s"), "{}", v.reason);
}

#[test]
fn kvm_probe_gives_its_reason_and_caches_it_for_this_boot() {
    require_qemu();
    let cache = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let first = probe_kvm_cached(Path::new(DEFAULT_QEMU), Some(cache.path()));
    let first_took = started.elapsed();
    eprintln!("KVM probe: works={} reason: {}", first.works, first.reason);
    if !first.works {
        assert!(first.reason.starts_with("using TCG: "), "{}", first.reason);
    }
    assert!(cache.path().join(lab_vm::accel::PROBE_CACHE_FILE).is_file());
    let again = Instant::now();
    let second = probe_kvm_cached(Path::new(DEFAULT_QEMU), Some(cache.path()));
    assert_eq!(second.works, first.works);
    assert!(
        second.reason.contains("probed earlier this boot"),
        "{}",
        second.reason
    );
    assert!(again.elapsed() < first_took.max(Duration::from_millis(50)));
}

const CHILD_ENV: &str = "LAB_VM_SIGINT_CHILD_PIDFILE";

/// Helper run in a child process by `sigint_to_the_lab_kills_qemu`; does nothing otherwise.
#[tokio::test]
async fn sigint_child_helper() {
    let Some(pidfile) = std::env::var_os(CHILD_ENV) else {
        eprintln!(
            "sigint_child_helper: only does something when re-run by sigint_to_the_lab_kills_qemu"
        );
        return;
    };
    lab_vm::process_cleanup::install_signal_cleanup().expect("signal handlers");
    let dir = tempfile::tempdir().expect("tempdir");
    let vm = Vm::launch(paused_spec("default", dir.path()))
        .await
        .expect("QEMU starts");
    std::fs::write(&pidfile, vm.pid().to_string()).expect("write pid");
    tokio::time::sleep(Duration::from_secs(60)).await;
    panic!("SIGINT never came");
}

#[test]
fn sigint_to_the_lab_kills_qemu() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("qemu.pid");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "sigint_child_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &pidfile)
        .spawn()
        .expect("spawn child test process");
    let start = Instant::now();
    let qemu_pid: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("child never launched QEMU");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!process_gone(qemu_pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let status = child.wait().expect("child exits");
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(
        wait_gone(qemu_pid),
        "QEMU pid {qemu_pid} survived SIGINT to the lab"
    );
}

/// The runner's boot guard reads the first serial byte: SeaBIOS alone prints nothing on the
/// serial console, so a firmware-only guest is what a guest that never executes looks like.
#[tokio::test]
async fn first_serial_output_sees_a_silent_guest() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let topology =
        Topology::from_yaml("name: tiny\nmemory: 128M\ncpus: 1\n", "inline").expect("topology");
    let spec = VmSpec::new(topology, None, dir.path(), Accel::Tcg);
    let mut vm = Vm::launch(spec).await.expect("QEMU starts");
    let seen = vm
        .first_serial_output(Duration::from_secs(2))
        .await
        .expect("serial log");
    assert!(
        matches!(seen, lab_vm::FirstOutput::Silent(w) if w >= Duration::from_secs(2)),
        "{seen:?}"
    );
    vm.kill();
    let after = vm
        .first_serial_output(Duration::from_secs(2))
        .await
        .expect("serial log");
    assert!(matches!(after, lab_vm::FirstOutput::Exited(_)), "{after:?}");
}

/// The fault injector against the real QEMU (paused, no guest): the commands it uses are in
/// this QEMU's schema and take their arguments; a device that is not there is QEMU's error
/// text, not a panic; a bad QAPI name is refused before QEMU sees it.
#[tokio::test]
async fn fault_injector_drives_the_real_qemu() {
    use lab_vm::fault_inject::{inject, qemu_commands, Fault, Injected};
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vm = Vm::launch(paused_spec("two-devices", dir.path()))
        .await
        .expect("QEMU starts");
    let qmp = vm.qmp().expect("qmp");
    let (version, names) = qemu_commands(qmp).await.expect("query-commands");
    assert!(names.contains("query-status"), "{names:?}");
    for f in [
        Fault::Poison {
            device: "mem1".into(),
            dpa: 0x1000,
            length: 64,
        },
        Fault::Correctable {
            device: "mem0".into(),
            kind: "mem-data-ecc".into(),
        },
        Fault::Uncorrectable {
            device: "mem0".into(),
            errors: vec!["mem-data-ecc".into()],
        },
        Fault::GeneralMedia {
            device: "mem1".into(),
            dpa: 0x2000,
        },
    ] {
        let cmd = f.command();
        match inject(qmp, &f).await.expect(cmd) {
            Injected::Done(note) => {
                assert!(note.contains(cmd) && note.contains(&version), "{note}")
            }
            Injected::Unsupported { command, qemu } => {
                // Only an older QEMU lacks them; its version says so.
                assert_eq!(command, cmd);
                assert!(!names.contains(cmd) && qemu == version);
            }
        }
    }
    let absent = inject(
        qmp,
        &Fault::Poison {
            device: "mem9".into(),
            dpa: 0,
            length: 64,
        },
    )
    .await;
    assert!(
        matches!(&absent, Err(Error::Qmp { op, .. }) if op == "cxl-inject-poison"),
        "{absent:?}"
    );
    let bad = inject(
        qmp,
        &Fault::Correctable {
            device: "mem0".into(),
            kind: "no-such-error".into(),
        },
    )
    .await;
    assert!(
        matches!(&bad, Err(Error::Qmp { message, .. }) if message.contains("no-such-error")),
        "{bad:?}"
    );
    vm.kill();
}
