//! A running QEMU: launched from a [`VmSpec`], owned by [`Vm`], killed and reaped on drop.
//!
//! Ctrl-C: QEMU runs in its own process group (serial to a file), so the terminal's SIGINT reaches
//! only the lab. Either call [`crate::process_cleanup::install_signal_cleanup`] once, or keep the
//! `Vm` in scope under a `tokio::select!` on `tokio::signal::ctrl_c()` so that it is dropped.

use crate::error::{Error, Result};
use crate::process_cleanup::{kill_qemu, register, unregister};
use crate::qemu_args::SerialOutput;
use crate::qmp::QmpClient;
use crate::serial_log::SerialLog;
pub use crate::vm_spec::VmSpec;
use crate::vm_spec::{prepare_run, PreparedRun};
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How [`Vm::shutdown`] ended QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    AlreadyExited(ExitStatus),
    /// The guest powered off after the ACPI power button.
    PoweredOff(ExitStatus),
    /// QEMU left on QMP `quit`.
    Quit(ExitStatus),
    Killed(ExitStatus),
}

/// Why QEMU is gone, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmExit {
    pub status: ExitStatus,
    /// The kernel panic line, or a note when pvpanic made QEMU exit with status 1.
    pub guest_panic: Option<String>,
}

/// A QEMU process. Dropping it SIGKILLs QEMU (its process group) and reaps it.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    pid: i32,
    own_group: bool,
    exit: Option<ExitStatus>,
    run_dir: PathBuf,
    serial: Option<SerialLog>,
    stderr_path: PathBuf,
    qmp: Option<QmpClient>,
}

impl Vm {
    /// Prepares the run directory, spawns QEMU and connects QMP. Errors carry QEMU's stderr when
    /// QEMU exits during start-up (e.g. a refused device option).
    pub async fn launch(spec: VmSpec) -> Result<Vm> {
        let PreparedRun { qemu, args } = prepare_run(&spec)?;
        let run = &spec.run_dir;
        let stderr_path = run.join("qemu.stderr");
        let stderr = File::create(&stderr_path)
            .map_err(|e| Error::io(format!("create {}", stderr_path.display()), e))?;

        let mut cmd = Command::new(&qemu);
        cmd.args(&args).stderr(stderr);
        let (serial, own_group) = match &spec.options.serial {
            SerialOutput::File(path) => {
                let stdout = File::options()
                    .append(true)
                    .open(&stderr_path)
                    .map_err(|e| Error::io(format!("open {}", stderr_path.display()), e))?;
                // Own process group: a terminal Ctrl-C reaches the lab only, which kills QEMU.
                cmd.stdin(Stdio::null()).stdout(stdout).process_group(0);
                (Some(SerialLog::new(path)), true)
            }
            // Interactive: QEMU must stay in the terminal's foreground group to read it.
            SerialOutput::Stdio => (None, false),
            SerialOutput::Terminal(log) => (Some(SerialLog::new(log)), false),
        };
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("spawn {}", qemu.display()), e))?;
        let pid = child.id() as i32;
        register(pid, own_group);
        tracing::info!(pid, accel = %spec.accel, run_dir = %run.display(), "QEMU started");
        let mut vm = Vm {
            child,
            pid,
            own_group,
            exit: None,
            run_dir: run.clone(),
            serial,
            stderr_path,
            qmp: None,
        };

        let child = &mut vm.child;
        let exit = &mut vm.exit;
        let connected =
            QmpClient::connect(&spec.options.qmp_socket, spec.qmp_connect_timeout, || {
                poll_exit(child, exit).is_some()
            })
            .await;
        match connected {
            Ok(qmp) => vm.qmp = Some(qmp),
            Err(e) => {
                return Err(vm
                    .exit_status()
                    .map_or(e, |_| vm.exited_error("during start-up")))
            }
        }
        Ok(vm)
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The serial log (absent with [`SerialOutput::Stdio`]; QEMU's `logfile` with
    /// [`SerialOutput::Terminal`]).
    pub fn serial_log(&self) -> Option<&SerialLog> {
        self.serial.as_ref()
    }

    /// The QMP connection; an error once QEMU has quit.
    pub fn qmp(&mut self) -> Result<&mut QmpClient> {
        self.qmp.as_mut().ok_or_else(|| Error::Qmp {
            op: "connect".into(),
            message: "QMP is closed (QEMU quit)".into(),
        })
    }

    /// QEMU's exit status once it has exited (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        poll_exit(&mut self.child, &mut self.exit)
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits for QEMU to exit by itself (guest poweroff, panic with `panic=-1`, `quit`).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return Ok(status);
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("QEMU (pid {}) to exit", self.pid),
                    timeout,
                });
            }
            // A waitpid: every run waits for its QEMU to go at the end.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ends QEMU within about `timeout`: ACPI power button if the guest runs (half the time),
    /// then QMP `quit`, then SIGKILL.
    pub async fn shutdown(&mut self, timeout: Duration) -> Result<ShutdownOutcome> {
        if let Some(status) = self.exit_status() {
            return Ok(ShutdownOutcome::AlreadyExited(status));
        }
        let start = Instant::now();
        if let Some(qmp) = self.qmp.as_mut() {
            let running = qmp.query_status().await.is_ok_and(|s| s.running);
            if running && qmp.system_powerdown().await.is_ok() {
                if let Ok(status) = self.wait_exit(timeout / 2).await {
                    self.qmp = None;
                    return Ok(ShutdownOutcome::PoweredOff(status));
                }
            }
        }
        if let Some(mut qmp) = self.qmp.take() {
            let left = timeout
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(500));
            qmp.set_timeout(left);
            if qmp.quit().await.is_ok() {
                if let Ok(status) = self.wait_exit(left).await {
                    return Ok(ShutdownOutcome::Quit(status));
                }
            }
        }
        Ok(ShutdownOutcome::Killed(self.kill()))
    }

    /// SIGKILLs QEMU (and its process group) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            return status;
        }
        kill_qemu(self.pid, self.own_group);
        let status = self
            .child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
        self.exit = Some(status);
        unregister(self.pid);
        self.qmp = None;
        status
    }

    /// Waits for `pattern` on the serial console at or after byte `from`; fails early if QEMU exits.
    pub async fn wait_for_serial(
        &mut self,
        pattern: &str,
        from: u64,
        timeout: Duration,
    ) -> Result<u64> {
        let log = self.serial.clone().ok_or_else(|| Error::Qmp {
            op: "serial".into(),
            message: "serial goes to stdio, not a log file".into(),
        })?;
        log.wait_for_from(from, pattern, timeout, || !self.is_running())
            .await
    }

    /// Waits up to `within` for the guest's first serial byte: the evidence that the guest
    /// executes at all (under a broken KVM, QEMU reports `running` and nothing ever prints).
    pub async fn first_serial_output(&mut self, within: Duration) -> Result<FirstOutput> {
        let log = self.serial.clone().ok_or_else(|| Error::Qmp {
            op: "serial".into(),
            message: "serial goes to stdio, not a log file".into(),
        })?;
        let start = Instant::now();
        loop {
            if !log.is_empty() {
                return Ok(FirstOutput::Printed(start.elapsed()));
            }
            if let Some(status) = self.exit_status() {
                return Ok(FirstOutput::Exited(status));
            }
            if start.elapsed() >= within {
                return Ok(FirstOutput::Silent(start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Status and guest-panic evidence once QEMU has exited.
    pub fn exit_report(&mut self) -> Option<VmExit> {
        let status = self.exit_status()?;
        let from_log = self.serial.as_ref().and_then(SerialLog::find_panic);
        let from_pvpanic = (status.code() == Some(1))
            .then(|| "QEMU exited with status 1 (pvpanic: guest panicked)".to_string());
        Some(VmExit {
            status,
            guest_panic: from_log.or(from_pvpanic),
        })
    }

    /// The last lines QEMU wrote to `RUN/qemu.stderr`.
    pub fn stderr_tail(&self, lines: usize) -> String {
        SerialLog::new(&self.stderr_path).last_lines(lines)
    }

    /// An [`Error::QemuExited`] describing the exit, for callers that found QEMU gone.
    pub fn exited_error(&mut self, when: &str) -> Error {
        let status = self
            .exit_status()
            .map_or_else(|| "still running".to_string(), |s| s.to_string());
        Error::QemuExited {
            status,
            when: when.to_string(),
            stderr_file: self.stderr_path.clone(),
            stderr_tail: self.stderr_tail(20),
        }
    }
}

fn poll_exit(child: &mut Child, exit: &mut Option<ExitStatus>) -> Option<ExitStatus> {
    if exit.is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            *exit = Some(status);
            unregister(child.id() as i32);
        }
    }
    *exit
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.is_running() {
            tracing::info!(pid = self.pid, "killing QEMU on drop");
        }
        self.kill();
    }
}

/// What [`Vm::first_serial_output`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstOutput {
    /// The first byte arrived after this long.
    Printed(Duration),
    /// Nothing within the wait.
    Silent(Duration),
    /// QEMU ended before anything was printed.
    Exited(ExitStatus),
}
