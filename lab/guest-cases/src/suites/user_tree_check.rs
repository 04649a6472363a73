//! The `shadow` suite: a tree the user brought (`cargo xtask lab up --shadow DIR`, see
//! `lab_suite::user_tree`), served by famfs-fused with the run's ops. Every directory
//! and file has the tree's type, mode and owner (and files its size), and every file reads,
//! through a shared mmap and through pread, the bytes the host wrote into the backing files at
//! the fmap's offsets (CRC32 per block, the host's list).

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, FileSpec, Spec, Target};
use crate::system::mapping::Mapping;
use crate::system::sys;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::user_tree::{self, Expectation, FileExpect, EXPECT_FILE, TREE_DIR};
use lab_suite::verify::GUEST_RESULTS;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "user_tree" => user_tree_case(ctx),
        other => bail!("no shadow case {other}"),
    }
}

fn user_tree_case(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let results = Path::new(GUEST_RESULTS);
    let dir = results.join(TREE_DIR);
    if !dir.is_dir() {
        return Ok(Outcome::Skip(
            "no user tree in this run: `cargo xtask lab up --shadow DIR` brings one".into(),
        ));
    }
    let expect_path = results.join(EXPECT_FILE);
    let text = std::fs::read_to_string(&expect_path).with_context(|| {
        format!(
            "reading {} (the host writes it after setup)",
            expect_path.display()
        )
    })?;
    let exp: Expectation = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", expect_path.display()))?;
    let tree = famfs_shadow::load(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let fs = Famfs::start(ctx, tree_spec(ctx, &dir, &tree)?)?;
    let mut c = Checks::new();
    for d in &tree.dirs {
        let shown = if d.path.is_empty() { "/" } else { &d.path };
        match std::fs::symlink_metadata(fs.path(&d.path)) {
            Ok(md) => {
                c.eq(
                    format!("{shown}: directory, mode, uid, gid"),
                    (md.is_dir(), md.mode() & 0o7777, md.uid(), md.gid()),
                    (true, d.mode, d.uid, d.gid),
                );
            }
            Err(e) => c.fail(format!("{shown}: stat: {e}")),
        }
    }
    for f in &tree.files {
        match std::fs::symlink_metadata(fs.path(&f.path)) {
            Ok(md) => {
                c.eq(
                    format!("{}: regular file, size, mode, uid, gid", f.path),
                    (
                        md.is_file(),
                        md.len(),
                        md.mode() & 0o7777,
                        md.uid(),
                        md.gid(),
                    ),
                    (true, f.attrs.size, f.attrs.mode, f.attrs.uid, f.attrs.gid),
                );
            }
            Err(e) => c.fail(format!("{}: stat: {e}", f.path)),
        }
    }
    let mut bytes = 0;
    for x in &exp.files {
        check_bytes(&fs, x, exp.block, &mut c)?;
        bytes += x.size;
    }
    c.note(format!(
        "{} directories, {} files, {bytes} bytes read through mmap and pread ({} ops)",
        tree.dirs.len(),
        exp.files.len(),
        fs.spec.ops
    ));
    Ok(c.outcome())
}

/// One file's bytes through a shared mapping and through pread, block by block.
fn check_bytes(fs: &Famfs, x: &FileExpect, block: u64, c: &mut Checks) -> Result<()> {
    let path = fs.path(&x.path);
    if x.size == 0 {
        return Ok(());
    }
    let file = match sys::open(&path, false) {
        Ok(f) => f,
        Err(e) => {
            c.fail(format!("{}: open: {}", x.path, sys::errno_name(e)));
            return Ok(());
        }
    };
    let len = usize::try_from(x.size).context("file size")?;
    let where_is = |off: u64, n: u64| -> String {
        match fs.pieces(&x.path, off, n) {
            Ok(p) if !p.is_empty() => format!(
                " ({}+{:#x}, backing {}+{:#x})",
                p[0].dax, p[0].dax_off, p[0].memdev, p[0].backing_off
            ),
            _ => String::new(),
        }
    };
    let first_bad = |read: &dyn Fn(u64, u64) -> std::result::Result<Vec<u8>, String>| {
        for (i, want) in x.crc32.iter().enumerate() {
            let (off, n) = x.block_range(block, i);
            match read(off, n) {
                Ok(got) if got.len() as u64 == n && crc32fast::hash(&got) == *want => {}
                Ok(got) if got.len() as u64 != n => {
                    return Some(format!("{} bytes at {off:#x}, expected {n}", got.len()))
                }
                Ok(_) => {
                    return Some(format!(
                        "block {off:#x}+{n:#x}{} differs from the host's backing bytes",
                        where_is(off, n)
                    ))
                }
                Err(e) => return Some(format!("at {off:#x}: {e}")),
            }
        }
        None
    };
    match Mapping::shared(&file, 0, len, false) {
        Ok(m) => {
            let bad = first_bad(&|off, n| Ok(m.bytes()[off as usize..(off + n) as usize].to_vec()));
            c.check(
                bad.is_none(),
                format!(
                    "{}: mmap read of {} bytes{}",
                    x.path,
                    x.size,
                    bad.map(|b| format!(": {b}")).unwrap_or_default()
                ),
            );
        }
        Err(e) => c.fail(format!("{}: mmap: {e}", x.path)),
    }
    let bad = first_bad(&|off, n| {
        sys::pread(&file, off, n as usize).map_err(|e| format!("pread: {}", sys::errno_name(e)))
    });
    c.check(
        bad.is_none(),
        format!(
            "{}: pread of {} bytes{}",
            x.path,
            x.size,
            bad.map(|b| format!(": {b}")).unwrap_or_default()
        ),
    );
    Ok(())
}

/// The server spec that serves a user's tree as it stands in `dir`: its devices on the guest's
/// dax devices, its files with their maps.
pub(crate) fn tree_spec(
    ctx: &Ctx<'_>,
    dir: &Path,
    tree: &famfs_shadow::ShadowTree,
) -> Result<Spec> {
    let slots = user_tree::slots(&tree.daxdevs, ctx.map)?;
    let mut spec = Spec::new(
        &ctx.ops()?,
        slots
            .0
            .iter()
            .map(|(&i, d)| (i, Target::Dax(d.name.clone())))
            .collect(),
    );
    spec.existing = Some(dir.to_path_buf());
    spec.files = tree
        .files
        .iter()
        .map(|f| FileSpec {
            path: f.path.clone(),
            map: f.map.clone(),
            shared: f.attrs.shared(),
        })
        .collect();
    Ok(spec)
}
