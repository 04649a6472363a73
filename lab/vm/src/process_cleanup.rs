//! Killing QEMU when the lab itself is interrupted.
//!
//! QEMU runs in its own process group, so a terminal Ctrl-C reaches only the lab. `Vm`'s `Drop`
//! kills QEMU on every normal and panicking exit path; a signal that ends the process skips
//! destructors, so each live QEMU is also recorded here and [`install_signal_cleanup`] kills them
//! all on SIGINT, SIGTERM or SIGHUP before exiting (status 128 + signal).

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// (pid, whether it leads its own process group)
static LIVE: Mutex<Vec<(i32, bool)>> = Mutex::new(Vec::new());

pub(crate) fn register(pid: i32, own_group: bool) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((pid, own_group));
}

pub(crate) fn unregister(pid: i32) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(p, _)| *p != pid);
}

/// SIGKILLs QEMU (its whole group when it has one).
pub(crate) fn kill_qemu(pid: i32, own_group: bool) {
    let result = if own_group {
        killpg(Pid::from_raw(pid), Signal::SIGKILL)
    } else {
        kill(Pid::from_raw(pid), Signal::SIGKILL)
    };
    if let Err(e) = result {
        tracing::debug!(pid, %e, "killing QEMU");
    }
}

/// Kills every QEMU launched by this process that is still registered.
pub fn kill_all_vms() {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (pid, own_group) in live {
        kill_qemu(pid, own_group);
    }
}

/// Spawns a task that, on SIGINT, SIGTERM or SIGHUP, kills all live QEMUs and exits the process.
/// Call once from inside a tokio runtime (later calls do nothing). Without it the caller must
/// select on the signals itself and drop its `Vm`s before exiting.
pub fn install_signal_cleanup() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let (name, code) = tokio::select! {
            _ = int.recv() => ("SIGINT", 130),
            _ = term.recv() => ("SIGTERM", 143),
            _ = hup.recv() => ("SIGHUP", 129),
        };
        eprintln!("famfs-lab: {name}: killing QEMU and exiting");
        kill_all_vms();
        std::process::exit(code);
    });
    Ok(())
}
