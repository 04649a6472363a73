//! Planning (collect every input, resolve libraries, hash) and building (write the archive
//! into the content-addressed cache, atomically).

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::collect::{add_busybox_applets, add_host_file, add_init, add_modules, node};
use crate::elfdeps::{Resolved, Resolver};
use crate::image::{BuiltImage, Plan};
use crate::recipe::DeviceKind;
use crate::tree::{NodeKind, Tree};
use crate::{cache, hash, io_err, ImageError, Recipe, Result};

/// Everything an image is made of.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    pub recipe: Recipe,
    /// Our own guest binaries/files: (host path, guest path, permission bits such as 0o755).
    /// Their shared libraries are resolved like the recipe's.
    pub extra_files: Vec<(PathBuf, String, u32)>,
    /// A `lib/modules/<release>` tree (from `make modules_install INSTALL_MOD_PATH=...`);
    /// lands at `/lib/modules/<release>` (its `build`/`source` symlinks are left out).
    pub kernel_modules_dir: Option<PathBuf>,
    /// Guest path of the binary that `/init` links to (or `/init` itself).
    pub init: String,
}

/// Resolves all inputs (reading every file once) and hashes them.
pub fn plan(inputs: &ImageInputs) -> Result<Plan> {
    let recipe = &inputs.recipe;
    let mut tree = Tree::default();
    let mut notes = Vec::new();
    let mut roots = Vec::new();
    for f in &recipe.files {
        let guest = f.guest_path();
        let meta = match std::fs::metadata(&f.host) {
            Err(e) if e.kind() == ErrorKind::NotFound && f.optional => {
                let note = format!(
                    "skipped optional {} (guest {guest}): missing, `apt-get install {}` adds it",
                    f.host.display(),
                    f.package
                );
                tracing::info!("{note}");
                notes.push(note);
                continue;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(ImageError::MissingHostFile {
                    host: f.host.clone(),
                    guest,
                    package: f.package.clone(),
                })
            }
            other => other.map_err(io_err(&f.host))?,
        };
        let perm = f.mode.unwrap_or(meta.permissions().mode() & 0o7777);
        roots.push(add_host_file(&mut tree, &f.host, &guest, perm)?);
    }
    for (host, guest, mode) in &inputs.extra_files {
        if !host.is_file() {
            let msg = format!(
                "extra file {} (for guest {guest}) is missing",
                host.display()
            );
            return Err(ImageError::Input(msg));
        }
        roots.push(add_host_file(&mut tree, host, guest, mode & 0o7777)?);
    }
    for d in &recipe.directories {
        tree.insert(
            &d.path,
            node(NodeKind::Dir { implicit: false }, d.mode, "recipe"),
        )?;
    }
    for d in &recipe.devices {
        let block = d.kind == DeviceKind::Block;
        let kind = NodeKind::Device {
            block,
            major: d.major,
            minor: d.minor,
        };
        tree.insert(&d.path, node(kind, d.mode, "recipe"))?;
    }
    for s in &recipe.symlinks {
        tree.insert(
            &s.path,
            node(NodeKind::Symlink(s.target.clone()), 0o777, "recipe"),
        )?;
    }
    let mut resolver = Resolver::new(&recipe.library_dirs);
    for (guest, host, data) in roots {
        resolver.add_root(&guest, &host, data)?;
    }
    for r in resolver.finish() {
        let n = match &r {
            Resolved::File {
                host, perm, data, ..
            } => node(NodeKind::File(data.clone()), *perm, &host.to_string_lossy()),
            Resolved::Symlink { host, target, .. } => node(
                NodeKind::Symlink(target.clone()),
                0o777,
                &host.to_string_lossy(),
            ),
        };
        tree.insert(r.guest(), n)?;
    }
    if let Some(dir) = &inputs.kernel_modules_dir {
        add_modules(&mut tree, dir, &mut notes)?;
    }
    if let Some(bb) = &recipe.busybox {
        add_busybox_applets(&mut tree, recipe, bb, &mut notes)?;
    }
    add_init(&mut tree, &inputs.init)?;
    let hash = hash::content_hash(&recipe.canonical_json(), &inputs.init, &tree);
    Ok(Plan { hash, tree, notes })
}

/// Plans the image, then returns the cached archive for its hash or builds it.
pub fn build(inputs: &ImageInputs, cache: &Path) -> Result<BuiltImage> {
    cache::materialize(&plan(inputs)?, cache)
}
