//! `shared.poison`: a media error in the device both guests map. Each guest's QEMU models its
//! own head of the shared device (one cxl-type3 per QEMU over the same backing file), with its
//! own poison list; a media error in the shared memory is on every head's list. So the host
//! puts the same DPA on each guest's list in turn (a host call per guest), and each guest must
//! find, from its own poison list and device map alone, the same page of the same file, and
//! its memory-failure path must kill exactly the process mapping that page.
//!
//! Guest 0 (`poison_first`) picks a page of `data`, has the poison injected at the page's DPA
//! through its head and consumes it; it shares the DPA. Guest 1 (`poison_peer`) has the same
//! DPA injected through its head, translates its poison record (HPA) back to a file page with
//! its own fmap model and device map, and consumes that page. Under TCG the emulated memory
//! does not trap on poisoned bytes (ARCHITECTURE.md, "Fault injection"), so "consumes" is the
//! guest's memory-failure path driven for the page its poison list names (MADV_HWPOISON).

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::suites::faults::{
    consumed, kernel_memdev, page_piece, phys_of, poison_list_of, PoisonRecord,
};
use crate::system::host;
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Access, Kmsg};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_agent_proto::HostCall;
use lab_suite::expect::Piece;
use std::fs::File;

const PAGE: u64 = 4096;
/// The page of `data` guest 0 poisons.
const FIRST_OFF: u64 = 5 * PAGE;
/// Poison this far into the page, this long (the device's 64-byte granule).
const IN_PAGE: u64 = 0x40;
const POISON_LEN: u64 = 64;

/// Guest 0: poison a page of `file` through its head, consume it, share the DPA.
pub fn first(ctx: &mut Ctx<'_>, spec: Spec, file: &str) -> Result<Outcome> {
    let mut c = Checks::new();
    let fs = Famfs::start(ctx, spec)?;
    let piece = page_piece(&fs, file, FIRST_OFF)?;
    let dpa = piece.backing_off + IN_PAGE;
    inject(&mut c, &piece.memdev, dpa, "guest 0's head")?;
    c.note(format!(
        "{file}+{FIRST_OFF:#x} -> {}+{:#x} -> {} DPA {dpa:#x}",
        piece.dax, piece.dax_off, piece.memdev
    ));
    let Some(rec) = record(&mut c, ctx, &piece.memdev, dpa)? else {
        return stop(c, fs);
    };
    consume(&mut c, ctx, &fs, file, FIRST_OFF, &piece, &rec)?;
    println!("SHARE: dpa={dpa:#x}");
    println!("SHARE: memdev={}", piece.memdev);
    stop(c, fs)
}

/// Guest 1: the DPA guest 0 shared, injected through this guest's head, must name the same
/// page of `file` here (found from the poison record alone) and kill the process mapping it.
pub fn peer(ctx: &mut Ctx<'_>, spec: Spec, file: &str, dpa: &str, memdev: &str) -> Result<Outcome> {
    let mut c = Checks::new();
    let dpa = u64::from_str_radix(dpa.trim_start_matches("0x"), 16)
        .with_context(|| format!("guest 0 shared dpa={dpa:?}, not a hex number"))?;
    let fs = Famfs::start(ctx, spec)?;
    inject(&mut c, memdev, dpa, "guest 1's head (the same media error)")?;
    let Some(rec) = record(&mut c, ctx, memdev, dpa)? else {
        return stop(c, fs);
    };
    let Some(hpa) = rec.hpa else {
        c.fail(format!(
            "the poison record {rec:?} names no HPA: DPA {dpa:#x} is in no region of this guest"
        ));
        return stop(c, fs);
    };
    let Some((off, piece)) = page_at(ctx, &fs, file, hpa & !(PAGE - 1))? else {
        c.fail(format!(
            "the poison record's HPA {hpa:#x} is in no page of {file} by this guest's fmap and device map"
        ));
        return stop(c, fs);
    };
    c.eq(
        format!(
            "the page guest 1's poison list names ({file}+{off:#x}) is the page guest 0 poisoned"
        ),
        off,
        FIRST_OFF,
    );
    consume(&mut c, ctx, &fs, file, off, &piece, &rec)?;
    stop(c, fs)
}

fn inject(c: &mut Checks, memdev: &str, dpa: u64, head: &str) -> Result<()> {
    let note = host::done(&HostCall::InjectPoison {
        device: memdev.into(),
        dpa,
        length: POISON_LEN,
    })?;
    c.note(format!("host, through {head}: {note}"));
    Ok(())
}

/// This guest's poison-list record of `memdev` at `dpa`, or a failure noted.
fn record(c: &mut Checks, ctx: &Ctx<'_>, memdev: &str, dpa: u64) -> Result<Option<PoisonRecord>> {
    let kernel = kernel_memdev(ctx, memdev)?;
    let (records, lines) = poison_list_of(&kernel)?;
    let rec = records
        .into_iter()
        .find(|r| r.dpa == dpa && r.len == POISON_LEN);
    match &rec {
        Some(r) => c.pass(format!("cxl_poison tracepoint: {r:?}")),
        None => c.fail(format!(
            "{kernel}'s poison list has no record at DPA {dpa:#x} (+{POISON_LEN:#x}): {lines:?}"
        )),
    }
    Ok(rec)
}

/// The page of `file` whose bytes are at host physical address `page_hpa` here: its offset
/// and piece, by the fmap model and the device map.
fn page_at(ctx: &Ctx<'_>, fs: &Famfs, file: &str, page_hpa: u64) -> Result<Option<(u64, Piece)>> {
    let size = fs.map(file)?.file_size;
    for off in (0..size).step_by(PAGE as usize) {
        let p = page_piece(fs, file, off)?;
        let dax = ctx
            .map
            .dax(&p.dax)
            .with_context(|| format!("no {} in the device map", p.dax))?;
        if dax.hpa + p.dax_off == page_hpa {
            return Ok(Some((off, p)));
        }
    }
    Ok(None)
}

/// Maps `file`, checks that the page at `off` is the one the record names, drives the
/// memory-failure path for it and checks who got what: SIGBUS BUS_MCEERR_AR at that page, the
/// kernel log's line for its dax offset, the neighbours' bytes, the host's backing bytes.
fn consume(
    c: &mut Checks,
    ctx: &mut Ctx<'_>,
    fs: &Famfs,
    file: &str,
    off: u64,
    piece: &Piece,
    rec: &PoisonRecord,
) -> Result<()> {
    let size = fs.map(file)?.file_size;
    if off + 2 * PAGE > size {
        bail!("{file}+{off:#x}: the case needs the page after it too ({file} is {size:#x} bytes)");
    }
    let f = File::open(fs.path(file)).with_context(|| format!("open {file}"))?;
    let m = Mapping::shared(&f, 0, size as usize, false).with_context(|| format!("mmap {file}"))?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let page = m.ptr().wrapping_add(off as usize);
    sys::touch(page)?;
    let hpa = phys_of(page)?;
    c.eq(
        format!("{file}+{off:#x} is mapped at the poison record's page"),
        Some(hpa + IN_PAGE),
        rec.hpa,
    );
    let want = fs.expected(file, off, PAGE)?;
    let mut kmsg = Kmsg::open()?;
    sys::ratelimit_quiet();
    consumed(c, &mut kmsg, page, piece)?;
    let next = off + PAGE;
    c.access(
        format!("{file}: a fault on the next page"),
        sys::probe_read(m.ptr().wrapping_add(next as usize))?,
        Access::Ok(fs.expected(file, next, 1)?[0]),
    );
    let host_bytes = host::backing(&piece.memdev, piece.backing_off, PAGE)?;
    c.bytes(
        format!("host: {}'s backing file at the poisoned page", piece.memdev),
        0,
        &host_bytes,
        &want,
    );
    ctx.verify(fs.ranges(file, 0, size, None)?);
    Ok(())
}

fn stop(mut c: Checks, fs: Famfs) -> Result<Outcome> {
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    Ok(c.outcome())
}
