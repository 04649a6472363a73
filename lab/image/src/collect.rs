//! Adding the caller's and the host's files to the tree: plain files, the kernel modules
//! tree, busybox applet links and the `/init` link.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::recipe::BusyboxSpec;
use crate::tree::{normalize, resolve_lexical, Node, NodeKind, Tree};
use crate::{io_err, ImageError, Recipe, Result};

pub(crate) fn node(kind: NodeKind, perm: u32, source: &str) -> Node {
    Node {
        kind,
        perm,
        source: source.to_owned(),
    }
}

pub(crate) fn add_host_file(
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

pub(crate) fn add_modules(tree: &mut Tree, dir: &Path, notes: &mut Vec<String>) -> Result<()> {
    let release = dir
        .file_name()
        .and_then(|r| r.to_str())
        .filter(|r| !r.is_empty());
    let (Some(release), true) = (release, dir.is_dir()) else {
        let msg = format!(
            "kernel modules dir {} is not a lib/modules/<release> dir",
            dir.display()
        );
        return Err(ImageError::Input(msg));
    };
    if !dir.join("modules.dep").is_file() {
        notes.push(format!(
            "{} has no modules.dep (depmod not run?)",
            dir.display()
        ));
    }
    let guest_root = format!("/lib/modules/{release}");
    tree.insert(
        &guest_root,
        node(NodeKind::Dir { implicit: false }, 0o755, "modules"),
    )?;
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

pub(crate) fn add_busybox_applets(
    tree: &mut Tree,
    recipe: &Recipe,
    bb: &BusyboxSpec,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some(spec) = recipe
        .file_for_guest(&bb.binary)
        .filter(|_| tree.contains(&bb.binary))
    else {
        notes.push(format!(
            "no busybox applet links: {} is not in the image",
            bb.binary
        ));
        return Ok(());
    };
    let tool = format!("{} --list-full", spec.host.display());
    let out = Command::new(&spec.host).arg("--list-full").output();
    let out = out.map_err(|e| ImageError::Tool {
        tool: tool.clone(),
        message: e.to_string(),
    })?;
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
        return Err(ImageError::Tool {
            tool,
            message: "listed no applets".into(),
        });
    }
    tracing::debug!("busybox: {linked} applet links, {kept} paths already taken");
    Ok(())
}

pub(crate) fn add_init(tree: &mut Tree, init: &str) -> Result<()> {
    let bad = |why: &str| ImageError::Input(format!("init {init}: {why}"));
    let init = format!("/{}", normalize(init).map_err(|e| bad(&e))?);
    let mut path = init.clone();
    for _ in 0..40 {
        match tree.get(&path).map(|n| &n.kind) {
            None => return Err(bad(&format!("{path} is not in the image"))),
            Some(NodeKind::Symlink(t)) => {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                path = resolve_lexical(if dir.is_empty() { "/" } else { dir }, t);
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
