//! Choosing the accelerator: KVM only when a KVM guest really runs here, else TCG.
//!
//! `/dev/kvm` existing proves little. On machines of the lab's kind it opens and creates VMs,
//! and then either QEMU aborts at vCPU reset ("failed to set MSR 0x10a", no nested
//! virtualization) or QEMU reports `running` while the guest never executes an instruction.
//! Only a guest that prints proves KVM. So the probe is (1) a cheap ioctl check that names
//! the reason when KVM is plainly absent, then (2) QEMU with the lab's own `-accel`/`-cpu`
//! running a 64 KiB firmware stub ([`probe_firmware`]) that writes [`PROBE_BANNER`] to the
//! serial port and leaves through `isa-debug-exit`: KVM works only if the banner arrives
//! within [`PROBE_DEADLINE`]. The verdict is cached per host boot and QEMU binary
//! ([`probe_kvm_cached`]), and the runner still watches the real guest: a KVM guest that
//! prints nothing early is restarted under TCG (lab-runner's boot guard).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Environment variable forcing the choice: `kvm`, `tcg` or `auto` (default).
pub const ACCEL_ENV: &str = "FAMFS_LAB_ACCEL";
/// QEMU binary used when none is given.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";
/// What the firmware stub prints.
pub const PROBE_BANNER: &str = "famfs-lab: the probe guest runs";
/// How long the stub may take to print under the accelerator probed (it needs microseconds).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(5);
/// The file under the cache root holding this boot's verdict.
pub const PROBE_CACHE_FILE: &str = "accel-probe.yaml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// `-accel` and `-cpu` for `accel`: the lab's guests and the KVM probe use the same.
pub fn accel_args(accel: Accel) -> [&'static str; 4] {
    match accel {
        // hypervisor=off: x86 Linux refuses CXL cache invalidation under a hypervisor, and
        // `cxl create-region` then fails unless the kernel has CXL_REGION_INVALIDATION_TEST.
        Accel::Tcg => ["-accel", "tcg", "-cpu", "max,hypervisor=off"],
        Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
    }
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelRequest {
    Auto,
    Force(Accel),
}

impl AccelRequest {
    /// Reads [`ACCEL_ENV`]; unset or empty means `auto`.
    pub fn from_env() -> Result<AccelRequest> {
        match std::env::var(ACCEL_ENV) {
            Err(_) => Ok(AccelRequest::Auto),
            Ok(v) => Self::parse(&v),
        }
    }

    pub fn parse(value: &str) -> Result<AccelRequest> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(AccelRequest::Auto),
            "kvm" => Ok(AccelRequest::Force(Accel::Kvm)),
            "tcg" => Ok(AccelRequest::Force(Accel::Tcg)),
            _ => Err(Error::BadAccelOverride {
                value: value.to_string(),
            }),
        }
    }
}

/// The accelerator to use and why (the lab prints the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
    /// Asked for by [`ACCEL_ENV`]: a silent KVM guest is then an error, not a fallback.
    pub forced: bool,
}

impl AccelChoice {
    /// TCG after a KVM guest that printed nothing (the runner's boot guard).
    pub fn fallback_to_tcg(&self, why: &str) -> AccelChoice {
        AccelChoice {
            accel: Accel::Tcg,
            reason: format!("using TCG: {why} (restarted once under TCG)"),
            forced: false,
        }
    }
}

/// Outcome of the KVM probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmProbe {
    pub works: bool,
    pub reason: String,
}

/// What a probe guest did under one accelerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRun {
    /// The banner arrived.
    Printed { after: Duration },
    /// QEMU kept running (or ended) without the banner within the deadline.
    Silent {
        waited: Duration,
        qemu_error: String,
    },
    /// QEMU ended with an error before printing.
    QemuFailed { status: String, qemu_error: String },
    /// QEMU could not be started.
    CannotStart(String),
}

/// The verdict from the probe's two inputs; pure, so the decision is unit-tested.
pub fn verdict(ioctl: std::result::Result<(), String>, guest: Option<GuestRun>) -> KvmProbe {
    let no = |reason: String| KvmProbe {
        works: false,
        reason: format!("using TCG: {reason}"),
    };
    if let Err(why) = ioctl {
        return no(why);
    }
    match guest {
        None => no("KVM: the probe guest was not run".into()),
        Some(GuestRun::Printed { after }) => KvmProbe {
            works: true,
            reason: format!(
                "KVM works: a KVM guest (-accel kvm -cpu host) printed within {} ms",
                after.as_millis()
            ),
        },
        Some(GuestRun::Silent { waited, qemu_error }) => no(format!(
            "KVM: QEMU ran but the guest printed nothing in {} s{}",
            waited.as_secs(),
            suffix(&qemu_error)
        )),
        Some(GuestRun::QemuFailed { status, qemu_error }) => no(format!(
            "KVM: QEMU with -accel kvm failed ({status}){}",
            suffix(&qemu_error)
        )),
        Some(GuestRun::CannotStart(why)) => no(format!("KVM: {why}")),
    }
}

fn suffix(qemu_error: &str) -> String {
    if qemu_error.is_empty() {
        String::new()
    } else {
        format!(": {qemu_error}")
    }
}

/// Chooses from [`ACCEL_ENV`] and the probe of `qemu` (cached under `cache_dir` per boot).
pub fn choose_accel(qemu: &Path, cache_dir: Option<&Path>) -> Result<AccelChoice> {
    choose_accel_for(AccelRequest::from_env()?, qemu, cache_dir)
}

/// [`choose_accel`] for a given request. `kvm` is probed too: a KVM that cannot run a
/// guest is an error (fast, before anything is built), never a silent TCG.
pub fn choose_accel_for(
    request: AccelRequest,
    qemu: &Path,
    cache_dir: Option<&Path>,
) -> Result<AccelChoice> {
    match request {
        AccelRequest::Force(Accel::Tcg) => Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: format!("TCG: forced by {ACCEL_ENV}=tcg (not probed)"),
            forced: true,
        }),
        AccelRequest::Force(Accel::Kvm) => {
            let probe = probe_kvm_cached(qemu, cache_dir);
            if !probe.works {
                return Err(Error::KvmUnavailable {
                    reason: probe.reason.trim_start_matches("using TCG: ").to_string(),
                });
            }
            Ok(AccelChoice {
                accel: Accel::Kvm,
                reason: format!("{} (forced by {ACCEL_ENV}=kvm)", probe.reason),
                forced: true,
            })
        }
        AccelRequest::Auto => {
            let probe = probe_kvm_cached(qemu, cache_dir);
            Ok(AccelChoice {
                accel: if probe.works { Accel::Kvm } else { Accel::Tcg },
                reason: probe.reason,
                forced: false,
            })
        }
    }
}

/// The cached verdict: valid for one host boot and one QEMU binary (path, size, mtime).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedProbe {
    boot_id: String,
    qemu: String,
    probe: KvmProbe,
}

/// What identifies "this boot, this QEMU"; None when the boot id cannot be read.
fn probe_identity(qemu: &Path) -> Option<(String, String)> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let resolved = if qemu.components().count() > 1 {
        qemu.to_path_buf()
    } else {
        find_on_path(qemu)?
    };
    let meta = std::fs::metadata(&resolved).ok()?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Some((
        boot_id.trim().to_string(),
        format!("{} size={} mtime={mtime}", resolved.display(), meta.len()),
    ))
}

fn find_on_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// [`probe_kvm`], run at most once per host boot and QEMU binary: the verdict is kept in
/// `cache_dir/accel-probe.yaml` (and not at all when `cache_dir` is None).
pub fn probe_kvm_cached(qemu: &Path, cache_dir: Option<&Path>) -> KvmProbe {
    let identity = probe_identity(qemu);
    let file = cache_dir.map(|d| d.join(PROBE_CACHE_FILE));
    if let (Some((boot_id, q)), Some(file)) = (&identity, &file) {
        let cached = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| serde_norway::from_str::<CachedProbe>(&text).ok());
        if let Some(c) = cached.filter(|c| &c.boot_id == boot_id && &c.qemu == q) {
            return KvmProbe {
                works: c.probe.works,
                reason: format!(
                    "{} [probed earlier this boot: {}]",
                    c.probe.reason,
                    file.display()
                ),
            };
        }
    }
    let probe = probe_kvm(qemu);
    if let (Some((boot_id, qemu)), Some(file)) = (identity, file) {
        let entry = CachedProbe {
            boot_id,
            qemu,
            probe: probe.clone(),
        };
        if let Ok(text) = serde_norway::to_string(&entry) {
            lab_host::cache_file::write(&file, &text);
        }
    }
    probe
}

/// Probes whether a KVM guest runs here: the ioctl check, then the firmware stub under
/// `-accel kvm -cpu host` (at most [`PROBE_DEADLINE`]).
pub fn probe_kvm(qemu: &Path) -> KvmProbe {
    let ioctl = kvm_ioctl_check();
    let guest = ioctl
        .is_ok()
        .then(|| run_probe_guest(qemu, Accel::Kvm, &probe_firmware(), PROBE_DEADLINE));
    verdict(ioctl, guest)
}

mod kvm_ioctls {
    const KVMIO: u32 = 0xAE;
    vmm_sys_util::ioctl_io_nr!(KVM_GET_API_VERSION, KVMIO, 0x00);
    vmm_sys_util::ioctl_io_nr!(KVM_CREATE_VM, KVMIO, 0x01);
}

/// /dev/kvm opens, speaks API 12 and creates a VM.
fn kvm_ioctl_check() -> std::result::Result<(), String> {
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an int.
    let version = unsafe { vmm_sys_util::ioctl::ioctl(&kvm, kvm_ioctls::KVM_GET_API_VERSION()) };
    if version < 0 {
        return Err(format!(
            "KVM_GET_API_VERSION failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    if version != 12 {
        return Err(format!(
            "/dev/kvm reports API version {version}, expected 12"
        ));
    }
    // SAFETY: KVM_CREATE_VM with machine type 0 returns a new fd or fails.
    let vm = unsafe { vmm_sys_util::ioctl::ioctl_with_val(&kvm, kvm_ioctls::KVM_CREATE_VM(), 0) };
    if vm < 0 {
        return Err(format!(
            "KVM_CREATE_VM failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `vm` is a fresh fd we own; OwnedFd closes it.
    drop(unsafe { OwnedFd::from_raw_fd(vm) });
    Ok(())
}

/// The I/O port of the probe's `isa-debug-exit` device.
const DEBUG_EXIT_PORT: u8 = 0xf4;
/// The byte the stub writes there; QEMU exits with `(byte << 1) | 1`.
const DEBUG_EXIT_VALUE: u8 = 0x31;
/// QEMU's exit status after the stub's write.
pub const PROBE_EXIT_STATUS: i32 = ((DEBUG_EXIT_VALUE as i32) << 1) | 1;

/// A 64 KiB x86 firmware image (QEMU's `-bios` wants a multiple of 64 KiB) that prints
/// [`PROBE_BANNER`] on COM1 and exits QEMU through `isa-debug-exit`.
///
/// The CPU starts in real mode at F000:FFF0, the image's last 16 bytes; a near jump there goes
/// to offset 0, where each banner byte is `mov al, BYTE; out dx, al` with dx = 0x3f8 (the
/// 16550 transmits on a write to THR with its reset state), then `mov al, 0x31; out 0xf4, al`
/// and `cli; hlt` in a loop should the exit device be missing. The rest is `hlt`.
pub fn probe_firmware() -> Vec<u8> {
    const HLT: u8 = 0xf4;
    let mut code = vec![0xba, 0xf8, 0x03]; // mov dx, 0x3f8
    for b in PROBE_BANNER.bytes().chain(std::iter::once(b'\n')) {
        code.extend([0xb0, b, 0xee]); // mov al, b; out dx, al
    }
    code.extend([0xb0, DEBUG_EXIT_VALUE, 0xe6, DEBUG_EXIT_PORT]); // mov al, v; out port, al
    code.extend([0xfa, HLT, 0xeb, 0xfd]); // cli; hlt; jmp back to hlt
    let mut rom = vec![HLT; 64 * 1024];
    rom[..code.len()].copy_from_slice(&code);
    // At F000:FFF0: jmp near to offset 0 (rel16 from the next instruction at 0xfff3).
    let rel = 0u16.wrapping_sub(0xfff3);
    let reset = 0xfff0;
    rom[reset] = 0xe9;
    rom[reset + 1..reset + 3].copy_from_slice(&rel.to_le_bytes());
    rom
}

/// Runs `firmware` under `accel` and reports whether the banner came within `deadline`.
pub fn run_probe_guest(qemu: &Path, accel: Accel, firmware: &[u8], deadline: Duration) -> GuestRun {
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return GuestRun::CannotStart(format!("no temporary directory: {e}")),
    };
    let rom = dir.0.join("probe.rom");
    if let Err(e) = std::fs::write(&rom, firmware) {
        return GuestRun::CannotStart(format!("writing {}: {e}", rom.display()));
    }
    let mut child = match Command::new(qemu)
        .args(accel_args(accel))
        .args(["-M", "q35", "-m", "16", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio"])
        .arg("-bios")
        .arg(&rom)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return GuestRun::CannotStart(format!("cannot run {}: {e}", qemu.display())),
    };
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(PROBE_BANNER) {
                    let _ = tx.send(());
                    break;
                }
            }
        });
    }
    // The reader ends early (channel closed) when QEMU exits: then QEMU's status says why.
    let printed = rx.recv_timeout(deadline).is_ok();
    let waited = started.elapsed();
    // The stub exits by itself, and a QEMU that died is reaped in a moment; a silent, still
    // running QEMU is killed.
    let exit_by = Instant::now() + Duration::from_secs(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < exit_by && (printed || waited < deadline) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let qemu_error = err
        .lines()
        .find(|l| l.contains("error") || l.contains("failed") || l.contains("Assertion"))
        .or_else(|| err.lines().next())
        .unwrap_or("")
        .trim()
        .to_string();
    if printed {
        return GuestRun::Printed { after: waited };
    }
    match status {
        Some(s) if s.code() != Some(PROBE_EXIT_STATUS) => GuestRun::QemuFailed {
            status: s.to_string(),
            qemu_error,
        },
        _ => GuestRun::Silent { waited, qemu_error },
    }
}

/// A private temporary directory removed on drop (lab-vm has no tempfile dependency).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> std::io::Result<TempDir> {
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let dir = base.join(format!("famfs-lab-probe-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(TempDir(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free probe directory name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_override() {
        assert_eq!(
            AccelRequest::parse("KVM").ok(),
            Some(AccelRequest::Force(Accel::Kvm))
        );
        assert_eq!(
            AccelRequest::parse("tcg").ok(),
            Some(AccelRequest::Force(Accel::Tcg))
        );
        assert_eq!(AccelRequest::parse("").ok(), Some(AccelRequest::Auto));
        assert!(matches!(
            AccelRequest::parse("xen"),
            Err(Error::BadAccelOverride { .. })
        ));
        let forced = choose_accel_for(
            AccelRequest::Force(Accel::Tcg),
            Path::new("/nonexistent"),
            None,
        )
        .expect("tcg is never probed");
        assert_eq!(forced.accel, Accel::Tcg);
        assert!(forced.forced);
        assert!(forced.reason.contains(ACCEL_ENV));
    }

    #[test]
    fn verdict_needs_a_guest_that_printed() {
        let ok = verdict(
            Ok(()),
            Some(GuestRun::Printed {
                after: Duration::from_millis(12),
            }),
        );
        assert!(ok.works, "{ok:?}");
        // QEMU "running" but nothing printed: the machine kind whose guests never execute.
        let silent = verdict(
            Ok(()),
            Some(GuestRun::Silent {
                waited: Duration::from_secs(5),
                qemu_error: String::new(),
            }),
        );
        assert!(!silent.works);
        assert!(
            silent
                .reason
                .contains("QEMU ran but the guest printed nothing in 5 s"),
            "{}",
            silent.reason
        );
        // The abort at vCPU reset.
        let abort = verdict(
            Ok(()),
            Some(GuestRun::QemuFailed {
                status: "signal: 6 (SIGABRT)".into(),
                qemu_error: "error: failed to set MSR 0x10a to 0xc000069".into(),
            }),
        );
        assert!(!abort.works);
        assert!(abort.reason.contains("MSR 0x10a"), "{}", abort.reason);
        let no_dev = verdict(Err("cannot open /dev/kvm: No such file".into()), None);
        assert!(!no_dev.works);
        assert!(no_dev.reason.contains("/dev/kvm"), "{}", no_dev.reason);
        assert!(!verdict(Ok(()), None).works);
        let no_qemu = verdict(Ok(()), Some(GuestRun::CannotStart("cannot run q".into())));
        assert!(!no_qemu.works && no_qemu.reason.contains("cannot run q"));
    }

    #[test]
    fn firmware_is_64k_with_a_jump_at_the_reset_vector() {
        let rom = probe_firmware();
        assert_eq!(rom.len(), 65536);
        // jmp near rel16 to offset 0: 0xfff3 + rel == 0x10000.
        assert_eq!(rom[0xfff0], 0xe9);
        let rel = u16::from_le_bytes([rom[0xfff1], rom[0xfff2]]);
        assert_eq!(0xfff3u16.wrapping_add(rel), 0);
        // The banner's bytes are there as immediates, in order.
        let immediates: Vec<u8> = rom[3..]
            .chunks(3)
            .take_while(|c| c[0] == 0xb0 && c[2] == 0xee)
            .map(|c| c[1])
            .collect();
        assert_eq!(immediates, format!("{PROBE_BANNER}\n").into_bytes());
    }

    /// A QEMU that aborts at vCPU reset (the MSR 0x10a machine kind) is a failure with its
    /// message, not a silent guest, however fast it dies.
    #[test]
    fn a_qemu_that_aborts_is_a_failure_with_its_message() {
        let dir = tempfile_dir().expect("temp dir");
        let fake = dir.0.join("qemu-aborts");
        std::fs::write(
            &fake,
            // stdout closes before the process is gone: the window in which the probe once
            // mistook an abort for silence.
            "#!/bin/sh\necho 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0xc000069' >&2\nexec 1>&-\nsleep 0.3\nkill -ABRT $$\n",
        )
        .expect("write the fake");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let run = run_probe_guest(&fake, Accel::Kvm, &probe_firmware(), Duration::from_secs(5));
        assert!(
            matches!(&run, GuestRun::QemuFailed { qemu_error, .. } if qemu_error.contains("MSR 0x10a")),
            "{run:?}"
        );
        let v = verdict(Ok(()), Some(run));
        assert!(
            v.reason.contains("failed") && v.reason.contains("MSR"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn missing_qemu_cannot_start() {
        let run = run_probe_guest(
            Path::new("/nonexistent/qemu"),
            Accel::Tcg,
            &probe_firmware(),
            Duration::from_secs(1),
        );
        assert!(
            matches!(&run, GuestRun::CannotStart(w) if w.contains("/nonexistent/qemu")),
            "{run:?}"
        );
    }

    #[test]
    fn forced_kvm_without_a_working_kvm_is_an_error_naming_the_reason() {
        let err = choose_accel_for(
            AccelRequest::Force(Accel::Kvm),
            Path::new("/nonexistent/qemu"),
            None,
        )
        .expect_err("no QEMU, no KVM guest");
        let text = err.to_string();
        assert!(text.contains("FAMFS_LAB_ACCEL=kvm"), "{text}");
        assert!(text.contains("using TCG") || text.contains("KVM"), "{text}");
    }
}
