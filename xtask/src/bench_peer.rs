//! The peer `lab bench boot --peer` times against: virtme-ng, installed from PyPI into a venv of
//! the lab's cache when asked, run the way its documentation says (`vng -r IMAGE -- CMD`) with
//! its own defaults apart from `--disable-kvm`.

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The virtme-ng release the bench installs (PyPI `virtme-ng`).
pub const VNG_VERSION: &str = "1.42";

/// How long one peer boot may take before it is stopped (TCG: about 4 s).
const PEER_TIMEOUT: Duration = Duration::from_secs(120);

/// What vng exits with when it cannot read the guest command's status back: without udev on
/// the host, the guest has no /dev/virtio-ports/ links and vng's init runs the command on the
/// console instead ("cannot find script I/O ports ... console fallback").
const VNG_NO_STATUS: i32 = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// virtme-ng: `vng -r <bzImage> --disable-kvm -- true`.
    Vng,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Vng => "vng",
        }
    }
}

/// virtme-ng, installed and checked on the kernel.
pub struct Vng {
    venv: PathBuf,
    bzimage: PathBuf,
    /// The guest ran the command to its end in the untimed check, although vng could not
    /// report its status ([`VNG_NO_STATUS`]): a timed boot exiting so counts as done.
    status_unavailable: bool,
}

/// A timed peer boot.
pub struct PeerRun {
    pub wall: Duration,
    pub exit_code: Option<i32>,
    pub ok: bool,
}

impl Vng {
    /// virtme-ng in `CACHE/peers/virtme-ng-VERSION` (a venv; created and filled from PyPI
    /// with pip when missing), for `bzimage`.
    pub fn install(cache_root: &Path, bzimage: &Path) -> Result<Vng> {
        let venv = cache_root
            .join("peers")
            .join(format!("virtme-ng-{VNG_VERSION}"));
        if !venv.join("bin/vng").is_file() {
            lab_host::progress!(
                "famfs-lab: installing virtme-ng {VNG_VERSION} from PyPI into {}",
                venv.display()
            );
            run_quiet(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv (apt-get install python3-venv)",
            )?;
            run_quiet(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--quiet"])
                    .arg(format!("virtme-ng=={VNG_VERSION}")),
                "pip install virtme-ng",
            )?;
        }
        Ok(Vng {
            venv,
            bzimage: bzimage.to_path_buf(),
            status_unavailable: false,
        })
    }

    /// The timed command, as a user types it.
    pub fn command_line(&self) -> String {
        format!("vng -r {} --disable-kvm -- true", self.bzimage.display())
    }

    fn command(&self, verbose: bool) -> Command {
        let mut c = Command::new(self.venv.join("bin/vng"));
        if verbose {
            c.arg("-v");
        }
        c.arg("-r")
            .arg(&self.bzimage)
            .args(["--disable-kvm", "--", "true"]);
        // vng starts virtme-run by name.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.venv.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            c.env("PATH", joined);
        }
        c.current_dir(lab_host::paths::repo_root())
            .stdin(Stdio::null());
        c
    }

    /// vng's version line.
    pub fn version(&self) -> Option<String> {
        let out = Command::new(self.venv.join("bin/vng"))
            .arg("--version")
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|v| !v.is_empty())
    }

    /// One untimed boot with the console shown (`-v`): the kernel boots under vng and the
    /// command runs to its end. Learns whether vng can report the status on this host.
    pub fn check(&mut self, log: &Path) -> Result<()> {
        let out = run_logged(self.command(true), log)?;
        let console = std::fs::read_to_string(log).unwrap_or_default();
        let ran = console.contains("script exited with code 0");
        match out.exit_code {
            Some(0) => Ok(()),
            Some(VNG_NO_STATUS) if ran => {
                lab_host::progress!(
                    "famfs-lab: vng cannot read the command's status back on this host (no udev: \
                     console fallback); its boots count as done when they exit {VNG_NO_STATUS}, \
                     as this checked one did after the command exited 0"
                );
                self.status_unavailable = true;
                Ok(())
            }
            code => bail!(
                "vng did not boot the kernel and run `true` (exit {code:?}); its console is in {}",
                log.display()
            ),
        }
    }

    /// One timed boot (`vng -r IMAGE --disable-kvm -- true`, its output in `log`).
    pub fn run(&self, log: &Path) -> Result<PeerRun> {
        let out = run_logged(self.command(false), log)?;
        let ok = match out.exit_code {
            Some(0) => true,
            Some(VNG_NO_STATUS) => self.status_unavailable,
            _ => false,
        };
        Ok(PeerRun { ok, ..out })
    }
}

/// Runs `cmd` with its output in `log`, within [`PEER_TIMEOUT`]; the wall time from spawn to
/// exit.
fn run_logged(mut cmd: Command, log: &Path) -> Result<PeerRun> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    cmd.stdout(file).stderr(err).process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting vng")?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(PeerRun {
                wall: started.elapsed(),
                exit_code: status.code(),
                ok: status.success(),
            });
        }
        if started.elapsed() > PEER_TIMEOUT {
            // The process group: vng, virtme-run and their QEMU.
            // SAFETY: signalling the process group we created for this child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            bail!(
                "vng took longer than {PEER_TIMEOUT:?}; its output is in {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_quiet(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
