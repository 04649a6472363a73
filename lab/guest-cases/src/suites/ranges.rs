//! Hostile `evil_oob` ops against the declared ranges (kernels/famfs-bpf, patch 11): a parse
//! that declares no range (`open.parse_no_ranges`), and an iomap_begin whose mapping runs on
//! past the end of a chunk into the device bytes of the strip's next run
//! (`security.evil_chunk_overrun`).

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::system::sys::{self, Kmsg};
use crate::Outcome;
use anyhow::{Context, Result};
use lab_suite::expect::{
    interleaved_map, simple_map, AreaAlloc, Stripe, CANARY_AREA, MIB, READ_AREA,
};
use std::time::Duration;

const CHUNK: u64 = 2 * MIB;
/// The reads and writes that cross a chunk end: half before it, half after.
const ACROSS: u64 = 64 << 10;

/// `evil_oob --evil no-ranges`: the parse sets the slot and the size like famfs but declares
/// no range. The kernel refuses it right after the parse: EINVAL, "declared no ranges for
/// nodeid N", no GET_DAXDEV; nothing is cached, so the next open fetches and fails again.
pub fn parse_no_ranges(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    parse_refused(ctx, "no-ranges", "declared no ranges for nodeid")
}

/// `evil_oob --evil no-size`: the parse declares the slot and the ranges but never sets the
/// file size: refused alike, "did not set the size of nodeid N".
pub fn parse_no_size(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    parse_refused(ctx, "no-size", "did not set the size of nodeid")
}

/// An `evil_oob` parse `flavour` the kernel must refuse after the parse: EINVAL on every
/// open (each fetches again), no GET_DAXDEV, and a log line `{log} N` naming the ops.
fn parse_refused(ctx: &mut Ctx<'_>, flavour: &str, log: &str) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut spec = Spec::new("evil_oob", ctx.slots(1)?).file("f", map);
    spec.args = vec!["--evil".into(), flavour.into()];
    let fs = Famfs::start(ctx, spec)?;
    let ino = std::fs::metadata(fs.path("f"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .context("stat f")?;
    sys::ratelimit_quiet();
    let mut kmsg = Kmsg::open()?;
    for (n, what) in [(1u64, "first open"), (2, "second open")] {
        c.errno(
            format!("{what}: a parse of flavour {flavour}"),
            &sys::open(&fs.path("f"), false),
            libc::EINVAL,
        );
        let s = fs.stats()?;
        c.eq(format!("{what}: GET_FMAP for f (in all)"), s.fmap("f")?, n);
        c.eq(
            format!("{what}: GET_DAXDEV in all (the parse is refused first)"),
            s.daxdev_total()?,
            0,
        );
    }
    let want = format!("{log} {ino}");
    match kmsg.wait_for(&want, Duration::from_secs(3)) {
        Some(l) => c.check(
            l.contains("\"evil_oob\""),
            format!("the kernel log names the ops: {l}"),
        ),
        None => c.check(
            false,
            format!(
                "a kernel log line containing {want:?}: {:?}",
                kmsg.lines()
                    .iter()
                    .filter(|l| l.contains("dax_fmap"))
                    .collect::<Vec<_>>()
            ),
        ),
    };
    fs.stop()?;
    Ok(c.outcome())
}

/// `evil_oob --evil chunk-overrun` on an interleaved file with two runs per strip (8 MiB in
/// 2 MiB chunks over 2 strips: chunk k is run k / 2 of strip k % 2): iomap_begin returns the
/// requested length, not cut at the chunk's end. Inside a chunk that is the right mapping;
/// across a chunk's end its tail is the device bytes of the strip's next run, which hold
/// another file offset (still inside the strip's declared range). A read or write across a
/// chunk end must fail with EIO and "outside the ranges declared for the offset", and the
/// next run's bytes stay the fill.
pub fn chunk_overrun(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let slots = ctx.slots(2)?;
    let n = slots.len() as u32;
    let mut a = AreaAlloc::new(READ_AREA);
    let map = interleaved_map(
        &mut a,
        &[Stripe {
            chunk: CHUNK,
            nbytes: 8 * MIB,
            slots: &[0, 1 % n],
        }],
        8 * MIB,
    )
    .context("read area full")?;
    let mut spec = Spec::new("evil_oob", slots.clone()).file("il", map.clone());
    spec.args = vec!["--evil".into(), "chunk-overrun".into()];
    let fs = Famfs::start(ctx, spec)?;
    sys::ratelimit_quiet();
    let mut kmsg = Kmsg::open()?;
    let f = sys::open(&fs.path("il"), true).map_err(|e| {
        anyhow::anyhow!(
            "open il: {} (the flavour parses as famfs)",
            sys::errno_name(e)
        )
    })?;
    // The control: inside a chunk the mapping is right.
    let inside = sys::pread(&f, CHUNK / 2, ACROSS as usize);
    match &inside {
        Ok(got) => {
            c.bytes(
                "pread 64 KiB inside chunk 0 (the right mapping)",
                CHUNK / 2,
                got,
                &fs.expected("il", CHUNK / 2, ACROSS)?,
            );
        }
        Err(e) => c.fail(format!(
            "pread 64 KiB inside chunk 0: {}",
            sys::errno_name(*e)
        )),
    }
    // Chunk 0 (strip 0, run 0) ends at 2 MiB; strip 0's device bytes go on with run 1
    // (file offset 4 MiB). Chunk 1 (strip 1, run 0) ends at 4 MiB; strip 1 goes on with
    // run 1 (file offset 6 MiB).
    for (k, next) in [(0u64, 2 * CHUNK), (1, 3 * CHUNK)] {
        let end = (k + 1) * CHUNK;
        let at = end - ACROSS / 2;
        let what =
            format!("across the end of chunk {k} ({end:#x}; the strip's next run holds {next:#x})");
        let next_bytes = fs.expected("il", next, ACROSS / 2)?;
        let got = sys::pread(&f, at, ACROSS as usize);
        let seen = match &got {
            Ok(b) if b.len() as u64 == ACROSS && b[(ACROSS / 2) as usize..] == next_bytes[..] => {
                format!(
                    "read {} bytes, the second half the next run's (file {next:#x})",
                    b.len()
                )
            }
            Ok(b) => format!("read {} bytes", b.len()),
            Err(e) => sys::errno_name(*e),
        };
        c.check(
            got == Err(libc::EIO),
            format!("pread 64 KiB {what} fails with EIO: {seen}"),
        );
        // flipped bytes: a write that wrongly goes through shows on the device
        let flipped: Vec<u8> = fs.expected("il", at, ACROSS)?.iter().map(|b| !b).collect();
        let wrote = sys::pwrite_once(&f, at, &flipped);
        c.errno(format!("pwrite 64 KiB {what}"), &wrote, libc::EIO);
        let before_end = sys::pread(&f, at, (ACROSS / 2) as usize);
        let next_run = sys::pread(&f, next, (ACROSS / 2) as usize);
        for (label, off, r) in [
            ("the end of the chunk", at, &before_end),
            ("the start of the strip's next run", next, &next_run),
        ] {
            match r {
                Ok(got) => {
                    c.bytes(
                        format!("{what}: {label} unchanged (pread inside the chunk)"),
                        off,
                        got,
                        &fs.expected("il", off, ACROSS / 2)?,
                    );
                }
                Err(e) => c.fail(format!(
                    "{what}: pread of {label} at {off:#x}: {}",
                    sys::errno_name(*e)
                )),
            }
        }
        if wrote.is_ok() {
            // Undo it the same way, so that later cases read the fill there: the overrun put
            // the write's second half on the next run's device bytes, so those get the next
            // run's fill back.
            let mut back = fs.expected("il", at, ACROSS / 2)?;
            back.extend_from_slice(&next_bytes);
            let undone = sys::pwrite_once(&f, at, &back);
            c.note(format!(
                "the wrong write was undone (the chunk's end and the next run's start written back through the same mapping): {undone:?}"
            ));
        }
    }
    let log = "outside the ranges declared for the offset";
    match kmsg.wait_for(log, Duration::from_secs(3)) {
        Some(l) => c.check(
            l.contains("evil_oob"),
            format!("the kernel log names the ops: {l}"),
        ),
        None => c.check(false, format!("a kernel log line containing {log:?}")),
    };
    drop(f);
    fs.stop()?;
    // The host checks every byte of the file (both runs of both strips) and the canaries.
    let mut v = fs_ranges_of(ctx, &map)?;
    for d in ctx.dax().into_iter().take(slots.len()) {
        v.extend(lab_suite::expect::dax_fill_ranges(
            d,
            CANARY_AREA.start,
            CANARY_AREA.end - CANARY_AREA.start,
        )?);
    }
    ctx.verify(v);
    Ok(c.outcome())
}

/// The backing ranges of every byte of `map` that must still hold the fill.
fn fs_ranges_of(
    ctx: &Ctx<'_>,
    map: &famfs_fmap::FileMap,
) -> Result<Vec<lab_suite::verify::VerifyRange>> {
    let mut s = lab_suite::expect::Slots::default();
    for (i, t) in ctx.slots(2)? {
        if let crate::harness::famfs::Target::Dax(n) = t {
            s.0.insert(i, ctx.map.dax(&n).context("no such dax device")?.clone());
        }
    }
    Ok(lab_suite::expect::verify_ranges(
        map,
        &s,
        0,
        map.file_size,
        None,
    )?)
}
