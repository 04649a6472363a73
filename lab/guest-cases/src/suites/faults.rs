//! device_missing cases with faults injected by the host through QMP mid-run (host calls,
//! `crate::host`): CXL poison under a mapped file, the device's poison list, an uncorrectable
//! RAS error, a type-3 device hot-removed under a dirty mapping. ARCHITECTURE.md ("Fault
//! injection") says what each injection does in QEMU 10 + Linux 7.3 under TCG; where the
//! emulated memory does not trap on poisoned bytes, the case drives the guest's memory-failure
//! path for the page the poison list names and says so.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec, Target};
use crate::suites::devmissing::{hwpoison_in_child, Touch};
use crate::system::host;
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Access, Kmsg, Trace};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_agent_proto::HostCall;
use lab_suite::devices::{DaxDevice, DeviceMap};
use lab_suite::expect::{simple_map, AreaAlloc, Piece, MIB, READ_AREA, WRITE_AREA};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const PAGE: u64 = 4096;

/// One record of a memdev's poison list as the `cxl_poison` tracepoint gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonRecord {
    pub memdev: String,
    pub dpa: u64,
    pub len: u64,
    /// None when the DPA is in no region (the kernel prints all ones).
    pub hpa: Option<u64>,
    pub region: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    // An empty value ("region= region_uuid=...") is an empty field, not the next one.
    line[at..].split(' ').next()
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// The `cxl_poison` records in trace lines.
pub fn poison_records(lines: &[String]) -> Vec<PoisonRecord> {
    lines
        .iter()
        .filter(|l| l.contains("cxl_poison:"))
        .filter_map(|l| {
            let hpa = hex(field(l, "hpa")?)?;
            Some(PoisonRecord {
                memdev: field(l, "memdev")?.to_string(),
                dpa: hex(field(l, "dpa")?)?,
                len: hex(field(l, "dpa_length")?)?,
                hpa: (hpa != u64::MAX).then_some(hpa),
                region: field(l, "region").unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The poison list of kernel memdev `memdev` (`mem0`): its sysfs trigger makes the driver
/// read the device's list (Get Poison List) and trace every record (`cxl/cxl_poison`).
pub(crate) fn poison_list_of(memdev: &str) -> Result<(Vec<PoisonRecord>, Vec<String>)> {
    let trace = Trace::new(&["cxl/cxl_poison"])?
        .context("this kernel has no cxl/cxl_poison tracepoint (CONFIG_CXL_BUS with tracing)")?;
    let trigger = format!("/sys/bus/cxl/devices/{memdev}/trigger_poison_list");
    std::fs::write(&trigger, "1").with_context(|| format!("writing 1 to {trigger}"))?;
    let lines = trace.lines()?;
    Ok((poison_records(&lines), lines))
}

/// The physical address of the page mapped at `addr` in this process (`/proc/self/pagemap`,
/// as root).
pub(crate) fn phys_of(addr: *const u8) -> Result<u64> {
    let f = std::fs::File::open("/proc/self/pagemap").context("opening /proc/self/pagemap")?;
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, (addr as u64 / PAGE) * 8)
        .context("reading /proc/self/pagemap")?;
    let v = u64::from_le_bytes(e);
    if v >> 63 != 1 {
        bail!("{addr:p} is not mapped (pagemap {v:#x})");
    }
    Ok((v & ((1 << 55) - 1)) * PAGE)
}

/// The kernel name (`mem0`) of topology device `id`.
pub(crate) fn kernel_memdev(ctx: &Ctx<'_>, id: &str) -> Result<String> {
    Ok(ctx
        .map
        .memdev(id)
        .with_context(|| format!("no memdev {id} in the device map"))?
        .name
        .clone())
}

/// Slot 0: the last dax device (on two-devices the interleaved one, so the DPA of a file
/// offset goes through the interleave); slot 1: the first, when it is another device.
fn fault_slots(ctx: &Ctx<'_>) -> Result<(BTreeMap<u32, Target>, u32)> {
    let d = ctx.dax();
    let (Some(first), Some(last)) = (d.first(), d.last()) else {
        bail!("the device map has no dax device");
    };
    let mut slots = BTreeMap::new();
    slots.insert(0, Target::Dax(last.name.clone()));
    if first.name == last.name {
        return Ok((slots, 0));
    }
    slots.insert(1, Target::Dax(first.name.clone()));
    Ok((slots, 1))
}

/// The one piece of a page of `rel` (a page never spans an interleave chunk here).
pub(crate) fn page_piece(fs: &Famfs, rel: &str, off: u64) -> Result<Piece> {
    let p = fs.pieces(rel, off, PAGE)?;
    match p.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("{rel}+{off:#x}: a page in {} pieces: {p:?}", p.len()),
    }
}

/// The file `s` on the device the fault did not touch: it opens and reads its bytes, and the
/// host checks its whole range after the case.
fn other_device_intact(c: &mut Checks, ctx: &mut Ctx<'_>, fs: &Famfs) -> Result<()> {
    match sys::open(&fs.path("s"), false).and_then(|s| sys::pread(&s, 0, 8192)) {
        Ok(got) => {
            c.bytes(
                "s (another device): open and pread",
                0,
                &got,
                &fs.expected("s", 0, 8192)?,
            );
        }
        Err(e) => c.fail(format!("s (another device): {}", sys::errno_name(e))),
    }
    ctx.verify(fs.ranges("s", 0, 2 * MIB, None)?);
    Ok(())
}

/// Drives the memory-failure path for the mapped page at `page` (a child that maps it
/// consumes it) and checks what the series does: SIGBUS BUS_MCEERR_AR at exactly that page,
/// and its log line naming the page's dax offset (`piece`).
pub(crate) fn consumed(
    c: &mut Checks,
    kmsg: &mut Kmsg,
    page: *const u8,
    piece: &Piece,
) -> Result<()> {
    let seen = hwpoison_in_child(page as usize, Touch::Read)?.said;
    c.check(
        seen == "SIGBUS BUS_MCEERR_AR at the page",
        format!("the process that consumed it: SIGBUS BUS_MCEERR_AR at {page:p} ({seen})"),
    );
    let at = format!("memory failure at device offset {:#x}:", piece.dax_off);
    match kmsg.wait_for(
        "dax_fmap: memory failure at device offset",
        Duration::from_secs(5),
    ) {
        Some(l) => {
            c.check(
                l.contains(&at),
                format!("kernel log {l:?} names {}+{:#x}", piece.dax, piece.dax_off),
            );
        }
        None => c.fail("no \"dax_fmap: memory failure at device offset\" in the kernel log"),
    }
    Ok(())
}

/// Poison injected by the host (cxl-inject-poison) under one mapped page of a file: the
/// guest's poison list names the page (HPA = the page's PFN, DPA = the fmap model's through
/// the device map); the load does not trap under TCG (noted); the memory-failure path driven
/// for that page gives SIGBUS BUS_MCEERR_AR at exactly its address; other pages, the other
/// file and the host's backing bytes keep their bytes.
pub fn poison_read_mapped(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let (slots, other) = fault_slots(ctx)?;
    let mut a = AreaAlloc::new(READ_AREA);
    let p = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let q = simple_map(&mut a, &[(other, 2 * MIB)], 2 * MIB).context("read area full")?;
    let fs = Famfs::start(ctx, Spec::new(&ctx.ops()?, slots).file("p", p).file("q", q))?;
    let f = sys::open(&fs.path("p"), false).map_err(|e| anyhow::anyhow!("open p: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, false).context("mmap p")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let off = 5 * PAGE;
    let page = m.ptr().wrapping_add(off as usize);
    let piece = page_piece(&fs, "p", off)?;
    let dax: &DaxDevice = ctx
        .map
        .dax(&piece.dax)
        .with_context(|| format!("no {} in the device map", piece.dax))?;
    let memdev = kernel_memdev(ctx, &piece.memdev)?;
    let want = fs.expected("p", off, PAGE)?;
    sys::touch(page)?;
    let hpa = phys_of(page)?;
    c.eq(
        format!(
            "p+{off:#x} is mapped at the HPA the device map gives {}+{:#x}",
            piece.dax, piece.dax_off
        ),
        hpa,
        dax.hpa + piece.dax_off,
    );
    // 64 bytes (the device's poison granule) inside the page.
    let (dpa, len) = (piece.backing_off + 0x40, 64);
    let note = host::done(&HostCall::InjectPoison {
        device: piece.memdev.clone(),
        dpa,
        length: len,
    })?;
    c.note(format!(
        "host: {note} (file p+{:#x} -> {}+{:#x} -> {} DPA {dpa:#x})",
        off + 0x40,
        piece.dax,
        piece.dax_off + 0x40,
        piece.memdev
    ));
    let (records, lines) = poison_list_of(&memdev)?;
    let rec = records
        .iter()
        .find(|r| r.dpa == dpa && r.len == len)
        .cloned();
    let Some(rec) = rec else {
        c.fail(format!(
            "{memdev}'s poison list has no record at DPA {dpa:#x} (+{len:#x}): {lines:?}"
        ));
        return Ok(c.outcome());
    };
    c.pass(format!("cxl_poison tracepoint: {rec:?}"));
    c.eq(
        "the poison list's HPA is the mapped page's byte",
        rec.hpa,
        Some(hpa + 0x40),
    );
    match sys::probe_read(page.wrapping_add(0x40))? {
        Access::Ok(b) => {
            c.note(format!(
                "the load of the poisoned bytes did not trap (QEMU's memory backend knows no poison under TCG): it read {b:#04x}; the guest's memory-failure path is driven below for the page the poison list names (MADV_HWPOISON), not by the hardware"
            ));
            c.eq("the poisoned bytes still read their data", b, want[0x40]);
        }
        a => c.note(format!("the load of the poisoned bytes: {a}")),
    }
    let mut kmsg = Kmsg::open()?;
    sys::ratelimit_quiet();
    let named = rec.hpa.map(|h| h & !(PAGE - 1));
    c.eq(
        "the page MADV_HWPOISON hits is the one the poison list names",
        named,
        Some(hpa),
    );
    consumed(&mut c, &mut kmsg, page, &piece)?;
    if let Some(l) = kmsg.find(&format!("{:#x}", hpa / PAGE)) {
        c.note(format!("kernel log: {l}"));
    }
    let other_page = 6 * PAGE;
    c.access(
        "p: a fault on another page",
        sys::probe_read(m.ptr().wrapping_add(other_page as usize))?,
        Access::Ok(fs.expected("p", other_page, 1)?[0]),
    );
    match sys::pread(&f, 4 * PAGE, 3 * PAGE as usize) {
        Ok(got) => {
            c.bytes(
                "p: pread of the poisoned page and its neighbours (no bad-blocks list: the data is there)",
                4 * PAGE,
                &got,
                &fs.expected("p", 4 * PAGE, 3 * PAGE)?,
            );
        }
        Err(e) => c.fail(format!(
            "p: pread of the poisoned page: {}",
            sys::errno_name(e)
        )),
    }
    match sys::open(&fs.path("q"), false).and_then(|q| sys::pread(&q, 0, 8192)) {
        Ok(got) => {
            c.bytes("q: open and pread", 0, &got, &fs.expected("q", 0, 8192)?);
        }
        Err(e) => c.fail(format!("q: {}", sys::errno_name(e))),
    }
    let host_bytes = host::backing(&piece.memdev, piece.backing_off, PAGE)?;
    c.bytes(
        format!("host: {}'s backing file at the poisoned page", piece.memdev),
        0,
        &host_bytes,
        &want,
    );
    ctx.verify(fs.ranges("p", 0, 2 * MIB, None)?);
    ctx.verify(fs.ranges("q", 0, 2 * MIB, None)?);
    drop(m);
    drop(f);
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    Ok(c.outcome())
}

/// The host injects poison (64 bytes and a page) into every dax device's bytes and a
/// general-media event: the guest's poison list (sysfs trigger, `cxl_poison` tracepoint)
/// reports each record at the DPA injected and translates it to the HPA the device map gives
/// (interleave included); the event arrives as a `cxl_general_media` trace record.
pub fn poison_list(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut want: Vec<(String, u64, u64, u64)> = Vec::new();
    for (i, d) in ctx.dax().into_iter().enumerate() {
        for (k, len) in [(0u64, 64u64), (1, PAGE)] {
            let off = READ_AREA.end - 2 * MIB + (i as u64 * 4 + k * 2 + 1) * PAGE;
            let b = d
                .backing_of(off)
                .with_context(|| format!("{}+{off:#x} is outside it", d.name))?;
            let note = host::done(&HostCall::InjectPoison {
                device: b.memdev.clone(),
                dpa: b.offset,
                length: len,
            })?;
            c.note(format!("host: {note} ({}+{off:#x})", d.name));
            want.push((b.memdev, b.offset, len, d.hpa + off));
        }
    }
    let mut lists = BTreeMap::new();
    for (id, dpa, len, hpa) in &want {
        let name = kernel_memdev(ctx, id)?;
        if !lists.contains_key(&name) {
            lists.insert(name.clone(), poison_list_of(&name)?);
        }
        let (records, lines) = &lists[&name];
        match records.iter().find(|r| r.dpa == *dpa && r.len == *len) {
            Some(r) => {
                c.eq(
                    format!(
                        "{name} ({id}) DPA {dpa:#x}+{len:#x}: HPA (region {})",
                        r.region
                    ),
                    r.hpa,
                    Some(*hpa),
                );
            }
            None => c.fail(format!(
                "{name} ({id}): no poison record at DPA {dpa:#x}+{len:#x}: {lines:?}"
            )),
        }
    }
    let (ok, out) = sys::run("cxl", &["list", "-M", "--media-errors"]);
    c.note(if ok {
        format!("cxl list -M --media-errors: {}", out.trim())
    } else {
        format!(
            "this guest's cxl has no --media-errors ({}): the sysfs trigger and the cxl_poison tracepoint are the path",
            out.lines().next().unwrap_or("").trim()
        )
    });
    // A general-media event (failure log) at the first dax device's page.
    let d = ctx.dax()[0];
    let off = READ_AREA.end - MIB;
    let b = d.backing_of(off).context("outside the device")?;
    let trace =
        Trace::new(&["cxl/cxl_general_media"])?.context("no cxl/cxl_general_media tracepoint")?;
    let note = host::done(&HostCall::InjectGeneralMedia {
        device: b.memdev.clone(),
        dpa: b.offset,
    })?;
    c.note(format!("host: {note}"));
    let dpa_field = format!("dpa={:x}", b.offset);
    let mut got = None;
    for _ in 0..100 {
        got = trace.lines()?.into_iter().find(|l| l.contains(&dpa_field));
        if got.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match got {
        Some(l) => {
            let hpa = field(&l, "hpa").and_then(hex);
            c.eq(
                format!(
                    "cxl_general_media record for {} DPA {:#x}: HPA",
                    b.memdev, b.offset
                ),
                hpa,
                Some(d.hpa + off),
            );
            c.note(format!("cxl_general_media: {l}"));
        }
        None => c.fail(format!(
            "no cxl_general_media trace record with {dpa_field} within 10 s"
        )),
    }
    Ok(c.outcome())
}

/// What a file on a device looks like from user space right now.
fn file_state(fs: &Famfs, f: &std::fs::File, m: &Mapping, rel: &str) -> Result<String> {
    let load = sys::probe_read(m.ptr())?;
    let pread = match sys::pread(f, 0, 16) {
        Ok(b) => format!("{} bytes", b.len()),
        Err(e) => sys::errno_name(e),
    };
    let open = match sys::open(&fs.path(rel), false) {
        Ok(_) => "ok".to_string(),
        Err(e) => sys::errno_name(e),
    };
    Ok(format!(
        "{rel}: mmap load {load}, pread {pread}, open {open}"
    ))
}

/// An uncorrectable RAS error injected by the host (cxl-inject-uncorrectable-errors: RAS
/// status bits, then PCIe AER to the root port) on the device under a mounted, mapped file:
/// the kernel's CXL RAS path runs (the `cxl_aer_uncorrectable_error` tracepoint), the case
/// does not hang, a file on another device keeps working; what the file system does is
/// recorded.
pub fn uncorrectable_error(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    // The first device: with two, the last one is left whole for device_removed_mapped.
    let (id, vdax, other) = on_device(ctx, false)?;
    let (last, _, _) = victim(ctx)?;
    let name = kernel_memdev(ctx, &id)?;
    let mut slots = BTreeMap::new();
    slots.insert(0, Target::Dax(vdax.name.clone()));
    let mut r = AreaAlloc::new(READ_AREA);
    let u = simple_map(&mut r, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, slots).file("u", u);
    if let Some(o) = other {
        spec.slots.insert(1, Target::Dax(o.name.clone()));
        let s = simple_map(&mut r, &[(1, 2 * MIB)], 2 * MIB).context("read area full")?;
        spec = spec.file("s", s);
    }
    let fs = Famfs::start(ctx, spec)?;
    let f = sys::open(&fs.path("u"), false).map_err(|e| anyhow::anyhow!("open u: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, false).context("mmap u")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    c.touch(
        "u: page 0 before the error",
        m.ptr(),
        fs.expected("u", 0, 1)?[0],
    );
    let pci = pci_of(&name)?;
    let (before, after) = unmask_internal_errors(&pci)?;
    c.note(format!(
        "{pci} ({name}): AER uncorrectable mask {before:#010x} -> {after:#010x}: Linux leaves Uncorrectable Internal Errors masked on a CXL endpoint (the PCIe default), and QEMU's injection (an internal error) is then only latched in the status register, never signalled; the case unmasks it"
    ));
    let (rb, ra) = unmask_cxl_ras(&pci)?;
    c.note(format!(
        "{pci}: CXL RAS uncorrectable error mask {rb:#x} -> {ra:#x}: QEMU drops an injected error its RAS mask masks, and this kernel left it masked (QEMU's reset value); the case clears it through the BAR"
    ));
    let trace = Trace::new(&["cxl/cxl_aer_uncorrectable_error"])?
        .context("no cxl/cxl_aer_uncorrectable_error tracepoint")?;
    let mut kmsg = Kmsg::open()?;
    let note = host::done(&HostCall::InjectUncorrectable {
        device: id.clone(),
        errors: vec!["mem-data-ecc".into()],
    })?;
    c.note(format!("host: {note}"));
    let mut rec = None;
    for _ in 0..150 {
        rec = trace
            .lines()?
            .into_iter()
            .find(|l| l.contains(&format!("memdev={name}")));
        if rec.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match &rec {
        Some(l) => c.pass(format!("the CXL RAS path ran: {l}")),
        None => c.fail(format!(
            "no cxl_aer_uncorrectable_error record for {name} within 15 s; kernel log: {:?}",
            kmsg.lines()
        )),
    }
    // Let the AER recovery finish (it may release the memdev's driver).
    std::thread::sleep(Duration::from_secs(3));
    for l in kmsg
        .lines()
        .iter()
        .filter(|l| {
            l.contains("AER") || l.contains("cxl") || l.contains(&name) || l.contains("dax_fmap")
        })
        .take(12)
    {
        c.note(format!("kernel log: {l}"));
    }
    let driver = std::path::Path::new(&format!("/sys/bus/cxl/devices/{name}/driver")).exists();
    c.note(format!(
        "{name} after the error: {}; /dev/{} {}",
        if driver {
            "still bound to cxl_mem"
        } else {
            "unbound from cxl_mem"
        },
        vdax.name,
        if std::path::Path::new(&format!("/dev/{}", vdax.name)).exists() {
            "exists"
        } else {
            "is gone"
        }
    ));
    let gone = !std::path::Path::new(&format!("/dev/{}", vdax.name)).exists();
    c.note(format!(
        "the file system: {}",
        file_state(&fs, &f, &m, "u")?
    ));
    if gone {
        // The AER recovery took the region: the file system must behave as for a removal.
        match kmsg.find("device slot 0 failed") {
            Some(l) => c.pass(format!("the holder was told: {l}")),
            None => c.fail(format!(
                "/dev/{} went away but the holder was not told (no \"device slot 0 failed\")",
                vdax.name
            )),
        }
        c.access(
            "u: mmap load after the error",
            sys::probe_read_here(m.ptr())?,
            Access::Signal(libc::SIGBUS),
        );
        c.errno(
            "u: pread after the error",
            &sys::pread(&f, 0, 16),
            libc::EIO,
        );
        c.errno(
            "u: open after the error",
            &sys::open(&fs.path("u"), false),
            libc::ENODEV,
        );
    }
    if other.is_some() {
        other_device_intact(&mut c, ctx, &fs)?;
    }
    drop(m);
    drop(f);
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    if gone && id == last {
        // The error took the region of the only device: rebuild it for device_removed_mapped.
        match rebuild(ctx, &name, vdax) {
            Ok(new) => {
                c.pass(format!(
                    "{name} rebound to cxl_mem and a region rebuilt on it: {} ({}, HPA {:#x})",
                    new.name, new.kernel_region, new.hpa
                ));
                std::fs::write(RESTORED, serde_json::to_string(&(&vdax.name, &new))?)
                    .with_context(|| format!("writing {RESTORED}"))?;
            }
            Err(e) => c.fail(format!("rebuilding {name}'s region after the error: {e:#}")),
        }
    }
    Ok(c.outcome())
}

/// The device the destructive cases take away: the topology's last one (on two-devices
/// `mem1`: `dax1.0` and the interleaved `dax2.0` go with it, `dax0.0` stays). Its dax devices
/// (only its own bytes) and a dax device it is no part of, if any.
fn victim<'a>(ctx: &Ctx<'a>) -> Result<(String, &'a DaxDevice, Option<&'a DaxDevice>)> {
    on_device(ctx, true)
}

/// [`victim`] with the first device of the topology (`last` false) or its last: the device's
/// own dax device, and one it is no part of that is still there (an earlier case may have
/// taken devices away).
fn on_device<'a>(
    ctx: &Ctx<'a>,
    last: bool,
) -> Result<(String, &'a DaxDevice, Option<&'a DaxDevice>)> {
    let mut ids: Vec<&str> = ctx.map.memdevs.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    let id = if last { ids.last() } else { ids.first() };
    let id = id.context("no memdev in the device map")?.to_string();
    let dax: Vec<&DaxDevice> = ctx
        .dax()
        .into_iter()
        .filter(|d| std::path::Path::new(&format!("/dev/{}", d.name)).exists())
        .collect();
    let only = dax
        .iter()
        .find(|d| d.targets.iter().all(|t| t.memdev == id))
        .with_context(|| format!("no dax device on {id} alone"))?;
    let other = dax
        .iter()
        .find(|d| d.targets.iter().all(|t| t.memdev != id))
        .copied();
    Ok((id, only, other))
}

/// Where uncorrectable_error leaves the dax device it rebuilt on the victim (its region is
/// new: another name and HPA than the device map's), for the cases after it in this boot.
const RESTORED: &str = "/run/famfs-lab/restored-dax.json";

/// The device map with the victim's dax device as uncorrectable_error rebuilt it, if it did.
fn current_map(ctx: &Ctx<'_>) -> Result<Option<DeviceMap>> {
    let Ok(text) = std::fs::read_to_string(RESTORED) else {
        return Ok(None);
    };
    let (old, new): (String, DaxDevice) =
        serde_json::from_str(&text).with_context(|| format!("parsing {RESTORED}"))?;
    let mut map = ctx.map.clone();
    map.dax.retain(|d| d.name != old && d.name != new.name);
    map.dax.push(new);
    Ok(Some(map))
}

/// The PCI device (`0000:0d:00.0`) of kernel memdev `name`.
fn pci_of(name: &str) -> Result<String> {
    let p = std::fs::canonicalize(format!("/sys/bus/cxl/devices/{name}"))
        .with_context(|| format!("resolving /sys/bus/cxl/devices/{name}"))?;
    Ok(p.parent()
        .and_then(|d| d.file_name())
        .context("memdev without a parent device")?
        .to_string_lossy()
        .into_owned())
}

/// Uncorrectable Internal Error in the AER capability's masks (PCI_ERR_UNC_INTN).
const UNC_INTN: u32 = 1 << 22;

/// Clears Uncorrectable Internal Error in the AER uncorrectable mask of PCI device `pci`
/// (config space through sysfs); returns the mask before and after.
fn unmask_internal_errors(pci: &str) -> Result<(u32, u32)> {
    let path = format!("/sys/bus/pci/devices/{pci}/config");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {path}"))?;
    let read = |off: u64| -> Result<u32> {
        let mut b = [0u8; 4];
        f.read_exact_at(&mut b, off)
            .with_context(|| format!("reading {path} at {off:#x}"))?;
        Ok(u32::from_le_bytes(b))
    };
    let mut off = 0x100;
    let aer = loop {
        let h = read(off)?;
        if h & 0xffff == 1 {
            break off;
        }
        let next = u64::from(h >> 20);
        if next < 0x100 {
            bail!("{pci} has no AER capability");
        }
        off = next;
    };
    let mask = read(aer + 8)?;
    let new = mask & !UNC_INTN;
    f.write_all_at(&new.to_le_bytes(), aer + 8)
        .with_context(|| format!("writing {path} at {:#x}", aer + 8))?;
    Ok((mask, read(aer + 8)?))
}

/// The CXL RAS capability's uncorrectable error mask of PCI device `pci` (the component
/// registers of its Register Locator DVSEC, mapped through sysfs `resourceN`) set to 0;
/// returns the mask before and after.
fn unmask_cxl_ras(pci: &str) -> Result<(u32, u32)> {
    let cfg_path = format!("/sys/bus/pci/devices/{pci}/config");
    let cfg = std::fs::read(&cfg_path).with_context(|| format!("reading {cfg_path}"))?;
    let dw = |off: usize| -> Result<u32> {
        let b = cfg
            .get(off..off + 4)
            .with_context(|| format!("{cfg_path}: {off:#x} is past its end"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // Register Locator DVSEC (CXL vendor 0x1e98, DVSEC id 8): the component block (id 1).
    let mut off = 0x100;
    let (bir, block) = loop {
        let h = dw(off)?;
        if h & 0xffff == 0x23 && dw(off + 4)? & 0xffff == 0x1e98 && dw(off + 8)? & 0xffff == 8 {
            let len = ((dw(off + 4)? >> 20) & 0xfff) as usize;
            let found = (off + 0xc..off + len)
                .step_by(8)
                .map(|e| Ok((dw(e)?, dw(e + 4)?)))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .find(|(lo, _)| (lo >> 8) & 0xff == 1)
                .map(|(lo, hi)| (lo & 7, (u64::from(hi) << 32) | u64::from(lo & 0xffff_0000)));
            break found.context("the Register Locator has no component register block")?;
        }
        let next = (h >> 20) as usize;
        if next < 0x100 {
            bail!("{pci}: no CXL Register Locator DVSEC");
        }
        off = next;
    };
    let res = format!("/sys/bus/pci/devices/{pci}/resource{bir}");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&res)
        .with_context(|| format!("opening {res}"))?;
    let len = 0x2000usize;
    // SAFETY: a shared mapping of the BAR through sysfs; only the 32-bit registers below are
    // touched, with volatile accesses, and it is unmapped before returning.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            block as libc::off_t,
        )
    };
    if base == libc::MAP_FAILED {
        bail!(
            "mmap of {res} at {block:#x}: {}",
            std::io::Error::last_os_error()
        );
    }
    let reg = |o: usize| base.cast::<u8>().wrapping_add(o).cast::<u32>();
    // SAFETY: inside the mapping (offsets below 0x2000, 4-byte aligned).
    let result = unsafe {
        let hdr = std::ptr::read_volatile(reg(0x1000));
        let n = (hdr >> 24) as usize;
        let ras = (1..=n)
            .map(|i| std::ptr::read_volatile(reg(0x1000 + 4 * i)))
            .find(|c| c & 0xffff == 2)
            .map(|c| 0x1000 + (c >> 20) as usize);
        match ras {
            Some(ras) if ras + 8 <= len => {
                let before = std::ptr::read_volatile(reg(ras + 4));
                std::ptr::write_volatile(reg(ras + 4), 0);
                Ok((before, std::ptr::read_volatile(reg(ras + 4))))
            }
            _ => Err(anyhow::anyhow!(
                "{pci}: no RAS capability in the component registers"
            )),
        }
    };
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(base, len) };
    result
}

/// After uncorrectable_error: kernel memdev `name` bound to cxl_mem again and a region like
/// `old` (one device, from DPA 0) on it again, its dax device bound to fsdev_dax.
fn rebuild(ctx: &Ctx<'_>, name: &str, old: &DaxDevice) -> Result<DaxDevice> {
    let driver = format!("/sys/bus/cxl/devices/{name}/driver");
    if !std::path::Path::new(&driver).exists() {
        crate::system::sysfs::write("/sys/bus/cxl/drivers/cxl_mem/bind", name)?;
        crate::system::sysfs::wait_for(
            &format!("{name} bound to cxl_mem"),
            Duration::from_secs(20),
            || std::path::Path::new(&driver).exists().then_some(()),
        )?;
    }
    let unit = 256 * MIB;
    let size = old.size.div_ceil(unit) * unit;
    let region = crate::setup::region::create(&crate::setup::region::RegionRequest {
        root: "decoder0.0",
        memdevs: &[name.to_string()],
        per_device: size,
        granularity: None,
    })?;
    let planned = lab_suite::plan::PlannedRegion {
        name: old.region.clone(),
        window: 0,
        devices: old.targets.iter().map(|t| t.memdev.clone()).collect(),
        size: Some(size),
        granularity: None,
    };
    let new = crate::setup::describe_region(&planned, &region, &ctx.map.memdevs)?
        .into_iter()
        .next()
        .context("the rebuilt region has no dax device")?;
    crate::setup::bind_fsdev(&new.name)?;
    Ok(new)
}

/// A type-3 device hot-removed by the host (QMP device_del: PCIe native hot-unplug, pciehp in
/// the guest) while a file on it is mapped with dirty pages: the holder is told
/// (MF_MEM_PRE_REMOVE through kill_dax), the mapping SIGBUSes, I/O is EIO, opens ENODEV, a file
/// on another device keeps its bytes, unmount completes. It leaves the device gone: the last
/// case of the suite.
pub fn device_removed_mapped(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match current_map(ctx)? {
        Some(map) => {
            let mut now = Ctx::new(&ctx.id, &map);
            let r = removed_mapped(&mut now);
            now.finish()?;
            r
        }
        None => removed_mapped(ctx),
    }
}

fn removed_mapped(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let (id, vdax, other) = victim(ctx)?;
    let name = kernel_memdev(ctx, &id)?;
    let mut slots = BTreeMap::new();
    slots.insert(0, Target::Dax(vdax.name.clone()));
    let mut w = AreaAlloc::new((WRITE_AREA.end - 6 * MIB)..(WRITE_AREA.end - 4 * MIB));
    let v = simple_map(&mut w, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
    let mut spec = Spec::new(&ctx.ops()?, slots).file("v", v);
    if let Some(o) = other {
        spec.slots.insert(1, Target::Dax(o.name.clone()));
        let mut r = AreaAlloc::new(READ_AREA);
        let s = simple_map(&mut r, &[(1, 2 * MIB)], 2 * MIB).context("read area full")?;
        spec = spec.file("s", s);
    }
    let fs = Famfs::start(ctx, spec)?;
    let f = sys::open(&fs.path("v"), true).map_err(|e| anyhow::anyhow!("open v: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, true).context("mmap v")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let pages: Vec<usize> = (0..8).map(|i| i * 5 * PAGE as usize).collect();
    for (i, &o) in pages.iter().enumerate() {
        // SAFETY: inside the live, writable mapping.
        unsafe { std::ptr::write_volatile(m.ptr().add(o), 0xe0 ^ i as u8) };
    }
    c.check(
        pages
            .iter()
            .all(|&o| sys::page_present(m.ptr().wrapping_add(o)).unwrap_or(false)),
        format!(
            "8 dirty pages of v ({}) are mapped before the removal",
            vdax.name
        ),
    );
    let mut kmsg = Kmsg::open()?;
    let reply = host::call(&HostCall::DeviceDel {
        device: id.clone(),
        timeout_ms: 90_000,
    })?;
    match reply {
        lab_agent_proto::HostReply::Done { note, .. } => c.pass(format!("host: {note}")),
        other => {
            c.fail(format!(
                "QEMU could not remove {id} ({name}) under the mapped file: {other:?}; kernel log: {:?}",
                kmsg.lines().iter().filter(|l| l.contains("pciehp") || l.contains("cxl")).collect::<Vec<_>>()
            ));
            return Ok(c.outcome());
        }
    }
    match kmsg.wait_for("device slot 0 failed", Duration::from_secs(10)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no \"device slot 0 failed\" in the kernel log after the removal"),
    }
    for l in kmsg
        .lines()
        .iter()
        .filter(|l| l.contains("pciehp") || l.contains(&name))
        .take(6)
    {
        c.note(format!("kernel log: {l}"));
    }
    c.check(
        !std::path::Path::new(&format!("/sys/bus/cxl/devices/{name}")).exists(),
        format!("{name} is gone from /sys/bus/cxl/devices"),
    );
    c.check(
        !std::path::Path::new(&format!("/dev/{}", vdax.name)).exists(),
        format!("/dev/{} is gone", vdax.name),
    );
    for (i, &o) in pages.iter().enumerate().take(2) {
        let p = m.ptr().wrapping_add(o);
        c.mapped(
            format!("v: dirty page {i} unmapped by the removal"),
            p,
            false,
        );
        c.access(
            format!("v: load of dirty page {i} after the removal"),
            sys::probe_read_here(p)?,
            Access::Signal(libc::SIGBUS),
        );
    }
    c.errno("v: pread", &sys::pread(&f, 0, 10), libc::EIO);
    c.errno("v: pwrite", &sys::pwrite_once(&f, 0, &[1]), libc::EIO);
    c.errno(
        "v: open again",
        &sys::open(&fs.path("v"), false),
        libc::ENODEV,
    );
    if other.is_some() {
        other_device_intact(&mut c, ctx, &fs)?;
    } else {
        c.note(format!(
            "{id} was the only device: no other device to check"
        ));
    }
    // SAFETY: our own mapping; msync of a mapping whose device is gone.
    let ms = unsafe { libc::msync(m.ptr().cast(), (2 * MIB) as usize, libc::MS_SYNC) };
    c.note(format!(
        "v: msync after the removal: {}",
        if ms == 0 {
            "0".to_string()
        } else {
            sys::errno_name(sys::errno(&std::io::Error::last_os_error()))
        }
    ));
    drop(m);
    drop(f);
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    Ok(c.outcome())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_records_parse_the_tracepoint() {
        let lines = vec![
            "sh-85 [001] ..... 5.69: cxl_poison: memdev=mem0 host=0000:0e:00.0 serial=1 trace_type=List region= region_uuid=0 hpa=0xffffffffffffffff hpa_alias0=0xffffffffffffffff dpa=0x10002000 dpa_length=0x1000 source=Internal flags= overflow_time=0".to_string(),
            "x: cxl_poison: memdev=mem1 host=h serial=2 trace_type=List region=region2 region_uuid=0 hpa=0x390005040 hpa_alias0=0x0 dpa=0x1040 dpa_length=0x40 source=Injected flags= overflow_time=0".to_string(),
            "x: cxl_general_media: memdev=mem1 dpa=3000".to_string(),
        ];
        assert_eq!(
            poison_records(&lines),
            vec![
                PoisonRecord {
                    memdev: "mem0".into(),
                    dpa: 0x1000_2000,
                    len: 0x1000,
                    hpa: None,
                    region: "".into()
                },
                PoisonRecord {
                    memdev: "mem1".into(),
                    dpa: 0x1040,
                    len: 0x40,
                    hpa: Some(0x3_9000_5040),
                    region: "region2".into()
                },
            ]
        );
    }
}
