//! A session: the run's guests, one (`hosts: 1`, the guest's files in `RUN/`) or N (`hosts: N`,
//! each in `RUN/host<i>/`, all mapping the backing files in `RUN/`), taken through the same
//! steps: boot (the first guest through the KVM guard, the others under what it runs on),
//! attach and setup side by side, then power off. A guest that fails a step is gone, with the
//! reason; the others go on. The cases run between `bring_up` and `power_off`
//! ([`crate::run`] for one guest, [`crate::shared`] for the steps of a shared case).

use crate::guest::{self, Booted};
use crate::request::RunRequest;
use crate::whole_log;
use anyhow::{Context, Result};
use lab_agent_proto::client::AgentClient;
use lab_report::CaseReport;
use lab_suite::catalog::Case;
use lab_suite::devices::DeviceMap;
use lab_vm::Topology;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One guest of the session.
pub(crate) struct Guest {
    pub(crate) index: u32,
    /// Its sockets, serial log and results share (`RUN/` or `RUN/host<i>/`).
    pub(crate) dir: PathBuf,
    pub(crate) booted: Option<Booted>,
    pub(crate) agent: Option<AgentClient>,
    pub(crate) map: Option<DeviceMap>,
    /// QEMU start to agent ready, and the setup's time.
    pub(crate) ready: Option<Duration>,
    pub(crate) setup: Option<Duration>,
    /// Why it takes no more cases (never booted, never ready, died, ended on purpose).
    pub(crate) gone: Option<String>,
    /// Its parts of shared cases, for its own report (multi-host runs).
    pub(crate) cases: Vec<(&'static Case, CaseReport)>,
}

impl Guest {
    pub(crate) fn new(index: u32, dir: PathBuf) -> Guest {
        Guest {
            index,
            dir,
            booted: None,
            agent: None,
            map: None,
            ready: None,
            setup: None,
            gone: None,
            cases: Vec::new(),
        }
    }

    /// Up, set up, and not gone: it can take a case.
    pub(crate) fn is_ready(&self) -> bool {
        self.gone.is_none() && self.agent.is_some() && self.map.is_some()
    }

    /// The serial log's last lines (empty when QEMU never started).
    pub(crate) fn tail(&self) -> String {
        self.booted.as_ref().map(Booted::tail).unwrap_or_default()
    }

    /// The pseudo-cases of its serial log outside every case window: `lab.boot`, ...
    pub(crate) fn outside_cases(&self, log_name: &str, reproduce: &str) -> Vec<CaseReport> {
        let Some(b) = &self.booted else {
            return Vec::new();
        };
        let guest = whole_log::Guest {
            prefix: "",
            log_name,
        };
        whole_log::judge_serial(&b.serial, guest, reproduce)
    }
}

/// The directory of guest `index` of a run of `hosts` guests.
pub fn guest_dir(run_dir: &Path, hosts: u32, index: u32) -> PathBuf {
    if hosts <= 1 {
        run_dir.to_path_buf()
    } else {
        run_dir.join(format!("host{index}"))
    }
}

/// The guests of one run and the runtime their QEMUs run on.
pub(crate) struct Session {
    /// The request with the accelerator the guests really run under.
    pub(crate) req: RunRequest,
    /// Why the accelerator changed at boot (a silent KVM guest), if it did.
    pub(crate) accel_fallback: Option<String>,
    pub(crate) guests: Vec<Guest>,
    pub(crate) rt: tokio::runtime::Runtime,
    /// When the first QEMU started.
    pub(crate) started: Instant,
    topology: Topology,
}

impl Session {
    /// Starts every guest's QEMU (they boot side by side). The first goes through the KVM
    /// guard; the others follow with what it runs under. With one guest, a QEMU that does not
    /// start is the run's error; with more, that guest is gone.
    pub(crate) fn boot(req: &RunRequest) -> Result<Session> {
        let hosts = req.topology.hosts.max(1);
        let topology = if hosts > 1 {
            req.topology.for_host(&req.run_dir)
        } else {
            req.topology.clone()
        };
        let rt = guest::runtime()?;
        rt.block_on(async { lab_vm::process_cleanup::install_signal_cleanup() })
            .context("installing the Ctrl-C handler")?;
        let started = Instant::now();
        let mut effective = req.clone();
        let mut guests = Vec::new();
        for i in 0..hosts {
            let mut g = Guest::new(i, guest_dir(&req.run_dir, hosts, i));
            let booted = if i == 0 {
                rt.block_on(crate::kvm_guard::boot_guarded(
                    &effective,
                    topology.clone(),
                    &g.dir,
                ))
                .map(|(b, accel)| {
                    effective.accel = accel;
                    b
                })
            } else {
                rt.block_on(guest::boot_at(
                    &effective,
                    &effective.accel,
                    topology.clone(),
                    &g.dir,
                ))
            };
            match booted {
                Ok(b) => g.booted = Some(b),
                Err(e) if hosts == 1 => return Err(e),
                Err(e) => g.gone = Some(format!("QEMU did not start: {e:#}")),
            }
            guests.push(g);
        }
        let accel_fallback = (effective.accel != req.accel).then(|| effective.accel.reason.clone());
        Ok(Session {
            req: effective,
            accel_fallback,
            guests,
            rt,
            started,
            topology,
        })
    }

    /// Each guest's agent and setup, side by side; a guest that fails is gone with the reason.
    pub(crate) fn bring_up(&mut self) {
        let (req, rt, topology) = (&self.req, &self.rt, &self.topology);
        let many = self.guests.len() > 1;
        std::thread::scope(|scope| {
            for g in self.guests.iter_mut().filter(|g| g.gone.is_none()) {
                scope.spawn(move || bring_up(g, req, topology, rt, many));
            }
        });
    }

    /// Powers every guest off (through its agent when it still answers) and waits for QEMU.
    pub(crate) fn power_off(&mut self) {
        for g in self.guests.iter_mut() {
            if let Some(b) = g.booted.as_mut() {
                guest::power_off(
                    b,
                    g.agent.as_ref(),
                    self.req.wait(guest::POWEROFF),
                    &self.rt,
                );
            }
        }
    }
}

/// Agent, setup; on failure the guest is gone with the reason (and the serial tail in it).
fn bring_up(
    g: &mut Guest,
    req: &RunRequest,
    topology: &Topology,
    rt: &tokio::runtime::Runtime,
    many: bool,
) {
    let Some(booted) = g.booted.as_mut() else {
        return;
    };
    let who = if many {
        format!("guest {}", g.index)
    } else {
        "guest".to_string()
    };
    let (agent, ready) = match guest::attach_at(booted, req, &g.dir, rt) {
        Ok(x) => x,
        Err(e) => {
            g.gone = Some(format!("the {who} never became ready: {e:#}"));
            return;
        }
    };
    lab_host::progress!(
        "famfs-lab: {who} agent ready {:.2}s after QEMU start ({})",
        ready.as_secs_f64(),
        req.accel.accel.as_str()
    );
    g.ready = Some(ready);
    let setup_started = Instant::now();
    match guest::setup_at(&agent, topology, &g.dir, req.wait(guest::SETUP_TIMEOUT)) {
        Ok(map) => {
            g.setup = Some(setup_started.elapsed());
            g.map = Some(map);
        }
        Err(e) => g.gone = Some(format!("{who} setup failed: {e:#}")),
    }
    g.agent = Some(agent);
}
