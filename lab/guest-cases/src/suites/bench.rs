//! The bench suite (never a default suite; `cargo xtask lab bench fault` runs it): the cost of
//! the fmap ops on the DAX fault path. One case mounts identical files with each resolver in
//! turn (famfs_native, famfs, famfs_maplookup, ...) and measures the same faults on the raw dax
//! device (device_dax, the floor). Rounds interleave the units so that drift hits all alike;
//! round 0 is an untimed probe with the fs_dax tracepoints (fault sizes) and bpf stats on,
//! then untimed warm-up rounds, then the timed rounds, each with the units (the floor and the
//! resolvers) rotated one place ([`rotation`]), the order recorded in the samples.
//! Raw per-touch timings go to `/results/bench.fault.samples.json`; the host does the
//! statistics (lab-bench). The case fails only if nothing could be measured.

use crate::harness::famfs::{native_available, Ctx, Famfs, FileSpec, Spec};
use crate::suites::bench_probe::{
    bpf_prog_stats, server_pid, smaps_of, Aligned, BpfStats, Floor, Pinned, PAGE, PMD,
};
use crate::suites::fault::{allow_thp, restore_thp};
use crate::system::sys::{self, dax_faults, Trace, DAX_FAULT_EVENTS};
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::{Extents, FileMap, FileType, SimpleExtent};
use lab_suite::benchdata::{
    files_of, rotation, Access, BpfRun, CellSamples, FaultConfig, FaultSizes, Order, Phase, Rep,
    RoundOrder, Samples, Size, Workload, CONFIG_ENV, FLOOR, SAMPLES_FILE,
};
use lab_suite::expect::{interleaved_map, simple_map, AreaAlloc, Stripe, FILL_TAIL, MIB};
use lab_suite::rng::Rng;
use lab_suite::verify::GUEST_RESULTS;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Dax offsets the benchmark's files use: above every other suite's area (the stress area ends
/// at 240 MiB), up to the device's filled tail. Nothing is checked there, so nothing is filled.
const BENCH_START: u64 = 256 * MIB;
const _: () = assert!(BENCH_START >= lab_suite::expect::STRESS_AREA.end);

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "fault" => fault(ctx),
        _ => bail!("no bench case {name:?}"),
    }
}

/// The files (and the floor's device range) every resolver gets, identical for all.
struct Layout {
    len: u64,
    floor_off: u64,
    pte_offs: Vec<usize>,
    pmd_offs: Vec<usize>,
}

fn layout(ctx: &Ctx<'_>, cfg: &FaultConfig) -> Result<(Layout, Spec)> {
    let slots = ctx.slots(2)?;
    let n = slots.len() as u32;
    let min_size = ctx.dax().iter().map(|d| d.size).min().unwrap_or(0);
    let end = min_size.saturating_sub(FILL_TAIL);
    let mut a = AreaAlloc::new(BENCH_START..end.max(BENCH_START));
    let pmd = PMD as u64;
    let want = (u64::from(cfg.pte_pages) * PAGE as u64).max(u64::from(cfg.pmd_pages) * pmd);
    let len = want.div_ceil(2 * pmd).max(1) * 2 * pmd;
    let full = || {
        anyhow::anyhow!(
            "the bench area {BENCH_START:#x}..{end:#x} is too small for {} PTE / {} PMD pages and {} files",
            cfg.pte_pages,
            cfg.pmd_pages,
            cfg.open_files
        )
    };
    // One pair of files per fault size: fs-dax keeps the entries of earlier PTE faults in the
    // inode's page cache, and a PMD fault over them falls back to PTEs.
    let mut files = Vec::new();
    for size in ["pte", "pmd"] {
        // simple: up to 4 extents, laid out on the device in reverse order
        let next = (len / pmd).min(4);
        let ext_len = (len / next).div_ceil(pmd) * pmd;
        let mut exts: Vec<SimpleExtent> = (0..next)
            .map(|_| {
                Some(SimpleExtent {
                    dev_index: 0,
                    offset: a.take(0, ext_len)?,
                    len: ext_len,
                })
            })
            .collect::<Option<_>>()
            .ok_or_else(full)?;
        exts.reverse();
        let simple = FileMap {
            file_type: FileType::Regular,
            file_size: len,
            extents: Extents::Simple(exts),
        };
        // il: 2-way interleaved in 2 MiB chunks (over two devices if the topology has them)
        let il = interleaved_map(
            &mut a,
            &[Stripe {
                chunk: pmd,
                nbytes: len,
                slots: &[0, 1 % n],
            }],
            len,
        )
        .ok_or_else(full)?;
        // one: a single extent (what the breakdown variants that skip the resolve logic map)
        let one = FileMap {
            file_type: FileType::Regular,
            file_size: len,
            extents: Extents::Simple(vec![SimpleExtent {
                dev_index: 0,
                offset: a.take(0, len).ok_or_else(full)?,
                len,
            }]),
        };
        files.push(FileSpec::new(&format!("{size}/simple"), simple));
        files.push(FileSpec::new(&format!("{size}/il"), il));
        files.push(FileSpec::new(&format!("{size}/one"), one));
    }
    for k in 0..cfg.open_files {
        let m = simple_map(&mut a, &[(k % n, pmd)], 64 << 10).ok_or_else(full)?;
        files.push(FileSpec::new(&format!("files/o{k:02}"), m));
    }
    let floor_off = a.take(0, len).ok_or_else(full)?;
    let stride = ((len as usize / cfg.pte_pages.max(1) as usize) / PAGE).max(1) * PAGE;
    let pte_offs = (0..cfg.pte_pages as usize).map(|i| i * stride).collect();
    let pmd_offs = (0..cfg.pmd_pages as usize).map(|i| i * PMD).collect();
    let mut spec = Spec::new("famfs", slots);
    spec.files = files;
    Ok((
        Layout {
            len,
            floor_off,
            pte_offs,
            pmd_offs,
        },
        spec,
    ))
}

/// The file of the mount a fault workload runs on (`pte/simple`, `pmd/il`, ...).
fn file_of(w: &Workload) -> String {
    let dir = if w.size == Size::Pmd { "pmd" } else { "pte" };
    format!("{dir}/{}", w.file)
}

/// The fault workloads in table order, with their touch offsets (in touch order).
fn fault_workloads(l: &Layout, files: &[&str]) -> Vec<(Workload, Vec<usize>)> {
    let mut v = Vec::new();
    for (size, offs) in [(Size::Pte, &l.pte_offs), (Size::Pmd, &l.pmd_offs)] {
        for order in [Order::Seq, Order::Rand] {
            let mut o = offs.clone();
            if order == Order::Rand {
                let seed = 0x5eed + o.len() as u64;
                shuffle(&mut o, seed);
            }
            for access in [Access::Read, Access::Write] {
                for f in files {
                    v.push((Workload::new(size, order, access, f), o.clone()));
                }
            }
        }
    }
    v
}

fn shuffle(v: &mut [usize], seed: u64) {
    let mut r = Rng::new(seed);
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// The cells of one run, by (resolver, workload).
#[derive(Default)]
struct Cells(BTreeMap<(String, Workload), CellSamples>);

impl Cells {
    fn cell(&mut self, resolver: &str, w: &Workload, faults: usize) -> &mut CellSamples {
        self.0
            .entry((resolver.to_string(), w.clone()))
            .or_insert_with(|| CellSamples {
                resolver: resolver.into(),
                workload: w.clone(),
                faults: faults as u32,
                reps: Vec::new(),
                sizes: None,
                bpf: None,
                notes: Vec::new(),
                error: None,
            })
    }

    fn fail(&mut self, resolver: &str, w: &Workload, faults: usize, e: &anyhow::Error) {
        let c = self.cell(resolver, w, faults);
        if c.error.is_none() {
            println!("{resolver} {w}: {e:#}");
            c.error = Some(format!("{e:#}"));
        }
    }
}

/// One round of one unit: what it is for, where the unit ran in it, and what the probe turns
/// on (tracepoints, bpf stats).
struct Probe {
    phase: Phase,
    round: u32,
    position: u32,
    trace: Option<Trace>,
    bpf: Option<BpfStats>,
}

impl Probe {
    fn on(&self) -> bool {
        self.phase == Phase::Probe
    }
}

fn fault(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let cfg: FaultConfig = match std::env::var(CONFIG_ENV) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("parsing {CONFIG_ENV}"))?,
        Err(_) => FaultConfig::default(),
    };
    println!("config: {}", serde_json::to_string(&cfg)?);
    let (l, base_spec) = layout(ctx, &cfg)?;
    let mut out = Samples {
        config: Some(cfg.clone()),
        ..Samples::default()
    };
    let mut cells = Cells::default();
    let thp = allow_thp()?;
    let floor_dax = ctx
        .dax()
        .first()
        .map(|d| d.name.clone())
        .context("no dax device")?;
    // resolvers that failed to mount: not tried again
    let mut dead: BTreeMap<String, String> = BTreeMap::new();
    if cfg.resolvers.iter().any(|r| r == "famfs_native") {
        if let Err(why) = native_available() {
            dead.insert("famfs_native".into(), why);
        }
    }
    // probe, warm-ups, then the timed rounds, each unit (the floor, the resolvers) in the
    // order of `rotation`: every unit runs in every position equally often
    let mut units: Vec<String> = Vec::new();
    if cfg.floor {
        units.push(FLOOR.to_string());
    }
    units.extend(cfg.resolvers.iter().cloned());
    let phases = std::iter::once((Phase::Probe, 0))
        .chain((0..cfg.warmup).map(|_| (Phase::Warmup, 0)))
        .chain((1..=cfg.reps).map(|r| (Phase::Timed, r)));
    for (phase, round) in phases {
        let mut pr = Probe {
            phase,
            round,
            position: 0,
            trace: None,
            bpf: None,
        };
        if phase == Phase::Probe {
            pr.trace = Trace::new(DAX_FAULT_EVENTS)?;
            out.tracepoints = pr.trace.is_some();
            if pr.trace.is_none() {
                out.notes
                    .push("no fs_dax tracepoints: fault sizes from smaps only".into());
            }
            match BpfStats::enable() {
                Ok(s) => {
                    pr.bpf = Some(s);
                    out.bpf_stats = true;
                }
                Err(why) => out.notes.push(why),
            }
        }
        let order = rotation(&units, round);
        println!("round {round} ({phase:?}): {}", order.join(" "));
        out.rounds.push(RoundOrder {
            round,
            phase,
            order: order.clone(),
        });
        for (position, r) in order.iter().enumerate() {
            pr.position = position as u32;
            if r == FLOOR {
                if let Err(e) = floor_round(&l, &cfg, &floor_dax, &pr, &mut cells) {
                    for (w, o) in fault_workloads(&l, files_of(FLOOR)) {
                        cells.fail(FLOOR, &w, o.len(), &e);
                    }
                }
                continue;
            }
            let files: Vec<Workload> = fault_workloads(&l, files_of(r))
                .into_iter()
                .map(|(w, _)| w)
                .chain(open_workloads())
                .collect();
            if let Some(why) = dead.get(r) {
                let e = anyhow::anyhow!("{why}");
                for w in &files {
                    cells.fail(r, w, 0, &e);
                }
                continue;
            }
            let mut spec = base_spec.clone();
            spec.ops = r.clone();
            let fs = match Famfs::start(ctx, spec) {
                Ok(fs) => fs,
                Err(e) => {
                    let why = format!("mount with --ops {r} failed: {e:#}");
                    println!("{why}");
                    dead.insert(r.clone(), why);
                    let e = anyhow::anyhow!("mount with --ops {r} failed");
                    for w in &files {
                        cells.fail(r, w, 0, &e);
                    }
                    continue;
                }
            };
            {
                let _pin = Pinned::to(bench_cpu())?;
                resolver_round(&fs, r, &l, &cfg, &pr, &mut cells);
            }
            // a server that does not end cleanly is reported, and not mounted again
            if let Err(e) = fs.stop() {
                let why = format!("unmounting the {r} mount: {e:#}");
                println!("{why}");
                out.notes.push(why.clone());
                dead.insert(r.clone(), why);
            }
        }
    }
    restore_thp(thp);
    for (r, why) in &dead {
        out.notes.push(format!("{r}: {}", first_line(why)));
    }
    out.cells = cells.0.into_values().collect();
    let measured = out.cells.iter().filter(|c| !c.reps.is_empty()).count();
    let path = Path::new(GUEST_RESULTS).join(SAMPLES_FILE);
    std::fs::write(&path, serde_json::to_string(&out)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{} cells ({measured} measured) in {}",
        out.cells.len(),
        path.display()
    );
    if measured == 0 {
        return Ok(Outcome::Fail("no cell could be measured".into()));
    }
    Ok(Outcome::Pass)
}

/// The CPU the timed loops run on: the last one (the agent's interrupts go to CPU 0).
fn bench_cpu() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .unwrap_or(0)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn open_workloads() -> [Workload; 2] {
    [
        Workload::new(Size::Open, Order::Cold, Access::Read, "files"),
        Workload::new(Size::Open, Order::Cached, Access::Read, "files"),
    ]
}

/// One round of the floor: the fault workloads on the raw device, bound with 4 KiB alignment
/// for the PTE faults (and the opens), then with 2 MiB alignment for the PMD faults.
fn floor_round(
    l: &Layout,
    cfg: &FaultConfig,
    dax: &str,
    pr: &Probe,
    cells: &mut Cells,
) -> Result<()> {
    let dev = format!("/dev/{dax}");
    for (size, align) in [(Size::Pte, PAGE), (Size::Pmd, PMD)] {
        let floor = Floor::bind(dax, align)?;
        let pin = Pinned::to(bench_cpu())?;
        let result = (|| -> Result<()> {
            let f = std::fs::File::options()
                .read(true)
                .write(true)
                .open(&dev)
                .with_context(|| format!("opening {dev}"))?;
            for (w, offs) in fault_workloads(l, files_of(FLOOR)) {
                if w.size != size {
                    continue;
                }
                if let Some(why) = &floor.unaligned {
                    cells.fail(FLOOR, &w, offs.len(), &anyhow::anyhow!("{why}"));
                    continue;
                }
                match measure(f.as_raw_fd(), l.floor_off, l.len, &w, &offs, pr.on(), None) {
                    Ok((rep, sizes)) => {
                        record(cells.cell(FLOOR, &w, offs.len()), pr, rep, sizes, None)
                    }
                    Err(e) => cells.fail(FLOOR, &w, offs.len(), &e),
                }
            }
            if size == Size::Pte && floor.unaligned.is_none() {
                floor_open(&dev, l, cfg, pr, cells)?;
            }
            Ok(())
        })();
        drop(pin);
        let released = floor.release();
        result.and(released)?;
    }
    Ok(())
}

/// open + mmap + first touch of the raw device (what the open workloads compare with).
fn floor_open(
    dev: &str,
    l: &Layout,
    cfg: &FaultConfig,
    pr: &Probe,
    cells: &mut Cells,
) -> Result<()> {
    let w = Workload::new(Size::Open, Order::Cached, Access::Read, "dev");
    let mut rep = Rep::default();
    for _ in 0..cfg.open_files {
        let t0 = crate::suites::bench_probe::now_ns();
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .open(dev)
            .with_context(|| format!("opening {dev}"))?;
        let m = Aligned::new(f.as_raw_fd(), l.floor_off, 64 << 10, false, true)?;
        m.touch(&[0], false)?;
        let t1 = crate::suites::bench_probe::now_ns();
        let second = m.touch(&[0], false)?;
        rep.first_ns.push(t1.saturating_sub(t0));
        rep.second_ns.push(second[0]);
    }
    record(
        cells.cell(FLOOR, &w, cfg.open_files as usize),
        pr,
        rep,
        FaultSizes::default(),
        None,
    );
    Ok(())
}

/// One round of a mounted resolver: every fault workload on `simple` and `il`, then the opens.
fn resolver_round(
    fs: &Famfs,
    r: &str,
    l: &Layout,
    cfg: &FaultConfig,
    pr: &Probe,
    cells: &mut Cells,
) {
    let pid = match fs.stats_path.parent().map(|d| server_pid(&d.join("ready"))) {
        Some(Ok(p)) => Some(p),
        _ => None,
    };
    let mut open: BTreeMap<String, std::fs::File> = BTreeMap::new();
    for (w, offs) in fault_workloads(l, files_of(r)) {
        let rel = file_of(&w);
        if !open.contains_key(&rel) {
            match std::fs::File::options()
                .read(true)
                .write(true)
                .open(fs.path(&rel))
            {
                Ok(f) => {
                    open.insert(rel.clone(), f);
                }
                Err(e) => {
                    cells.fail(r, &w, offs.len(), &anyhow::anyhow!("open {rel}: {e}"));
                    continue;
                }
            }
        }
        let Some(f) = open.get(&rel) else {
            continue;
        };
        let ino = sys::ino(f).ok();
        let tracer = pr.trace.as_ref().zip(ino);
        let before = pid
            .filter(|_| pr.bpf.is_some() && r != "famfs_native")
            .and_then(|p| bpf_prog_stats(p).ok());
        match measure(f.as_raw_fd(), 0, l.len, &w, &offs, pr.on(), tracer) {
            Ok((rep, sizes)) => {
                let bpf = match (before, pid.and_then(|p| bpf_prog_stats(p).ok())) {
                    (Some((c0, n0)), Some((c1, n1))) => Some(BpfRun {
                        calls: c1.saturating_sub(c0),
                        run_ns: n1.saturating_sub(n0),
                    }),
                    _ => None,
                };
                record(cells.cell(r, &w, offs.len()), pr, rep, sizes, bpf);
            }
            Err(e) => cells.fail(r, &w, offs.len(), &e),
        }
    }
    drop(open);
    if let Err(e) = open_round(fs, r, cfg, pr, cells) {
        for w in open_workloads() {
            cells.fail(r, &w, cfg.open_files as usize, &e);
        }
    }
}

/// Stores a repetition: the probe's fault sizes and bpf time, a timed repetition (with its
/// round and position), or nothing (a warm-up).
fn record(c: &mut CellSamples, pr: &Probe, rep: Rep, sizes: FaultSizes, bpf: Option<BpfRun>) {
    match pr.phase {
        Phase::Probe => {
            if sizes != FaultSizes::default() {
                c.sizes = Some(sizes);
            }
            c.bpf = bpf;
        }
        Phase::Warmup => {}
        Phase::Timed => c.reps.push(Rep {
            round: pr.round,
            position: Some(pr.position),
            ..rep
        }),
    }
}

/// One repetition of a fault workload on a fresh mapping: the first touches (faults), then the
/// same touches again (mapped). In the probe, also the fault sizes (trace, smaps).
fn measure(
    fd: i32,
    off: u64,
    len: u64,
    w: &Workload,
    offs: &[usize],
    probe: bool,
    trace: Option<(&Trace, u64)>,
) -> Result<(Rep, FaultSizes)> {
    let write = w.access == Access::Write;
    let m = Aligned::new(fd, off, len as usize, write, w.size == Size::Pte)?;
    if let Some((t, _)) = trace {
        t.clear()?;
    }
    let first_ns = m.touch(offs, write)?;
    let second_ns = m.touch(offs, write)?;
    let mut sizes = FaultSizes::default();
    if probe {
        if let Some((t, ino)) = trace {
            let n = dax_faults(&t.lines()?, ino);
            sizes.pte = Some(n.pte as u64);
            sizes.pmd = Some(n.pmd as u64);
            sizes.fallback = Some(n.pmd_fallback as u64);
            sizes.failed = Some(n.failed as u64);
        }
        let (rss, pmd) = smaps_of(m.addr())?;
        sizes.smaps_rss_kib = rss;
        sizes.smaps_pmd_kib = pmd;
    }
    Ok((
        Rep {
            round: 0,
            position: None,
            first_ns,
            second_ns,
        },
        sizes,
    ))
}

/// One round of the open workloads: every file cold (inodes dropped), then every file again
/// (cached): open + mmap + first touch, then a second touch.
fn open_round(fs: &Famfs, r: &str, cfg: &FaultConfig, pr: &Probe, cells: &mut Cells) -> Result<()> {
    let n = cfg.open_files as usize;
    fs.settle_and_drop_caches()?;
    for w in open_workloads() {
        let before = fs.stats()?.fmap_total()?;
        let mut rep = Rep::default();
        for k in 0..n {
            let path = fs.path(&format!("files/o{k:02}"));
            // The previous file's RELEASE goes to the server in the background after its close:
            // served inside this open's window or not, it made the cached opens bimodal under
            // icount (~120k or ~265k instructions).
            fs.settle_releases()?;
            let t0 = crate::suites::bench_probe::now_ns();
            let f = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let m = Aligned::new(f.as_raw_fd(), 0, 64 << 10, false, true)?;
            m.touch(&[0], false)?;
            let t1 = crate::suites::bench_probe::now_ns();
            let second = m.touch(&[0], false)?;
            rep.first_ns.push(t1.saturating_sub(t0));
            rep.second_ns.push(second[0]);
        }
        let fmaps = fs.stats()?.fmap_total()?.saturating_sub(before);
        let c = cells.cell(r, &w, n);
        if pr.on() {
            c.notes.push(format!("GET_FMAP {fmaps} for {n} opens"));
        }
        record(c, pr, rep, FaultSizes::default(), None);
    }
    Ok(())
}
