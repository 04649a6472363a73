//! The truncate suite: size changes, refused (the default server) and accepted
//! (`--allow-resize`), and a fmap whose size disagrees with i_size.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::suites::fault::{page_up, PAGE};
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Access, Kmsg};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::{encode, Extents, FileMap, SimpleExtent};
use lab_suite::expect::{boundaries, simple_map, AreaAlloc, MIB, READ_AREA};
use std::fs::File;
use std::time::Duration;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "refused_default" => refused_default(ctx),
        "shrink" => shrink(ctx),
        "grow" => grow(ctx),
        "o_trunc" => o_trunc(ctx),
        "size_mismatch" => size_mismatch(ctx),
        "attr_size_changed" => attr_size_changed(ctx),
        _ => bail!("no truncate case {name:?}"),
    }
}

/// A 3-extent file of 6 MiB - 5000 bytes in the read area.
fn file_t(a: &mut AreaAlloc) -> Result<FileMap> {
    simple_map(
        a,
        &[(0, 2 * MIB), (0, 2 * MIB), (0, 2 * MIB)],
        6 * MIB - 5000,
    )
    .context("read area full")
}

fn open_rw(fs: &Famfs, rel: &str) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .open(fs.path(rel))
        .with_context(|| format!("open {rel}"))
}

/// The map after a size change of a file whose extents already hold `[0, size)`: the same
/// extents (famfs keeps a file's bytes in place), the new size. Computed from the model
/// alone, never with the server's resize code: the bytes below the new size are the ones
/// the old map had there.
fn resized_in_place(old: &FileMap, size: u64) -> Result<FileMap> {
    if size > old.mapped_size() {
        bail!(
            "{size:#x} is past the {:#x} bytes the extents hold: not a size change in place",
            old.mapped_size()
        );
    }
    Ok(FileMap {
        file_size: size,
        ..old.clone()
    })
}

/// `old` grown to `size` with one more simple extent on `slot`, taken from `a`: what the
/// case makes the server serve (through its blob directory) after a growth past the extents.
fn grown(old: &FileMap, size: u64, slot: u32, a: &mut AreaAlloc) -> Result<FileMap> {
    let more = size
        .checked_sub(old.mapped_size())
        .filter(|&m| m > 0)
        .with_context(|| {
            format!(
                "{size:#x} is not past the extents ({:#x})",
                old.mapped_size()
            )
        })?;
    let Extents::Simple(v) = &old.extents else {
        bail!("grown: simple extents only");
    };
    let len = more.div_ceil(2 * MIB) * 2 * MIB;
    let mut v = v.clone();
    v.push(SimpleExtent {
        dev_index: slot,
        offset: a.take(slot, len).context("read area full")?,
        len,
    });
    Ok(FileMap {
        file_size: size,
        extents: Extents::Simple(v),
        ..old.clone()
    })
}

/// Everything observable about `rel` that a refused size change must leave alone.
fn snapshot(fs: &Famfs, rel: &str, f: &File, m: &Mapping) -> Result<Vec<String>> {
    let map = fs.map(rel)?;
    let mut v = vec![format!("size {:?}", sys::size_of(&fs.path(rel)))];
    v.push(format!(
        "fstat {:?}",
        f.metadata().map(|m| m.len()).map_err(|e| sys::errno(&e))
    ));
    for &o in &boundaries(map) {
        v.push(format!("map {o:#x}: {:#04x}", m.bytes()[o as usize]));
        v.push(format!("pread {o:#x}: {:02x?}", sys::pread(f, o, 16)));
    }
    Ok(v)
}

fn refused_default(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let fs = Famfs::start(
        ctx,
        Spec::new(&ctx.ops()?, ctx.slots(1)?).file("t", file_t(&mut a)?),
    )?;
    let size = fs.map("t")?.file_size;
    let f = open_rw(&fs, "t")?;
    let m = Mapping::shared(&f, 0, page_up(size) as usize, false).context("mmap")?;
    let before = snapshot(&fs, "t", &f, &m)?;
    let want_first = fs.expected("t", 0, 4096)?;
    c.bytes("t: bytes before", 0, &m.read_at(0, 4096), &want_first);
    let fmaps = fs.stats()?.fmap("t")?;
    for (what, new) in [
        ("smaller", size - PAGE),
        ("larger", size + PAGE),
        ("equal", size),
        ("zero", 0),
    ] {
        c.eq(
            format!("ftruncate {what} ({new:#x})"),
            sys::ftruncate(&f, new),
            libc::EINVAL,
        );
        c.eq(
            format!("truncate(path) {what} ({new:#x})"),
            sys::truncate(&fs.path("t"), new),
            libc::EINVAL,
        );
        c.eq(
            format!("after the {what} ones: size, mapping, bytes"),
            snapshot(&fs, "t", &f, &m)?,
            before.clone(),
        );
    }
    c.errno(
        "open(O_WRONLY|O_TRUNC)",
        &sys::open_flags(&fs.path("t"), true, libc::O_TRUNC),
        libc::EINVAL,
    );
    c.eq(
        "after O_TRUNC: size, mapping, bytes",
        snapshot(&fs, "t", &f, &m)?,
        before.clone(),
    );
    c.eq(
        "GET_FMAP: none since the first open (nothing was dropped)",
        fs.stats()?.fmap("t")?,
        fmaps,
    );
    c.bytes("t: bytes after", 0, &m.read_at(0, 4096), &want_first);
    drop((m, f));
    fs.stop()?;
    Ok(c.outcome())
}

fn shrink(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("t", file_t(&mut a)?);
    spec.allow_resize = true;
    let mut fs = Famfs::start(ctx, spec)?;
    let old = fs.map("t")?.file_size;
    let f = open_rw(&fs, "t")?;
    let m = Mapping::shared(&f, 0, page_up(old) as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let touch = [0, 2 * MIB + 5, 3 * MIB + 8192, 5 * MIB];
    for &o in &touch {
        c.touch(
            format!("before the truncate: {o:#x}"),
            m.ptr().wrapping_add(o as usize),
            fs.expected("t", o, 1)?[0],
        );
    }
    let new = 3 * MIB + 100;
    let fmaps = fs.stats()?.fmap("t")?;
    c.eq(format!("ftruncate to {new:#x}"), sys::ftruncate(&f, new), 0);
    let map = resized_in_place(fs.map("t")?, new)?;
    fs.set_map("t", map);
    c.eq("stat size", sys::size_of(&fs.path("t")), Ok(new));
    c.eq(
        "GET_FMAP right after the size change (the meta is dropped, not re-fetched yet)",
        fs.stats()?.fmap("t")? - fmaps,
        0,
    );
    let got = sys::pread(&f, 0, 4096).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes(
        "pread below the new EOF",
        0,
        &got,
        &fs.expected("t", 0, 4096)?,
    );
    c.eq(
        "GET_FMAP after the next access: one re-fetch",
        fs.stats()?.fmap("t")? - fmaps,
        1,
    );
    for o in [3 * MIB + 8192, 5 * MIB] {
        c.mapped(
            format!("{o:#x} (past the new EOF) after the truncate: unmapped by it"),
            m.ptr().wrapping_add(o as usize),
            false,
        );
    }
    for o in [0, 2 * MIB + 5, new - 1, new + 50] {
        c.access(
            format!("load at {o:#x} (below the new EOF page)"),
            sys::probe_read_here(m.ptr().wrapping_add(o as usize))?,
            Access::Ok(fs.expected("t", o, 1)?[0]),
        );
    }
    for o in [page_up(new), 3 * MIB + 8192, 5 * MIB] {
        c.access(
            format!("load at {o:#x} (past the new EOF; mapped before at 3 MiB + 8 KiB and 5 MiB)"),
            sys::probe_read_here(m.ptr().wrapping_add(o as usize))?,
            Access::Signal(libc::SIGBUS),
        );
    }
    c.eq(
        "pread at the new EOF",
        sys::pread(&f, new, 10).map(|v| v.len()),
        Ok(0),
    );
    c.eq(
        "GET_FMAP in all: one re-fetch",
        fs.stats()?.fmap("t")? - fmaps,
        1,
    );
    drop((m, f));
    fs.stop()?;
    Ok(c.outcome())
}

fn grow(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let g = simple_map(&mut a, &[(0, 4 * MIB)], 3 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("g", g);
    spec.allow_resize = true;
    spec.blob_dir = true;
    let mut fs = Famfs::start(ctx, spec)?;
    let f = open_rw(&fs, "g")?;
    let m = Mapping::shared(&f, 0, (8 * MIB) as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    c.access(
        "fault at 3 MiB (EOF) before growing",
        sys::probe_read(m.ptr().wrapping_add(3 * MIB as usize + PAGE as usize))?,
        Access::Signal(libc::SIGBUS),
    );
    for new in [4 * MIB, 7 * MIB] {
        let fmaps = fs.stats()?.fmap("g")?;
        let old = fs.map("g")?.clone();
        let map = if new <= old.mapped_size() {
            resized_in_place(&old, new)?
        } else {
            // past the extents: the server's map would come from its own allocator; the
            // case serves its own, one more extent from the read area, as a blob
            let map = grown(&old, new, 0, &mut a)?;
            fs.write_blob("g", &encode(&map))?;
            map
        };
        c.eq(format!("ftruncate to {new:#x}"), sys::ftruncate(&f, new), 0);
        println!("the server now serves {map:?}");
        fs.set_map("g", map);
        c.eq(
            format!("{new:#x}: stat size"),
            sys::size_of(&fs.path("g")),
            Ok(new),
        );
        let got =
            sys::pread(&f, 0, new as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
        c.bytes(
            format!("{new:#x}: pread of the whole file"),
            0,
            &got,
            &fs.expected("g", 0, new)?,
        );
        c.eq(
            format!("{new:#x}: GET_FMAP: one re-fetch"),
            fs.stats()?.fmap("g")? - fmaps,
            1,
        );
        for o in [3 * MIB, new - 1] {
            c.access(
                format!("{new:#x}: fault at {o:#x}"),
                sys::probe_read(m.ptr().wrapping_add(o as usize))?,
                Access::Ok(fs.expected("g", o, 1)?[0]),
            );
        }
        c.access(
            format!("{new:#x}: fault past the new EOF"),
            sys::probe_read(m.ptr().wrapping_add(new as usize + PAGE as usize))?,
            Access::Signal(libc::SIGBUS),
        );
    }
    drop((m, f));
    fs.stop()?;
    Ok(c.outcome())
}

fn o_trunc(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    // The kernel sends open(O_TRUNC) as SETATTR, or with FUSE_ATOMIC_O_TRUNC as the OPEN
    // itself (fuse_open() then drops the metadata): both paths.
    for (allow, atomic) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut a = AreaAlloc::new(READ_AREA);
        let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("t", file_t(&mut a)?);
        spec.allow_resize = allow;
        if atomic {
            spec.args.push("--atomic-o-trunc".into());
        }
        let mut fs = Famfs::start(ctx, spec)?;
        let tag = match (allow, atomic) {
            (false, false) => "default",
            (true, false) => "--allow-resize",
            (false, true) => "--atomic-o-trunc",
            (true, true) => "--allow-resize --atomic-o-trunc",
        };
        let setattrs = fs.stats()?.opcode("SETATTR")?;
        let size = fs.map("t")?.file_size;
        let f = open_rw(&fs, "t")?;
        let m = Mapping::shared(&f, 0, page_up(size) as usize, false).context("mmap")?;
        m.advise(libc::MADV_NOHUGEPAGE)?;
        c.touch(
            format!("{tag}: before the O_TRUNC: 0"),
            m.ptr(),
            fs.expected("t", 0, 1)?[0],
        );
        let fmaps = fs.stats()?.fmap("t")?;
        let r = sys::open_flags(&fs.path("t"), true, libc::O_TRUNC);
        if !allow {
            c.errno(format!("{tag}: open(O_TRUNC)"), &r, libc::EINVAL);
            c.eq(
                format!("{tag}: size unchanged"),
                sys::size_of(&fs.path("t")),
                Ok(size),
            );
            c.access(
                format!("{tag}: the mapping still reads"),
                sys::probe_read_here(m.ptr())?,
                Access::Ok(fs.expected("t", 0, 1)?[0]),
            );
            c.eq(
                format!("{tag}: no re-fetch"),
                fs.stats()?.fmap("t")? - fmaps,
                0,
            );
        } else {
            c.errno(format!("{tag}: open(O_TRUNC)"), &r, 0);
            if atomic {
                c.eq(
                    format!("{tag}: no SETATTR (the truncation came with the OPEN)"),
                    fs.stats()?.opcode("SETATTR")? - setattrs,
                    0,
                );
                // fuse_open() drops the old metadata before it opens the fmap file, so the
                // OPEN that truncated fetches the new, empty fmap at once.
                c.eq(
                    format!("{tag}: GET_FMAP during open(O_TRUNC) (the old metadata dropped)"),
                    fs.stats()?.fmap("t")? - fmaps,
                    1,
                );
            }
            let full = fs.map("t")?.clone();
            fs.set_map("t", resized_in_place(&full, 0)?);
            c.eq(format!("{tag}: size 0"), sys::size_of(&fs.path("t")), Ok(0));
            c.eq(
                format!("{tag}: read at 0"),
                sys::pread(&f, 0, 10).map(|v| v.len()),
                Ok(0),
            );
            c.mapped(
                format!("{tag}: 0 after the O_TRUNC: unmapped by it"),
                m.ptr(),
                false,
            );
            c.access(
                format!("{tag}: load at 0 (mapped before the O_TRUNC)"),
                sys::probe_read_here(m.ptr())?,
                Access::Signal(libc::SIGBUS),
            );
            c.eq(
                format!("{tag}: ftruncate back to 2 MiB"),
                sys::ftruncate(&f, 2 * MIB),
                0,
            );
            fs.set_map("t", resized_in_place(&full, 2 * MIB)?);
            let got = sys::pread(&f, 0, 4096).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{tag}: bytes after growing back"),
                0,
                &got,
                &fs.expected("t", 0, 4096)?,
            );
            c.check(
                fs.stats()?.fmap("t")? - fmaps >= 1,
                format!("{tag}: the fmap was fetched again"),
            );
        }
        drop((m, f, r));
        fs.stop()?;
    }
    Ok(c.outcome())
}

/// The server reports a new size in GETATTR for a file that is open and mapped, without a new
/// fmap, a SETATTR or an invalidation: the kernel must mark the file bad and unmap it at once,
/// so a page mapped before the change stops working too (not only new faults).
fn attr_size_changed(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 4 * MIB)], 3 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("m", map);
    spec.blob_dir = true;
    let fs = Famfs::start(ctx, spec)?;
    let f = open_rw(&fs, "m")?;
    let m = Mapping::shared(&f, 0, 3 * MIB as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let first = fs.expected("m", 0, 1)?[0];
    let second = fs.expected("m", PAGE, 1)?[0];
    c.touch("m: page 0 mapped before the size change", m.ptr(), first);
    c.eq(
        "m: the size before",
        sys::size_synced(&fs.path("m")),
        Ok(3 * MIB),
    );
    let mut kmsg = Kmsg::open()?;
    sys::ratelimit_quiet();
    std::fs::write(fs.blobs.join("m.size"), format!("{}\n", 2 * MIB))
        .context("writing the server's size override")?;
    c.eq(
        "m: GETATTR now reports 2 MiB",
        sys::size_synced(&fs.path("m")),
        Ok(2 * MIB),
    );
    match kmsg.wait_for("without a new fmap", Duration::from_secs(3)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no kernel log line about a size change without a new fmap"),
    }
    // The page mapped before: its PTE must be gone, or the stale map keeps working.
    c.access(
        "m: load at 0 (mapped before the size change)",
        sys::probe_read_here(m.ptr())?,
        Access::Signal(libc::SIGBUS),
    );
    c.access(
        "m: load at 4 KiB (never mapped)",
        sys::probe_read_here(m.ptr().wrapping_add(PAGE as usize))?,
        Access::Signal(libc::SIGBUS),
    );
    c.errno("m: pread", &sys::pread(&f, 0, 10), libc::EIO);
    // A write that wrongly goes through would store the byte already there: nothing changes.
    c.errno(
        "m: pwrite",
        &sys::pwrite_once(&f, PAGE, &[second]),
        libc::EIO,
    );
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

fn size_mismatch(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let bad = simple_map(&mut a, &[(0, 4 * MIB)], 3 * MIB).context("read area full")?;
    let mm = simple_map(&mut a, &[(0, 4 * MIB)], 3 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("bad", bad.clone())
        .file("m", mm.clone());
    spec.blob_dir = true;
    spec.allow_resize = true;
    let fs = Famfs::start(ctx, spec)?;
    // 1. the fmap says 3 MiB + 4 KiB, the attributes 3 MiB
    fs.write_blob(
        "bad",
        &encode(&FileMap {
            file_size: 3 * MIB + PAGE,
            ..bad
        }),
    )?;
    let mut kmsg = Kmsg::open()?;
    sys::ratelimit_quiet();
    c.errno("bad: open", &sys::open(&fs.path("bad"), false), libc::EIO);
    match kmsg.wait_for("does not match i_size", Duration::from_secs(3)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no kernel log line about the size mismatch"),
    }
    // FUSE drops an inode at its last reference (inode_just_drop) and revalidation drops a bad
    // one: a later lookup gets a fresh inode, whose stat works and whose open fails again.
    for n in 2..=3 {
        let before = fs.stats()?.fmap("bad")?;
        c.errno(
            format!("bad: open #{n}"),
            &sys::open(&fs.path("bad"), false),
            libc::EIO,
        );
        let fetched = fs.stats()?.fmap("bad")? - before;
        println!("bad: open #{n} sent {fetched} GET_FMAP");
    }
    let st = sys::size_of(&fs.path("bad"));
    c.check(
        st == Ok(3 * MIB) || st == Err(libc::EIO),
        format!("bad: stat is EIO (the bad inode) or the server's size (a fresh inode): {st:?}"),
    );
    c.errno(
        "bad: open after the stat",
        &sys::open(&fs.path("bad"), false),
        libc::EIO,
    );
    // 2. an open, mapped file whose re-fetched fmap disagrees with the new size
    let f = open_rw(&fs, "m")?;
    let m = Mapping::shared(&f, 0, 4 * MIB as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let first = fs.expected("m", 0, 1)?[0];
    c.touch("m: before the size change: 0", m.ptr(), first);
    fs.write_blob(
        "m",
        &encode(&FileMap {
            file_size: 3 * MIB,
            ..mm
        }),
    )?;
    c.eq(
        "m: ftruncate to 2 MiB (the server serves a 3 MiB fmap from now on)",
        sys::ftruncate(&f, 2 * MIB),
        0,
    );
    c.errno(
        "m: pread after the re-fetch",
        &sys::pread(&f, 0, 10),
        libc::EIO,
    );
    c.access(
        "m: load at 0 after (mapped before; the file is bad now)",
        sys::probe_read_here(m.ptr())?,
        Access::Signal(libc::SIGBUS),
    );
    // the byte the device already holds: a write that wrongly goes through changes nothing
    c.errno("m: pwrite", &sys::pwrite_once(&f, 0, &[first]), libc::EIO);
    c.errno("m: open", &sys::open(&fs.path("m"), false), libc::EIO);
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_changes_come_from_the_model() {
        let mut a = AreaAlloc::new(READ_AREA);
        let old = simple_map(&mut a, &[(0, 4 * MIB)], 3 * MIB).unwrap();
        let same = resized_in_place(&old, 4 * MIB).unwrap();
        assert_eq!((same.file_size, &same.extents), (4 * MIB, &old.extents));
        assert!(resized_in_place(&old, 4 * MIB + 1).is_err());
        let g = grown(&old, 7 * MIB, 0, &mut a).unwrap();
        assert_eq!(g.file_size, 7 * MIB);
        assert_eq!(g.mapped_size(), 8 * MIB);
        famfs_fmap::validate(&g).unwrap();
        // the new extent is the area's next one, disjoint from the old
        let Extents::Simple(v) = &g.extents else {
            panic!("simple")
        };
        assert_eq!(v[1].offset, READ_AREA.start + 4 * MIB);
        assert!(grown(&old, 4 * MIB, 0, &mut a).is_err());
    }
}
