//! One guest brought to the state a run's case begins in, for `lab shell` and `lab exec`: the
//! steps of [`crate::run::run`] with a one-guest [`Session`] (the case's bytes in the backing
//! files before boot, the boot through the KVM guard, the agent, the regions and dax devices, a
//! user's tree and its bytes), stopped before the first case. The caller then runs what it wants through the agent and
//! powers the guest off; dropping a [`Guest`] kills its QEMU.

use crate::guest::{self, Booted};
use crate::host_bytes::{self, Backings};
use crate::plan::{self, Planned};
use crate::request::RunRequest;
use crate::session::Session;
use crate::stage;
use anyhow::{bail, Context, Result};
use famfs_shadow::ShadowTree;
use lab_agent_proto::client::AgentClient;
use lab_agent_proto::messages::{ExecRequest, ExecResult};
use lab_report::splat::Splat;
use lab_suite::catalog::Case;
use lab_suite::devices::DeviceMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A booted, set-up guest.
pub struct Guest {
    /// The request, with the accelerator the guest really runs under.
    pub req: RunRequest,
    pub agent: AgentClient,
    pub map: DeviceMap,
    pub backings: Backings,
    /// The case whose state the guest is in (`--case`), if one.
    pub case: Option<&'static Case>,
    /// Why that case would SKIP on this kernel or topology, if it would.
    pub case_skip: Option<String>,
    /// The user's tree (`--shadow`), loaded, with its bytes written.
    pub user_tree: Option<ShadowTree>,
    session: Session,
}

/// Boots and sets up one guest as a run does, in the state `req.cases` (at most one) begins
/// in. Errors carry the serial log's last lines.
pub fn bring_up(req: &RunRequest) -> Result<Guest> {
    if req.topology.hosts > 1 {
        bail!(
            "lab shell and lab exec run one guest; topology {} has hosts: {} (use `lab up`)",
            req.topology.name,
            req.topology.hosts
        );
    }
    if req.cases.len() > 1 || !req.suites.is_empty() {
        bail!("a guest can be put in the state of one case (--case SUITE.NAME), not more");
    }
    let planned: Vec<Planned> =
        plan::select(&req.suites, &req.cases, &req.kernel, req.topology.hosts)?
            .into_iter()
            .filter(|p| req.cases.contains(&p.case.id()))
            .collect();
    let staged = stage::host(req, &planned, &[req.run_dir.join("results")])?;
    let (backings, user) = (staged.backings, staged.user);
    let mut session = Session::boot(req)?;
    session.bring_up();
    let req = session.req.clone();
    let g = &mut session.guests[0];
    if let Some(why) = &g.gone {
        // A setup that failed: the serial log says why (a failed attach carries its tail).
        match g.ready {
            Some(_) => bail!("{why}\nlast serial lines:\n{}", g.tail()),
            None => bail!("{why}"),
        }
    }
    let (Some(agent), Some(map)) = (g.agent.take(), g.map.take()) else {
        bail!("the guest is not set up");
    };
    let user_tree = match user {
        Some((u, tree)) => {
            let note = u.prepare(&tree, &map, &backings, &req.run_dir.join("results"))?;
            lab_host::progress!("famfs-lab: {note}");
            Some(tree)
        }
        None => None,
    };
    let (case, case_skip) = match planned.first() {
        Some(p) => (Some(p.case), p.skip.clone()),
        None => (None, None),
    };
    Ok(Guest {
        req,
        agent,
        map,
        backings,
        case,
        case_skip,
        user_tree,
        session,
    })
}

impl Guest {
    /// `RUN/serial.log`.
    pub fn serial_log(&self) -> &Path {
        self.booted().serial.path()
    }

    fn booted(&self) -> &Booted {
        // bring_up returns a Guest only when its QEMU started.
        self.session.guests[0]
            .booted
            .as_ref()
            .expect("a brought-up guest has its QEMU")
    }

    /// The host side of the guest's `/results`.
    pub fn results(&self) -> PathBuf {
        self.req.run_dir.join("results")
    }

    /// Runs one command through the agent (its process group killed after `timeout`).
    pub fn exec(&self, req: ExecRequest, timeout: Duration) -> Result<ExecResult> {
        let req = req.timeout(timeout);
        self.agent
            .exec(req, timeout + Duration::from_secs(15))
            .context("running the command through the guest agent")
    }

    /// [`Guest::exec`], serving the command's host calls (a case's QMP faults) while it runs;
    /// each call is printed as progress.
    pub fn exec_serving_host_calls(
        &mut self,
        req: ExecRequest,
        timeout: Duration,
    ) -> Result<ExecResult> {
        let req = req.timeout(timeout);
        let mut calls = Vec::new();
        let agent = &self.agent;
        let session = &mut self.session;
        let booted = session.guests[0]
            .booted
            .as_mut()
            .context("the guest's QEMU is gone")?;
        crate::host_calls::serve_during(
            booted,
            agent,
            &self.backings,
            &session.rt,
            &mut calls,
            || agent.exec(req, timeout + Duration::from_secs(15)),
        )
        .context("running the command through the guest agent")
    }

    /// The host's checks of the case after its body passed in the guest (the bytes it left in
    /// the backing files): notes, or an error saying what is wrong.
    pub fn host_checks(&self) -> Result<Vec<String>> {
        let Some(case) = self.case else {
            return Ok(Vec::new());
        };
        let mut notes = Vec::new();
        if let Some(n) = host_bytes::verify_after(&case.host, &self.map, &self.backings)? {
            notes.push(n);
        }
        if let Some(n) = host_bytes::verify_file(&self.results(), &case.id(), &self.backings)? {
            notes.push(n);
        }
        Ok(notes)
    }

    /// Waits up to `timeout` for QEMU to exit (the guest powered off, Ctrl-A x); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(b) = self.session.guests[0].booted.as_mut() else {
            return true;
        };
        let vm = &mut b.vm;
        self.session
            .rt
            .block_on(async { vm.wait_exit(timeout).await.is_ok() })
    }

    /// Powers the guest off through the agent and waits for QEMU; stops it if it hangs.
    pub fn poweroff(&mut self) {
        if let Some(b) = self.session.guests[0].booted.as_mut() {
            let wait = self.session.req.wait(crate::guest::POWEROFF);
            guest::power_off(b, Some(&self.agent), wait, &self.session.rt);
        }
    }

    /// Kernel splats anywhere in the serial log so far.
    pub fn splats(&self) -> Vec<Splat> {
        let log = self.booted().serial.read_from(0).unwrap_or_default();
        lab_report::splat::scan(&String::from_utf8_lossy(&log))
    }
}
