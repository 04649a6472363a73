//! Choosing the accelerator: KVM only when QEMU really runs a KVM guest here, else TCG.
//!
//! `/dev/kvm` existing proves little: on the lab's build machines it opens, KVM_CREATE_VM works,
//! and QEMU still aborts at vCPU reset with "failed to set MSR 0x10a" (no nested virtualization).
//! A hand-made `hlt` guest would pass there too, since it never touches those MSRs. So the probe
//! is (1) a cheap ioctl check that gives a precise reason when KVM is plainly absent, then
//! (2) QEMU itself: `-accel kvm -cpu host` on an empty q35 machine, resumed over QMP, must report
//! `running` and quit cleanly.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Environment variable forcing the choice: `kvm`, `tcg` or `auto` (default).
pub const ACCEL_ENV: &str = "FAMFS_LAB_ACCEL";
/// QEMU binary used when none is given.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accel {
    Kvm,
    Tcg,
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
}

/// Outcome of the KVM probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    pub works: bool,
    pub reason: String,
}

/// Chooses from [`ACCEL_ENV`] and, for `auto`, the (per-process cached) probe of `qemu`.
pub fn choose_accel(qemu: &Path) -> Result<AccelChoice> {
    Ok(choose_accel_for(AccelRequest::from_env()?, qemu))
}

pub fn choose_accel_for(request: AccelRequest, qemu: &Path) -> AccelChoice {
    match request {
        AccelRequest::Force(accel) => AccelChoice {
            accel,
            reason: format!("forced by {ACCEL_ENV}={accel} (not probed)"),
        },
        AccelRequest::Auto => {
            let probe = probe_kvm_cached(qemu);
            AccelChoice {
                accel: if probe.works { Accel::Kvm } else { Accel::Tcg },
                reason: probe.reason,
            }
        }
    }
}

/// [`probe_kvm`], run at most once per process and QEMU binary.
pub fn probe_kvm_cached(qemu: &Path) -> KvmProbe {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, KvmProbe>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(qemu.to_path_buf())
        .or_insert_with(|| probe_kvm(qemu))
        .clone()
}

/// Probes whether QEMU can run a KVM guest here (about a second when KVM looks usable).
pub fn probe_kvm(qemu: &Path) -> KvmProbe {
    let result = kvm_ioctl_check().and_then(|()| qemu_kvm_check(qemu));
    match result {
        Ok(()) => KvmProbe {
            works: true,
            reason: format!(
                "KVM works: {} ran a KVM guest (-accel kvm -cpu host)",
                qemu.display()
            ),
        },
        Err(why) => KvmProbe {
            works: false,
            reason: format!("using TCG: {why}"),
        },
    }
}

mod kvm_ioctls {
    const KVMIO: std::os::raw::c_uint = 0xAE;
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
    if version != 12 {
        return Err(format!(
            "/dev/kvm reports API version {version}, expected 12"
        ));
    }
    // SAFETY: KVM_CREATE_VM with machine type 0 returns a new fd or -1.
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

/// QEMU with KVM creates, resets and runs an empty machine for a moment.
fn qemu_kvm_check(qemu: &Path) -> std::result::Result<(), String> {
    let mut child = Command::new(qemu)
        .args(["-accel", "kvm", "-cpu", "host", "-M", "q35", "-m", "64"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-S", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let mut stdin = child.stdin.take();
    let mut send = |cmds: &str| {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(cmds.as_bytes()).and_then(|()| s.flush());
        }
    };
    send("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"cont\"}\n");
    std::thread::sleep(Duration::from_millis(300));
    send("{\"execute\":\"query-status\"}\n{\"execute\":\"quit\"}\n");
    drop(stdin);

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let first_err = err.lines().next().unwrap_or("").trim().to_string();
    match status {
        None => Err("QEMU with -accel kvm did not finish within 15 s".into()),
        Some(s) if !s.success() => Err(format!("QEMU with -accel kvm failed ({s}): {first_err}")),
        Some(_) if !out.contains("\"running\"") => Err(format!(
            "QEMU with -accel kvm never reported a running guest: {first_err}"
        )),
        Some(_) => Ok(()),
    }
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
        let forced = choose_accel_for(AccelRequest::Force(Accel::Tcg), Path::new("/nonexistent"));
        assert_eq!(forced.accel, Accel::Tcg);
        assert!(forced.reason.contains(ACCEL_ENV));
    }

    #[test]
    fn missing_qemu_means_tcg_with_reason() {
        let p = qemu_kvm_check(Path::new("/nonexistent/qemu"));
        assert!(p.is_err_and(|e| e.contains("cannot run /nonexistent/qemu")));
    }
}
