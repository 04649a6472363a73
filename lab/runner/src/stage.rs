//! The host's part before boot: the run directory with its topology, the backing files with the
//! planned cases' bytes (and the fill plan in each guest's results share), the kernel's BPF
//! selftests, and the user's tree checked and copied into the results share.

use crate::host_bytes::{self, Backings};
use crate::plan::Planned;
use crate::request::RunRequest;
use crate::user_tree::UserTree;
use anyhow::{Context, Result};
use famfs_shadow::ShadowTree;
use lab_suite::catalog::HostPart;
use lab_suite::verify;
use std::path::PathBuf;

/// What the host staged for a run.
pub(crate) struct Staged {
    pub(crate) backings: Backings,
    /// The user's tree (`--shadow`), checked, with its loaded form.
    pub(crate) user: Option<(UserTree, ShadowTree)>,
}

/// The host's part before boot; `results` is the host side of each guest's results share.
pub(crate) fn host(req: &RunRequest, planned: &[Planned], results: &[PathBuf]) -> Result<Staged> {
    std::fs::create_dir_all(&req.run_dir)?;
    for dir in results {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(
        req.run_dir.join("topology.yaml"),
        serde_norway::to_string(&req.topology)?,
    )?;
    let backings = prepare_bytes(req, planned, results)?;
    stage_bpf_selftests(req, planned)?;
    let user = match &req.user_tree {
        Some(u) => {
            let tree = u.check()?;
            u.stage(&req.run_dir.join("results"))?;
            Some((u.clone(), tree))
        }
        None => None,
    };
    Ok(Staged { backings, user })
}

/// Puts the kernel's compiled BPF selftests into the results share when a planned case loads
/// them (`bpf_selftests`).
fn stage_bpf_selftests(req: &RunRequest, planned: &[Planned]) -> Result<()> {
    let wanted = planned
        .iter()
        .any(|p| p.skip.is_none() && p.case.host == HostPart::BpfSelftests);
    let Some(compiled) = req.kernel.bpf_selftests.as_deref().filter(|_| wanted) else {
        return Ok(());
    };
    let m = crate::bpf_selftests::stage(compiled, &req.run_dir.join("results"))
        .context("staging the kernel's BPF selftests")?;
    lab_host::progress!(
        "famfs-lab: {} BPF selftest objects staged ({} did not compile)",
        m.objects.len(),
        m.errors.len()
    );
    Ok(())
}

/// Creates the backing files in the run directory and writes the bytes the planned cases
/// expect before boot: the fmap suites' fill (its plan goes into each of `results`) and each
/// case's own bytes.
fn prepare_bytes(req: &RunRequest, planned: &[Planned], results: &[PathBuf]) -> Result<Backings> {
    let backings: Backings = req
        .topology
        .devices
        .iter()
        .map(|d| (d.id.clone(), req.topology.backing_path(d, &req.run_dir)))
        .collect();
    lab_vm::backing::create_backing_files(&req.topology, &req.run_dir)?;
    // The fmap suites' fill first: the other cases' own bytes go on top of it.
    let head = planned
        .iter()
        .filter(|p| p.skip.is_none())
        .filter_map(|p| match p.case.host {
            HostPart::FmapPattern { fill_head } | HostPart::RegionFill { fill_head } => {
                Some(fill_head)
            }
            _ => None,
        })
        .max();
    if let Some(head) = head {
        let fill_plan = host_bytes::fill_plan(&req.topology, head);
        host_bytes::fill(&fill_plan, &backings).context("filling the backing files")?;
        let json = serde_json::to_string_pretty(&fill_plan)?;
        for dir in results {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(verify::FILL_PLAN), &json)?;
        }
    }
    for p in planned.iter().filter(|p| p.skip.is_none()) {
        host_bytes::before_boot(&p.case.host, &backings)?;
    }
    Ok(backings)
}
