//! The boot guard: a KVM guest must print on its serial console within a few seconds.
//!
//! The accelerator probe (lab-vm `accel`) runs a firmware stub; the lab's real guest is a
//! different program and may still not execute under a half-working KVM. So each KVM boot is
//! watched: nothing on the serial console within [`KVM_FIRST_OUTPUT`] (or QEMU gone before a
//! byte) restarts the guest under TCG, once, with the reason in the report; when KVM was
//! forced (`FAMFS_LAB_ACCEL=kvm`) it is an error instead.

use crate::guest::{boot_at, Booted};
use crate::request::RunRequest;
use anyhow::{bail, Result};
use lab_vm::{Accel, AccelChoice, FirstOutput, Topology};
use std::path::Path;
use std::time::Duration;

/// How long a KVM guest may stay silent (a working one prints in well under a second).
pub const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(10);

/// What to do after watching a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardAction {
    /// Keep the guest.
    Keep,
    /// Kill it and boot again under TCG with this accelerator choice.
    RestartUnderTcg(AccelChoice),
    /// Kill it and fail the run (KVM was forced).
    Fail(String),
}

/// The decision, from the accelerator in use and what the console showed.
pub fn decide(accel: &AccelChoice, seen: FirstOutput) -> GuardAction {
    if accel.accel != Accel::Kvm {
        return GuardAction::Keep;
    }
    let why = match seen {
        FirstOutput::Printed(_) => return GuardAction::Keep,
        FirstOutput::Silent(waited) => format!(
            "KVM: QEMU ran but the guest printed nothing in {} s",
            waited.as_secs()
        ),
        FirstOutput::Exited(status) => {
            format!("KVM: QEMU exited ({status}) before the guest printed anything")
        }
    };
    if accel.forced {
        GuardAction::Fail(format!("{} (FAMFS_LAB_ACCEL=kvm, so no TCG fallback)", why))
    } else {
        GuardAction::RestartUnderTcg(accel.fallback_to_tcg(&why))
    }
}

/// Boots one guest with `req.accel` and applies the guard; returns the session and the
/// accelerator it really runs under.
pub(crate) async fn boot_guarded(
    req: &RunRequest,
    topology: Topology,
    dir: &Path,
) -> Result<(Booted, AccelChoice)> {
    let mut session = boot_at(req, &req.accel, topology.clone(), dir).await?;
    if req.accel.accel != Accel::Kvm {
        return Ok((session, req.accel.clone()));
    }
    let seen = session.vm.first_serial_output(KVM_FIRST_OUTPUT).await?;
    match decide(&req.accel, seen) {
        GuardAction::Keep => Ok((session, req.accel.clone())),
        GuardAction::Fail(why) => {
            session.vm.kill();
            bail!("{why}\nQEMU's stderr:\n{}", session.vm.stderr_tail(10))
        }
        GuardAction::RestartUnderTcg(tcg) => {
            session.vm.kill();
            lab_host::progress!("famfs-lab: {}", tcg.reason);
            // Keep the silent boot's log beside the real one.
            let log = session.serial.path().to_path_buf();
            let _ = std::fs::rename(&log, log.with_extension("kvm.log"));
            drop(session);
            let session = boot_at(req, &tcg, topology, dir).await?;
            Ok((session, tcg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn kvm(forced: bool) -> AccelChoice {
        AccelChoice {
            accel: Accel::Kvm,
            reason: "KVM works".into(),
            forced,
        }
    }

    #[test]
    fn a_silent_kvm_guest_restarts_under_tcg_with_the_reason() {
        let action = decide(&kvm(false), FirstOutput::Silent(Duration::from_secs(10)));
        let GuardAction::RestartUnderTcg(tcg) = action else {
            panic!("expected a TCG restart, got {action:?}");
        };
        assert_eq!(tcg.accel, Accel::Tcg);
        assert!(
            tcg.reason.contains("printed nothing in 10 s"),
            "{}",
            tcg.reason
        );
        let exited = decide(
            &kvm(false),
            FirstOutput::Exited(std::process::ExitStatus::from_raw(6)),
        );
        assert!(
            matches!(&exited, GuardAction::RestartUnderTcg(c) if c.reason.contains("exited")),
            "{exited:?}"
        );
    }

    #[test]
    fn a_forced_kvm_fails_and_a_printing_guest_is_kept() {
        let action = decide(&kvm(true), FirstOutput::Silent(Duration::from_secs(10)));
        assert!(
            matches!(&action, GuardAction::Fail(w) if w.contains("FAMFS_LAB_ACCEL=kvm")),
            "{action:?}"
        );
        assert_eq!(
            decide(
                &kvm(false),
                FirstOutput::Printed(Duration::from_millis(300))
            ),
            GuardAction::Keep
        );
        let tcg = AccelChoice {
            accel: Accel::Tcg,
            reason: "TCG".into(),
            forced: false,
        };
        // TCG guests are never judged by the guard (a slow TCG boot is not a broken KVM).
        assert_eq!(
            decide(&tcg, FirstOutput::Silent(Duration::from_secs(60))),
            GuardAction::Keep
        );
    }
}
