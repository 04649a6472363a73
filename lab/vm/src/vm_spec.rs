//! What to launch ([`VmSpec`]) and preparing its run directory before QEMU starts.

use crate::accel::{Accel, DEFAULT_QEMU};
use crate::backing::create_backing_files;
use crate::error::{Error, Result};
use crate::qemu_args::{qemu_args, render_command_line, KernelBoot, QemuOptions};
use crate::topology::Topology;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything needed to start a VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// QEMU binary: a path, or a name looked up in `PATH`.
    pub qemu: PathBuf,
    pub topology: Topology,
    /// `None` starts the machine without a kernel (firmware only; with `start_paused`, nothing runs).
    pub boot: Option<KernelBoot>,
    /// Holds backing files (by default), sockets, `serial.log`, `qemu.stderr`, `qemu-cmdline.txt`.
    pub run_dir: PathBuf,
    pub accel: Accel,
    pub options: QemuOptions,
    /// Appended to the generated argv.
    pub extra_args: Vec<OsString>,
    /// How long QEMU may take to answer on QMP after spawning.
    pub qmp_connect_timeout: Duration,
}

impl VmSpec {
    /// A spec with the usual run-directory layout ([`QemuOptions::in_run_dir`]).
    pub fn new(
        topology: Topology,
        boot: Option<KernelBoot>,
        run_dir: &Path,
        accel: Accel,
    ) -> VmSpec {
        VmSpec {
            qemu: PathBuf::from(DEFAULT_QEMU),
            topology,
            boot,
            run_dir: run_dir.to_path_buf(),
            accel,
            options: QemuOptions::in_run_dir(run_dir),
            extra_args: Vec::new(),
            qmp_connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The resolved QEMU binary and its full argv, written to `RUN/qemu-cmdline.txt`.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    pub qemu: PathBuf,
    pub args: Vec<OsString>,
}

/// Finds QEMU, creates the run directory, clears stale sockets, creates backing files and the
/// results directory, and writes `RUN/qemu-cmdline.txt`.
pub fn prepare_run(spec: &VmSpec) -> Result<PreparedRun> {
    let qemu = find_binary(&spec.qemu).ok_or_else(|| Error::QemuMissing {
        binary: spec.qemu.display().to_string(),
    })?;
    let run = &spec.run_dir;
    std::fs::create_dir_all(run)
        .map_err(|e| Error::io(format!("create run directory {}", run.display()), e))?;
    for sock in [&spec.options.qmp_socket, &spec.options.agent_socket] {
        check_socket_path(sock)?;
        match std::fs::remove_file(sock) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(
                    format!("remove stale socket {}", sock.display()),
                    e,
                ))
            }
            _ => {}
        }
    }
    create_backing_files(&spec.topology, run)?;
    if let Some(dir) = &spec.options.results_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create results directory {}", dir.display()), e))?;
    }
    let mut args = qemu_args(
        &spec.topology,
        spec.boot.as_ref(),
        run,
        spec.accel,
        &spec.options,
    );
    args.extend(spec.extra_args.iter().cloned());
    let cmdline_path = run.join("qemu-cmdline.txt");
    std::fs::write(&cmdline_path, render_command_line(qemu.as_os_str(), &args))
        .map_err(|e| Error::io(format!("write {}", cmdline_path.display()), e))?;
    Ok(PreparedRun { qemu, args })
}

/// Unix socket paths are limited to 107 bytes.
fn check_socket_path(path: &Path) -> Result<()> {
    let len = path.as_os_str().len();
    if len > 107 {
        return Err(Error::SocketPathTooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(())
}

fn find_binary(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
