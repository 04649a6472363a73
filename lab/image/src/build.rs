//! Planning (collect every input, resolve libraries, hash) and building (write the archive
//! into the content-addressed cache, atomically).

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::elfdeps::{Resolved, Resolver};
use crate::recipe::{BusyboxSpec, DeviceKind};
use crate::tree::{normalize, Node, NodeKind, Tree};
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

/// The resolved content of an image, with its hash; nothing written yet.
#[derive(Debug)]
pub struct Plan {
    hash: String,
    tree: Tree,
    notes: Vec<String>,
}

/// A built (or cached) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `<cache>/images/<hash>/initramfs.cpio`
    pub path: PathBuf,
    /// `<cache>/images/<hash>/manifest.txt`
    pub manifest: PathBuf,
    pub hash: String,
    pub cache_hit: bool,
    /// Archive size in bytes.
    pub size: u64,
    /// Number of archive entries (directories, files, symlinks, device nodes).
    pub files: usize,
    /// Non-fatal remarks, e.g. skipped optional files.
    pub notes: Vec<String>,
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
            let msg = format!("extra file {} (for guest {guest}) is missing", host.display());
            return Err(ImageError::Input(msg));
        }
        roots.push(add_host_file(&mut tree, host, guest, mode & 0o7777)?);
    }
    for d in &recipe.directories {
        tree.insert(&d.path, node(NodeKind::Dir { implicit: false }, d.mode, "recipe"))?;
    }
    for d in &recipe.devices {
        let block = d.kind == DeviceKind::Block;
        let kind = NodeKind::Device { block, major: d.major, minor: d.minor };
        tree.insert(&d.path, node(kind, d.mode, "recipe"))?;
    }
    for s in &recipe.symlinks {
        tree.insert(&s.path, node(NodeKind::Symlink(s.target.clone()), 0o777, "recipe"))?;
    }
    let mut resolver = Resolver::new(&recipe.library_dirs);
    for (guest, host, data) in roots {
        resolver.add_root(&guest, &host, data)?;
    }
    for r in resolver.finish() {
        let n = match &r {
            Resolved::File { host, perm, data, .. } => {
                node(NodeKind::File(data.clone()), *perm, &host.to_string_lossy())
            }
            Resolved::Symlink { host, target, .. } => {
                node(NodeKind::Symlink(target.clone()), 0o777, &host.to_string_lossy())
            }
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
    plan(inputs)?.build(cache)
}

impl Plan {
    pub fn hash(&self) -> &str {
        &self.hash
    }
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
    /// Number of archive entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tree.len() == 0
    }

    /// Writes the archive (deterministic bytes); returns the writer and the size.
    pub fn write_cpio<W: std::io::Write>(&self, out: W) -> std::io::Result<(W, u64)> {
        self.tree.write_cpio(out)
    }

    /// One line per entry: guest path, type, mode, size, source (symlinks: `-> target`).
    pub fn manifest(&self) -> String {
        let mut s = format!(
            "# famfs-lab initramfs format {} hash {} entries {}\n\
             # guest-path\ttype\tmode\tsize\tsource\n",
            hash::FORMAT_VERSION,
            self.hash,
            self.tree.len()
        );
        for (path, n) in self.tree.iter() {
            let (kind, extra) = match &n.kind {
                NodeKind::Dir { .. } => ("dir", String::new()),
                NodeKind::File(_) => ("file", String::new()),
                NodeKind::Symlink(t) => ("symlink", format!("\t-> {t}")),
                NodeKind::Device { block, major, minor } => {
                    (if *block { "block" } else { "char" }, format!("\t{major}:{minor}"))
                }
            };
            let (perm, size, src) = (n.perm, n.size(), &n.source);
            s.push_str(&format!("/{path}\t{kind}\t{perm:04o}\t{size}\t{src}{extra}\n"));
        }
        s
    }

    /// Returns the cached image for this plan's hash, or writes it (atomically).
    pub fn build(&self, cache: &Path) -> Result<BuiltImage> {
        cache::materialize(self, cache)
    }
}

fn node(kind: NodeKind, perm: u32, source: &str) -> Node {
    Node { kind, perm, source: source.to_owned() }
}

fn add_host_file(
    tree: &mut Tree,
    host: &Path,
    guest: &str,
    perm: u32,
) -> Result<(String, PathBuf, Arc<Vec<u8>>)> {
    let data = Arc::new(std::fs::read(host).map_err(io_err(host))?);
    let source = host.to_string_lossy();
    tree.insert(guest, node(NodeKind::File(data.clone()), perm, &source))?;
    let guest = format!("/{}", normalize(guest).map_err(ImageError::Input)?);
    Ok((guest, host.to_owned(), data))
}

fn add_modules(tree: &mut Tree, dir: &Path, notes: &mut Vec<String>) -> Result<()> {
    let release = dir.file_name().and_then(|r| r.to_str()).filter(|r| !r.is_empty());
    let (Some(release), true) = (release, dir.is_dir()) else {
        let msg = format!("kernel modules dir {} is not a lib/modules/<release> dir", dir.display());
        return Err(ImageError::Input(msg));
    };
    if !dir.join("modules.dep").is_file() {
        notes.push(format!("{} has no modules.dep (depmod not run?)", dir.display()));
    }
    let guest_root = format!("/lib/modules/{release}");
    tree.insert(&guest_root, node(NodeKind::Dir { implicit: false }, 0o755, "modules"))?;
    let mut stack = vec![(dir.to_owned(), guest_root, true)];
    while let Some((hdir, gdir, top)) = stack.pop() {
        for entry in std::fs::read_dir(&hdir).map_err(io_err(&hdir))? {
            let entry = entry.map_err(io_err(&hdir))?;
            let (hpath, name) = (entry.path(), entry.file_name());
            let Some(name) = name.to_str() else {
                notes.push(format!("skipped non-UTF-8 module path {}", hpath.display()));
                continue;
            };
            let meta = std::fs::symlink_metadata(&hpath).map_err(io_err(&hpath))?;
            let (gpath, perm) = (format!("{gdir}/{name}"), meta.permissions().mode() & 0o7777);
            let src = hpath.to_string_lossy().into_owned();
            if meta.file_type().is_symlink() {
                if top && (name == "build" || name == "source") {
                    continue; // points into the host's kernel tree
                }
                let target = std::fs::read_link(&hpath).map_err(io_err(&hpath))?;
                let kind = NodeKind::Symlink(target.to_string_lossy().into_owned());
                tree.insert(&gpath, node(kind, 0o777, &src))?;
            } else if meta.is_dir() {
                tree.insert(&gpath, node(NodeKind::Dir { implicit: false }, perm, &src))?;
                stack.push((hpath, gpath, false));
            } else if meta.is_file() {
                let data = std::fs::read(&hpath).map_err(io_err(&hpath))?;
                tree.insert(&gpath, node(NodeKind::File(Arc::new(data)), perm, &src))?;
            } else {
                notes.push(format!("skipped special file {}", hpath.display()));
            }
        }
    }
    Ok(())
}

fn add_busybox_applets(
    tree: &mut Tree,
    recipe: &Recipe,
    bb: &BusyboxSpec,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(spec) = recipe.file_for_guest(&bb.binary).filter(|_| tree.contains(&bb.binary))
    else {
        notes.push(format!("no busybox applet links: {} is not in the image", bb.binary));
        return Ok(());
    };
    let tool = format!("{} --list-full", spec.host.display());
    let out = Command::new(&spec.host).arg("--list-full").output();
    let out = out.map_err(|e| ImageError::Tool { tool: tool.clone(), message: e.to_string() })?;
    if !out.status.success() {
        let message = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        return Err(ImageError::Tool { tool, message });
    }
    let target = format!("/{}", normalize(&bb.binary).map_err(ImageError::Input)?);
    let (mut linked, mut kept) = (0, 0);
    for applet in String::from_utf8_lossy(&out.stdout).lines().map(str::trim) {
        if applet.is_empty() || bb.exclude.iter().any(|x| x == applet) {
            continue;
        }
        let link = node(NodeKind::Symlink(target.clone()), 0o777, "busybox applet");
        match tree.insert_if_absent(&format!("/{applet}"), link)? {
            true => linked += 1,
            false => kept += 1,
        }
    }
    if linked == 0 {
        return Err(ImageError::Tool { tool, message: "listed no applets".into() });
    }
    tracing::debug!("busybox: {linked} applet links, {kept} paths already taken");
    Ok(())
}

fn add_init(tree: &mut Tree, init: &str) -> Result<()> {
    let bad = |why: &str| ImageError::Input(format!("init {init}: {why}"));
    let init = format!("/{}", normalize(init).map_err(|e| bad(&e))?);
    let mut path = init.clone();
    for _ in 0..40 {
        match tree.get(&path).map(|n| &n.kind) {
            None => return Err(bad(&format!("{path} is not in the image"))),
            Some(NodeKind::Symlink(t)) => {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                path = crate::tree::resolve_lexical(if dir.is_empty() { "/" } else { dir }, t);
            }
            Some(NodeKind::File(_)) if tree.get(&path).is_some_and(|n| n.perm & 0o111 != 0) => {
                if init != "/init" {
                    let link = NodeKind::Symlink(init);
                    tree.insert("/init", node(link, 0o777, "init"))?;
                }
                return Ok(());
            }
            Some(_) => return Err(bad(&format!("{path} is not an executable file"))),
        }
    }
    Err(bad("too many levels of symlinks"))
}
