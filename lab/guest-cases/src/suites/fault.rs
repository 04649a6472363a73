//! The fault suite: the DAX data path of fmap files, byte for byte against the model.

use crate::harness::check::Checks;
use crate::harness::famfs::{native_available, Ctx, Famfs, FileSpec, Spec, Target};
use crate::system::mapping::Mapping;
use crate::system::sys::{self, dax_faults, Access, Trace, DAX_FAULT_EVENTS};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::{Extents, FileMap, FileType, SimpleExtent};
use lab_suite::expect::{
    boundaries, interleaved_map, simple_map, AreaAlloc, Stripe, MIB, READ_AREA, WRITE_AREA,
};
use lab_suite::rng::Rng;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "read_pte" => read_pte(ctx),
        "read_pmd" => read_pmd(ctx),
        "chunk_straddle" => chunk_straddle(ctx),
        "rw_syscalls" => rw_syscalls(ctx),
        "mmap_write" => mmap_write(ctx),
        "past_eof_sigbus" => past_eof_sigbus(ctx),
        "refetch_unlocked" => crate::suites::notify::refetch_unlocked(ctx),
        "private_mapping" => private_mapping(ctx),
        "fork_after_mmap" => fork_after_mmap(ctx),
        "differential_maplookup" => differential(ctx, "famfs_maplookup"),
        "differential_native" => {
            if let Err(why) = native_available() {
                return Ok(Outcome::Skip(why));
            }
            differential(ctx, "famfs_native")
        }
        _ => bail!("no fault case {name:?}"),
    }
}

pub const PAGE: u64 = 4096;
pub const PMD: u64 = 2 * MIB;

pub fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// The read-only files of the fault cases, on up to three dax devices:
/// - `simple`: three 2 MiB extents, out of order on the devices, 6 MiB - 4196 bytes;
/// - `pmd`: extents of 2 and 4 MiB, exactly 6 MiB (every 2 MiB is one PMD);
/// - `il`: interleaved, 12 MiB in 2 MiB chunks over 3 strips (two runs per strip: chunk k is
///   run k / 3 of strip k % 3, so a strip's device bytes hold file offsets a stride of 6 MiB
///   apart), then 8 MiB in 4 MiB chunks over 2 strips; 20 MiB - 12345 bytes.
///
/// On one device they fill the read area exactly (6 + 6 + 12 + 8 MiB).
pub fn read_files(ctx: &Ctx<'_>) -> Result<(BTreeMap<u32, Target>, Vec<FileSpec>)> {
    let slots = ctx.slots(3)?;
    let n = slots.len() as u32;
    let s = |i: u32| i % n;
    let mut a = AreaAlloc::new(READ_AREA);
    let full = || anyhow::anyhow!("the read area is full");
    let mut r = Vec::new();
    for slot in [s(0), s(1), s(0)] {
        r.push(SimpleExtent {
            dev_index: slot,
            offset: a.take(slot, PMD).ok_or_else(full)?,
            len: PMD,
        });
    }
    let simple = FileMap {
        file_type: FileType::Regular,
        file_size: 6 * MIB - 4196,
        extents: Extents::Simple(vec![r[2], r[0], r[1]]),
    };
    let pmd = simple_map(&mut a, &[(s(1), 2 * MIB), (s(0), 4 * MIB)], 6 * MIB).ok_or_else(full)?;
    let il = interleaved_map(
        &mut a,
        &[
            Stripe {
                chunk: 2 * MIB,
                nbytes: 12 * MIB,
                slots: &[s(0), s(1), s(2)],
            },
            Stripe {
                chunk: 4 * MIB,
                nbytes: 8 * MIB,
                slots: &[s(1), s(0)],
            },
        ],
        20 * MIB - 12345,
    )
    .ok_or_else(full)?;
    Ok((
        slots,
        vec![
            FileSpec::new("simple", simple),
            FileSpec::new("pmd", pmd),
            FileSpec::new("il", il),
        ],
    ))
}

fn start_read(ctx: &Ctx<'_>, ops: &str) -> Result<Famfs> {
    let (slots, files) = read_files(ctx)?;
    let mut spec = Spec::new(ops, slots);
    spec.files = files;
    Famfs::start(ctx, spec)
}

/// Extent/chunk edges plus `n` seeded random offsets below the file size.
fn sample_offsets(map: &FileMap, n: usize, seed: u64) -> Vec<u64> {
    let mut v = boundaries(map);
    let mut r = Rng::new(seed);
    v.extend((0..n).map(|_| r.below(map.file_size)));
    v.sort_unstable();
    v.dedup();
    v
}

/// A shared mapping of `len` bytes; `huge` false forbids PMD faults (MADV_NOHUGEPAGE).
fn map_file(f: &File, len: u64, write: bool, huge: bool) -> Result<Mapping> {
    let m = Mapping::shared(f, 0, len as usize, write).context("mmap")?;
    if !huge {
        m.advise(libc::MADV_NOHUGEPAGE)
            .context("madvise(MADV_NOHUGEPAGE)")?;
    }
    Ok(m)
}

/// Reads `offs` through `m` and compares each byte with the model. A fault that fails (SIGBUS:
/// the kernel refused the mapping) is a wrong byte, not the end of the case.
fn check_samples(c: &mut Checks, fs: &Famfs, rel: &str, m: &Mapping, offs: &[u64]) -> Result<()> {
    let mut bad = Vec::new();
    for &o in offs {
        if o as usize >= m.bytes().len() {
            bail!("{rel}: sample {o:#x} is outside the mapping");
        }
        let got = sys::probe_read_here(m.ptr().wrapping_add(o as usize))?;
        let want = fs.expected(rel, o, 1)?[0];
        if got != Access::Ok(want) {
            bad.push(format!("{o:#x}: {got} != {want:#04x}"));
        }
    }
    c.check(
        bad.is_empty(),
        format!(
            "{rel}: {} sampled bytes (every extent/chunk edge + random) through the mapping{}",
            offs.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(": wrong at {}", bad.join(", "))
            }
        ),
    );
    Ok(())
}

/// THP must not be `never` for DAX PMDs; returns the setting to restore.
pub fn allow_thp() -> Result<Option<String>> {
    let p = "/sys/kernel/mm/transparent_hugepage/enabled";
    let cur = match std::fs::read_to_string(p) {
        Ok(c) => c,
        Err(_) => return Ok(None),
    };
    if cur.contains("[never]") {
        std::fs::write(p, "madvise").with_context(|| format!("writing madvise to {p}"))?;
        println!("transparent_hugepage was never; set to madvise for this case");
        return Ok(Some("never".into()));
    }
    Ok(None)
}

pub fn restore_thp(prev: Option<String>) {
    if let Some(p) = prev {
        let _ = std::fs::write("/sys/kernel/mm/transparent_hugepage/enabled", p);
    }
}

fn read_pte(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let fs = start_read(ctx, &ctx.ops()?)?;
    let trace = Trace::new(DAX_FAULT_EVENTS)?;
    if trace.is_none() {
        c.note("no fs_dax tracepoints: the fault size is not checked");
    }
    for (i, rel) in ["simple", "il"].into_iter().enumerate() {
        let map = fs.map(rel)?.clone();
        let f = sys::open(&fs.path(rel), false)
            .map_err(|e| anyhow::anyhow!("open {rel}: errno {e}"))?;
        let ino = sys::ino(&f)?;
        let m = map_file(&f, page_up(map.file_size), false, false)?;
        if let Some(t) = &trace {
            t.clear()?;
        }
        check_samples(
            &mut c,
            &fs,
            rel,
            &m,
            &sample_offsets(&map, 48, i as u64 + 1),
        )?;
        let last = (map.file_size - 1) / PAGE * PAGE;
        c.bytes(
            format!("{rel}: the last page up to EOF"),
            last,
            &m.read_at(last as usize, (map.file_size - last) as usize),
            &fs.expected(rel, last, map.file_size - last)?,
        );
        if let Some(t) = &trace {
            let n = dax_faults(&t.lines()?, ino);
            c.check(
                n.pte > 0 && n.pmd == 0 && n.failed == 0,
                format!("{rel}: PTE faults only ({n:?})"),
            );
        }
    }
    fs.stop()?;
    Ok(c.outcome())
}

fn read_pmd(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let Some(trace) = Trace::new(DAX_FAULT_EVENTS)? else {
        return Ok(Outcome::Skip(
            "no fs_dax tracepoints (fs_dax/dax_pmd_fault_done) to tell PMD from PTE faults".into(),
        ));
    };
    let prev = allow_thp()?;
    let fs = start_read(ctx, &ctx.ops()?)?;
    for rel in ["pmd", "il"] {
        let map = fs.map(rel)?.clone();
        let f = sys::open(&fs.path(rel), false)
            .map_err(|e| anyhow::anyhow!("open {rel}: errno {e}"))?;
        let ino = sys::ino(&f)?;
        let len = map.file_size.div_ceil(PMD) * PMD;
        let m = map_file(&f, len, false, true)?;
        if !c.check(
            (m.ptr() as u64).is_multiple_of(PMD),
            format!(
                "{rel}: mmap of {len:#x} bytes returned a 2 MiB aligned address ({:p})",
                m.ptr()
            ),
        ) {
            continue;
        }
        trace.clear()?;
        let full = map.file_size / PMD;
        let mut offs = Vec::new();
        for k in 0..full {
            offs.extend([k * PMD, k * PMD + MIB + 7, (k + 1) * PMD - 1]);
        }
        check_samples(&mut c, &fs, rel, &m, &offs)?;
        let n = dax_faults(&trace.lines()?, ino);
        c.check(
            n.pmd as u64 == full && n.pte == 0 && n.failed == 0,
            format!("{rel}: one PMD fault per 2 MiB of the file ({full}), no PTE fault ({n:?})"),
        );
        if map.file_size % PMD != 0 {
            trace.clear()?;
            let tail = full * PMD + 100;
            check_samples(&mut c, &fs, rel, &m, &[tail, map.file_size - 1])?;
            let n = dax_faults(&trace.lines()?, ino);
            c.check(
                n.pmd == 0 && n.pte > 0 && n.failed == 0,
                format!("{rel}: the 2 MiB holding EOF faults with PTEs ({n:?})"),
            );
        }
    }
    fs.stop()?;
    restore_thp(prev);
    Ok(c.outcome())
}

fn chunk_straddle(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let fs = start_read(ctx, &ctx.ops()?)?;
    for rel in ["il", "simple"] {
        let map = fs.map(rel)?.clone();
        let f = sys::open(&fs.path(rel), false)
            .map_err(|e| anyhow::anyhow!("open {rel}: errno {e}"))?;
        let m = map_file(&f, page_up(map.file_size), false, false)?;
        // every edge between two extents or chunks
        let edges: Vec<u64> = boundaries(&map)
            .windows(2)
            .filter(|w| w[1] == w[0] + 1)
            .map(|w| w[1])
            .collect();
        for &b in &edges {
            c.bytes(
                format!("{rel}: mapping copy across {b:#x}"),
                b - 2048,
                &m.read_at((b - 2048) as usize, 4096),
                &fs.expected(rel, b - 2048, 4096)?,
            );
            let got =
                sys::pread(&f, b - 100, 200).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{rel}: pread across {b:#x}"),
                b - 100,
                &got,
                &fs.expected(rel, b - 100, 200)?,
            );
        }
        if let Some(&b) = edges.first() {
            let (off, len) = (
                b.saturating_sub(MIB),
                (2 * MIB).min(map.file_size - b.saturating_sub(MIB)),
            );
            let got = sys::pread(&f, off, len as usize)
                .map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{rel}: one 2 MiB pread across {b:#x}"),
                off,
                &got,
                &fs.expected(rel, off, len)?,
            );
        }
    }
    fs.stop()?;
    Ok(c.outcome())
}

fn rw_syscalls(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let (slots, mut files) = read_files(ctx)?;
    let n = slots.len() as u32;
    let mut a = AreaAlloc::new(WRITE_AREA);
    let w = simple_map(&mut a, &[(0, 2 * MIB), (1 % n, 2 * MIB)], 4 * MIB - 1000)
        .context("write area full")?;
    files.push(FileSpec::new("w", w));
    let mut spec = Spec::new(&ctx.ops()?, slots);
    spec.files = files;
    let fs = Famfs::start(ctx, spec)?;

    // read(2) of a whole file, 128 KiB at a time
    let size = fs.map("simple")?.file_size;
    let mut f = File::open(fs.path("simple"))?;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 128 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => all.extend_from_slice(&buf[..k]),
            Err(e) => {
                c.fail(format!("read of simple at {:#x}: {e}", all.len()));
                break;
            }
        }
    }
    c.bytes(
        "simple: read(2) of the whole file",
        0,
        &all,
        &fs.expected("simple", 0, size)?,
    );
    for &o in &boundaries(fs.map("simple")?) {
        let len = 4096.min(size - o);
        let got =
            sys::pread(&f, o, len as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
        c.bytes(
            format!("simple: pread at {o:#x}"),
            o,
            &got,
            &fs.expected("simple", o, len)?,
        );
    }
    c.eq(
        "simple: pread at EOF",
        sys::pread(&f, size, 100).map(|v| v.len()),
        Ok(0),
    );
    c.eq(
        "simple: pread past EOF",
        sys::pread(&f, size + 5 * PAGE, 100).map(|v| v.len()),
        Ok(0),
    );
    c.eq(
        "simple: pread across EOF is short",
        sys::pread_once(&f, size - 10, 100).map(|v| v.len()),
        Ok(10),
    );

    // writes
    let seed = ctx.id.clone();
    let wsize = fs.map("w")?.file_size;
    let want = fs.seeded("w", 0, wsize, &seed)?;
    let mut wf = File::options().read(true).write(true).open(fs.path("w"))?;
    let edge = 2 * MIB;
    sys::pwrite_all(&wf, 0, &want[..(edge - 5000) as usize])?;
    sys::pwrite_all(
        &wf,
        edge - 5000,
        &want[(edge - 5000) as usize..(edge + 5000) as usize],
    )?;
    sys::pwrite_all(
        &wf,
        edge + 5000,
        &want[(edge + 5000) as usize..(3 * MIB) as usize],
    )?;
    let tail: Vec<u8> = want[(3 * MIB) as usize..]
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0xa5, 4096))
        .collect();
    wf.seek(SeekFrom::Start(3 * MIB))?;
    c.eq(
        "w: write(2) of 4 KiB past EOF from 3 MiB stops at EOF",
        wf.write(&tail).map_err(|e| sys::errno(&e)),
        Ok((wsize - 3 * MIB) as usize),
    );
    c.eq(
        "w: pwrite at EOF",
        sys::pwrite_once(&wf, wsize, b"x"),
        Err(libc::ENOSPC),
    );
    c.eq(
        "w: pwrite past EOF",
        sys::pwrite_once(&wf, wsize + 2 * PAGE, b"x"),
        Err(libc::ENOSPC),
    );
    wf.sync_all().context("fsync")?;
    let got =
        sys::pread(&wf, 0, wsize as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes("w: pread of what was written", 0, &got, &want);
    let m = map_file(&wf, page_up(wsize), false, false)?;
    c.bytes(
        "w: the mapping sees what was written",
        0,
        &m.read_at(0, wsize as usize),
        &want,
    );
    ctx.verify(fs.ranges("w", 0, wsize, Some(&seed))?);
    drop((m, f, wf));
    fs.stop()?;
    Ok(c.outcome())
}

fn mmap_write(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let slots = ctx.slots(2)?;
    let n = slots.len() as u32;
    let mut a = AreaAlloc::new(WRITE_AREA);
    let wpte = simple_map(&mut a, &[(0, 2 * MIB), (1 % n, 2 * MIB)], 4 * MIB)
        .context("write area full")?;
    let wpmd = interleaved_map(
        &mut a,
        &[Stripe {
            chunk: 2 * MIB,
            nbytes: 4 * MIB,
            slots: &[1 % n, 0],
        }],
        4 * MIB,
    )
    .context("write area full")?;
    let spec = Spec::new(&ctx.ops()?, slots)
        .file("wpte", wpte)
        .file("wpmd", wpmd);
    let prev = allow_thp()?;
    let fs = Famfs::start(ctx, spec)?;
    let trace = Trace::new(DAX_FAULT_EVENTS)?;
    if trace.is_none() {
        c.note("no fs_dax tracepoints: the fault sizes are not checked");
    }
    for (rel, huge) in [("wpte", false), ("wpmd", true)] {
        let seed = format!("{}:{rel}", ctx.id);
        let size = fs.map(rel)?.file_size;
        let want = fs.seeded(rel, 0, size, &seed)?;
        let f = File::options().read(true).write(true).open(fs.path(rel))?;
        let ino = sys::ino(&f)?;
        let mut m = map_file(&f, size, true, huge)?;
        if let Some(t) = &trace {
            t.clear()?;
        }
        for k in (0..size as usize).step_by(64 << 10) {
            let end = (k + (64 << 10)).min(size as usize);
            m.bytes_mut()[k..end].copy_from_slice(&want[k..end]);
        }
        c.eq(
            format!("{rel}: msync(MS_SYNC)"),
            m.sync(libc::MS_SYNC).map_err(|e| sys::errno(&e)),
            Ok(()),
        );
        c.eq(
            format!("{rel}: fsync"),
            f.sync_all().map_err(|e| sys::errno(&e)),
            Ok(()),
        );
        let got =
            sys::pread(&f, 0, size as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
        c.bytes(format!("{rel}: pread sees the stores"), 0, &got, &want);
        if let Some(t) = &trace {
            let n = dax_faults(&t.lines()?, ino);
            if huge {
                c.check(
                    n.pmd as u64 == size / PMD && n.writes > 0 && n.failed == 0,
                    format!("{rel}: one write PMD fault per 2 MiB ({n:?})"),
                );
            } else {
                c.check(
                    n.pte > 0 && n.pmd == 0 && n.writes > 0 && n.failed == 0,
                    format!("{rel}: write PTE faults only ({n:?})"),
                );
            }
        }
        ctx.verify(fs.ranges(rel, 0, size, Some(&seed))?);
    }
    fs.stop()?;
    restore_thp(prev);
    Ok(c.outcome())
}

fn past_eof_sigbus(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let size = 2 * MIB + 100;
    let mut r = AreaAlloc::new(READ_AREA);
    let mut w = AreaAlloc::new(WRITE_AREA);
    let e = simple_map(&mut r, &[(0, 4 * MIB)], size).context("read area full")?;
    let ew = simple_map(&mut w, &[(0, 4 * MIB)], size).context("write area full")?;
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("e", e)
        .file("ew", ew);
    let fs = Famfs::start(ctx, spec)?;
    let f = sys::open(&fs.path("e"), false).map_err(|e| anyhow::anyhow!("open e: errno {e}"))?;
    let m = map_file(&f, 4 * MIB, false, false)?;
    let eof_page = page_up(size);
    let want = |o: u64| -> Result<Access> { Ok(Access::Ok(fs.expected("e", o, 1)?[0])) };
    c.access(
        "e: last byte",
        sys::probe_read(m.ptr().wrapping_add((size - 1) as usize))?,
        want(size - 1)?,
    );
    c.access(
        "e: a byte past EOF in the EOF page (the page maps whole)",
        sys::probe_read(m.ptr().wrapping_add((size + 10) as usize))?,
        want(size + 10)?,
    );
    for o in [eof_page, eof_page + 100, 3 * MIB, 4 * MIB - 1] {
        c.access(
            format!("e: read at {o:#x}, past the EOF page"),
            sys::probe_read(m.ptr().wrapping_add(o as usize))?,
            Access::Signal(libc::SIGBUS),
        );
    }
    c.eq(
        "e: pread at EOF",
        sys::pread(&f, size, 10).map(|v| v.len()),
        Ok(0),
    );
    drop(m);
    let fw = sys::open(&fs.path("ew"), true).map_err(|e| anyhow::anyhow!("open ew: errno {e}"))?;
    let mw = map_file(&fw, 4 * MIB, true, false)?;
    for o in [eof_page, 3 * MIB] {
        c.access(
            format!("ew: write at {o:#x}, past the EOF page"),
            sys::probe_write(mw.ptr().wrapping_add(o as usize), 0x5a)?,
            Access::Signal(libc::SIGBUS),
        );
    }
    c.eq(
        "ew: pwrite at EOF",
        sys::pwrite_once(&fw, size, b"x"),
        Err(libc::ENOSPC),
    );
    drop((mw, fw, f));
    fs.stop()?;
    Ok(c.outcome())
}

fn private_mapping(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let size = 2 * MIB - 300;
    let mut w = AreaAlloc::new(WRITE_AREA);
    let p = simple_map(&mut w, &[(0, 2 * MIB)], size).context("write area full")?;
    let fs = Famfs::start(ctx, Spec::new(&ctx.ops()?, ctx.slots(1)?).file("p", p))?;
    let (k, q) = (format!("{}:file", ctx.id), format!("{}:private", ctx.id));
    let want = fs.seeded("p", 0, size, &k)?;
    let f = File::options().read(true).write(true).open(fs.path("p"))?;
    sys::pwrite_all(&f, 0, &want)?;
    let mut mp =
        Mapping::private(&f, 0, page_up(size) as usize, true).context("mmap MAP_PRIVATE")?;
    c.bytes(
        "p: MAP_PRIVATE reads the file",
        0,
        &mp.read_at(0, size as usize),
        &want,
    );
    let spots = [(4096u64, 8192u64), (size - 100, 100)];
    for &(o, l) in &spots {
        let qb = fs.seeded("p", o, l, &q)?;
        mp.bytes_mut()[o as usize..(o + l) as usize].copy_from_slice(&qb);
        c.bytes(
            format!("p: MAP_PRIVATE sees its own store at {o:#x}"),
            o,
            &mp.read_at(o as usize, l as usize),
            &qb,
        );
    }
    let ms = map_file(&f, page_up(size), false, false)?;
    for &(o, l) in &spots {
        let got = sys::pread(&f, o, l as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
        c.bytes(
            format!("p: pread does not see the private store at {o:#x}"),
            o,
            &got,
            &want[o as usize..(o + l) as usize],
        );
        c.bytes(
            format!("p: a shared mapping does not see it either at {o:#x}"),
            o,
            &ms.read_at(o as usize, l as usize),
            &want[o as usize..(o + l) as usize],
        );
    }
    ctx.verify(fs.ranges("p", 0, size, Some(&k))?);
    drop((mp, ms, f));
    fs.stop()?;
    Ok(c.outcome())
}

/// Forks; the child runs `f` (which must not allocate) and exits with its code.
fn in_child(f: impl FnOnce() -> i32) -> Result<i32> {
    // SAFETY: single-threaded here; the child only touches prepared memory and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = f();
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        bail!("waitpid: {}", std::io::Error::last_os_error());
    }
    if libc::WIFSIGNALED(status) {
        return Ok(128 + libc::WTERMSIG(status));
    }
    Ok(libc::WEXITSTATUS(status))
}

fn fork_after_mmap(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let size = 2 * MIB;
    let mut w = AreaAlloc::new(WRITE_AREA);
    let k = simple_map(&mut w, &[(0, 2 * MIB)], size).context("write area full")?;
    let fs = Famfs::start(ctx, Spec::new(&ctx.ops()?, ctx.slots(1)?).file("k", k))?;
    let (sk, sc, sp) = (
        format!("{}:file", ctx.id),
        format!("{}:child", ctx.id),
        format!("{}:private", ctx.id),
    );
    let want = fs.seeded("k", 0, size, &sk)?;
    let f = File::options().read(true).write(true).open(fs.path("k"))?;
    sys::pwrite_all(&f, 0, &want)?;
    let ms = map_file(&f, size, true, false)?;
    let samples: Vec<usize> = (0..size as usize).step_by(65536 + 4097).collect();
    for &o in &samples {
        c.touch(
            format!("shared: before the fork: {o:#x}"),
            ms.ptr().wrapping_add(o),
            want[o],
        );
    }
    let page5 = fs.seeded("k", 5 * PAGE, PAGE, &sc)?;
    let (ptr, want_ref, page5_ref, samples_ref) = (ms.ptr(), &want, &page5, &samples);
    let code = in_child(|| {
        for &o in samples_ref {
            // SAFETY: inside the inherited mapping.
            if unsafe { std::ptr::read_volatile(ptr.add(o)) } != want_ref[o] {
                return 2;
            }
        }
        // SAFETY: one page inside the inherited shared mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                page5_ref.as_ptr(),
                ptr.add(5 * PAGE as usize),
                PAGE as usize,
            )
        };
        0
    })?;
    c.eq(
        "shared: the child reads the file's bytes and stores a page (exit code)",
        code,
        0,
    );
    c.bytes(
        "shared: the parent's mapping sees the child's page",
        5 * PAGE,
        &ms.read_at(5 * PAGE as usize, PAGE as usize),
        &page5,
    );
    let got =
        sys::pread(&f, 5 * PAGE, PAGE as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes(
        "shared: pread sees the child's page",
        5 * PAGE,
        &got,
        &page5,
    );
    let mp = Mapping::private(&f, 0, size as usize, true).context("mmap MAP_PRIVATE")?;
    c.touch(
        "private: before the fork: 7 pages",
        mp.ptr().wrapping_add(7 * PAGE as usize),
        want[(7 * PAGE) as usize],
    );
    let page7 = fs.seeded("k", 7 * PAGE, PAGE, &sp)?;
    let (pptr, page7_ref) = (mp.ptr(), &page7);
    let code = in_child(|| {
        // SAFETY: one page inside the inherited private mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                page7_ref.as_ptr(),
                pptr.add(7 * PAGE as usize),
                PAGE as usize,
            )
        };
        0
    })?;
    c.eq("private: the child stores a page (exit code)", code, 0);
    c.bytes(
        "private: the parent does not see the child's store",
        7 * PAGE,
        &mp.read_at(7 * PAGE as usize, PAGE as usize),
        &want[(7 * PAGE) as usize..(8 * PAGE) as usize],
    );
    let got =
        sys::pread(&f, 7 * PAGE, PAGE as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes(
        "private: nor does the file",
        7 * PAGE,
        &got,
        &want[(7 * PAGE) as usize..(8 * PAGE) as usize],
    );
    ctx.verify(fs.ranges("k", 0, 5 * PAGE, Some(&sk))?);
    ctx.verify(fs.ranges("k", 5 * PAGE, PAGE, Some(&sc))?);
    ctx.verify(fs.ranges("k", 6 * PAGE, size - 6 * PAGE, Some(&sk))?);
    drop((ms, mp, f));
    fs.stop()?;
    Ok(c.outcome())
}

/// One run of everything observable about the read files with `ops`: labelled results.
fn battery(ctx: &Ctx<'_>, ops: &str, c: &mut Checks) -> Result<Vec<(String, String)>> {
    let fs = start_read(ctx, ops)?;
    let mut out = Vec::new();
    for (i, rel) in ["simple", "pmd", "il"].into_iter().enumerate() {
        let map = fs.map(rel)?.clone();
        let f = sys::open(&fs.path(rel), false)
            .map_err(|e| anyhow::anyhow!("{ops}: open {rel}: errno {e}"))?;
        let m = map_file(
            &f,
            map.mapped_size().max(page_up(map.file_size)),
            false,
            i % 2 == 1,
        )?;
        let offs = sample_offsets(&map, 32, 100 + i as u64);
        let bytes: Vec<u8> = offs.iter().map(|&o| m.bytes()[o as usize]).collect();
        let want: Vec<u8> = offs
            .iter()
            .map(|&o| fs.expected(rel, o, 1).map(|v| v[0]))
            .collect::<Result<_>>()?;
        c.check(
            bytes == want,
            format!("{ops}: {rel}: {} sampled bytes match the model", offs.len()),
        );
        out.push((format!("{rel}: mapping samples"), format!("{bytes:02x?}")));
        for &o in &boundaries(&map) {
            let r = sys::pread(&f, o.saturating_sub(64), 128);
            out.push((format!("{rel}: pread {o:#x}"), format!("{r:02x?}")));
        }
        let r = sys::pread_once(&f, map.file_size - 10, 100).map(|v| v.len());
        out.push((format!("{rel}: pread across EOF"), format!("{r:?}")));
        let eof = page_up(map.file_size);
        if eof < map.mapped_size() {
            let a = sys::probe_read(m.ptr().wrapping_add(eof as usize))?;
            out.push((format!("{rel}: touch past the EOF page"), a.to_string()));
        }
    }
    let s = fs.stats()?;
    for rel in ["simple", "pmd", "il"] {
        out.push((format!("GET_FMAP {rel}"), s.fmap(rel)?.to_string()));
    }
    for slot in fs.spec.slots.keys() {
        out.push((
            format!("GET_DAXDEV slot {slot}"),
            s.daxdev(*slot)?.to_string(),
        ));
    }
    fs.stop()?;
    Ok(out)
}

fn differential(ctx: &mut Ctx<'_>, other: &str) -> Result<Outcome> {
    let mut c = Checks::new();
    let a = battery(ctx, "famfs", &mut c)?;
    let b = battery(ctx, other, &mut c)?;
    c.eq(
        format!("famfs and {other}: as many results"),
        a.len(),
        b.len(),
    );
    let mut diffs = Vec::new();
    for ((la, ra), (_, rb)) in a.iter().zip(&b) {
        if ra != rb {
            diffs.push(format!("{la}: famfs {ra} / {other} {rb}"));
        }
    }
    c.check(
        diffs.is_empty(),
        format!(
            "famfs and {other} agree on {} results{}",
            a.len(),
            if diffs.is_empty() {
                String::new()
            } else {
                format!(": {}", diffs.join("; "))
            }
        ),
    );
    Ok(c.outcome())
}
