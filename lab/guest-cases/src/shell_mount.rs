//! `famfs-lab-cases mount SHADOW MNT`: `lab shell`'s (and `lab exec`'s) mount. famfs-fused
//! serves the shadow tree SHADOW (the host wrote its files' device bytes after setup) at MNT
//! with the ops of `FAMFS_LAB_OPS`, started as the cases start it ([`crate::harness::famfs`]: the dax
//! devices bound to fsdev_dax, the native module loaded for `famfs_native`), and is left
//! running after this command ends.

use crate::harness::famfs::{server_dir, Ctx, Famfs};
use crate::Outcome;
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(shadow: &str, mnt: &str, ctx: &Ctx<'_>) -> Result<Outcome> {
    let dir = Path::new(shadow);
    let tree = famfs_shadow::load(dir).map_err(|e| anyhow::anyhow!("{shadow}: {e}"))?;
    let mut spec = crate::suites::user_tree_check::tree_spec(ctx, dir, &tree)?;
    spec.mountpoint = Some(mnt.into());
    let fs = Famfs::start(ctx, spec).with_context(|| format!("mounting {shadow} at {mnt}"))?;
    println!(
        "mounted {mnt}: {} files, ops {}; server log {}, stats {}",
        tree.files.len(),
        fs.spec.ops,
        fs.log_path.display(),
        fs.stats_path.display()
    );
    println!("server files in {}", server_dir(Path::new(mnt)).display());
    fs.detach();
    Ok(Outcome::Pass)
}
