//! The stress suite: threads of random faults, reads and writes over 64 read files (in the
//! stress area, which the host fills only for runs with this suite) and one write file per thread, for a fixed time (`FAMFS_LAB_STRESS_SECS`, default 30; threads
//! `FAMFS_LAB_STRESS_THREADS`, default 4). Every byte read is compared with the model at once;
//! at the end each write file is read whole and compared, and the host checks its backing
//! bytes (verify file). Run it on the debug kernel too, in its own run:
//! `cargo xtask lab up --kernel famfs-bpf --fragment debug --suite stress`.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, FileSpec, Spec};
use crate::system::mapping::Mapping;
use crate::system::sys;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::FileMap;
use lab_suite::expect::{
    self, interleaved_map, simple_map, AreaAlloc, Slots, Stripe, MIB, STRESS_AREA, WRITE_AREA,
};
use lab_suite::rng::Rng;
use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FILES: usize = 64;
const M2: u64 = 2 * MIB;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "random_faults" => random_faults(ctx),
        _ => bail!("no stress case {name:?}"),
    }
}

fn env_u64(k: &str, default: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 64 files in the stress area, of four shapes, never sharing a device page (fs-dax gives a
/// device page one owner: two files mapping it is a kernel WARN, see the README).
fn read_maps(nslots: u32) -> Result<Vec<FileMap>> {
    let mut a = AreaAlloc::new(STRESS_AREA);
    let slot = |i: usize| (i as u32) % nslots;
    (0..FILES)
        .map(|i| {
            let m = match i % 4 {
                0 => simple_map(&mut a, &[(slot(i), M2)], M2),
                1 => simple_map(&mut a, &[(slot(i), M2)], M2 - 777),
                2 => simple_map(&mut a, &[(slot(i), M2)], M2 - 4096 * (i as u64 % 7) - 1),
                _ => interleaved_map(
                    &mut a,
                    &[Stripe {
                        chunk: M2,
                        nbytes: 2 * M2,
                        slots: &[slot(i), slot(i + 1)],
                    }],
                    2 * M2 - 123,
                ),
            };
            m.context("the stress area is full")
        })
        .collect()
}

struct Shared {
    maps: BTreeMap<String, FileMap>,
    slots: Slots,
    stop: AtomicBool,
    ops: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, e: String) {
        let mut v = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < 20 {
            v.push(e);
        }
    }
}

fn random_faults(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let secs = env_u64("FAMFS_LAB_STRESS_SECS", 30);
    let threads = env_u64("FAMFS_LAB_STRESS_THREADS", 4).clamp(1, 64) as usize;
    let slots = ctx.slots(3)?;
    let nslots = slots.len() as u32;
    let mut spec = Spec::new(&ctx.ops()?, slots);
    for (i, m) in read_maps(nslots)?.into_iter().enumerate() {
        spec.files.push(FileSpec::new(&format!("r/f{i:02}"), m));
    }
    let mut w = AreaAlloc::new(WRITE_AREA);
    for t in 0..threads {
        let m = simple_map(&mut w, &[(t as u32 % nslots, M2)], M2 - 100 * t as u64)
            .context("write area full")?;
        spec.files.push(FileSpec::new(&format!("w/t{t}"), m));
    }
    let fs = Famfs::start(ctx, spec)?;
    let shared = Arc::new(Shared {
        maps: fs
            .spec
            .files
            .iter()
            .map(|f| (f.path.clone(), f.map.clone()))
            .collect(),
        slots: fs.slots.clone(),
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    // Every read file open and mapped (half of them without PMDs), shared by all threads.
    let mut reads = Vec::new();
    for i in 0..FILES {
        let rel = format!("r/f{i:02}");
        let f = File::open(fs.path(&rel)).with_context(|| format!("open {rel}"))?;
        let size = shared.maps[&rel].file_size;
        let m =
            Mapping::shared(&f, 0, size.div_ceil(4096) as usize * 4096, false).context("mmap")?;
        if i % 2 == 0 {
            m.advise(libc::MADV_NOHUGEPAGE)?;
        }
        reads.push((rel, f, MapPtr(m)));
    }
    let reads = Arc::new(reads);
    let seeds: Vec<String> = (0..threads).map(|t| format!("{}:t{t}", ctx.id)).collect();
    // Each write file starts with its thread's pattern A; every write then stores, byte for
    // byte, the other of two patterns (A <-> B) than the byte holds: no write stores what is
    // already there, so a lost one shows.
    for (t, seed) in seeds.iter().enumerate() {
        let rel = format!("w/t{t}");
        let size = shared.maps[&rel].file_size;
        let f = File::options().read(true).write(true).open(fs.path(&rel))?;
        sys::pwrite_all(&f, 0, &fs.seeded(&rel, 0, size, seed)?)?;
    }
    println!("{threads} threads for {secs} s over {FILES} read files and {threads} write files");
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (shared, reads, seed) = (shared.clone(), reads.clone(), seeds[t].clone());
            let path = fs.path(&format!("w/t{t}"));
            std::thread::spawn(move || worker(t, &shared, &reads, &path, &seed))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    shared.stop.store(true, Ordering::SeqCst);
    let mut states = Vec::new();
    for h in handles {
        match h
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
        {
            Ok(st) => states.push(Some(st)),
            Err(e) => {
                shared.error(format!("{e:#}"));
                states.push(None);
            }
        }
    }
    let ops = shared.ops.load(Ordering::SeqCst);
    println!(
        "{ops} operations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let errors = shared
        .errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    c.check(
        errors.is_empty(),
        format!(
            "{ops} random operations, every byte as the model says{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(": {}", errors.join("; "))
            }
        ),
    );
    c.check(ops > threads as u64, "the threads made progress");
    for (t, seed) in seeds.iter().enumerate() {
        let rel = format!("w/t{t}");
        let Some(Some(st)) = states.get(t) else {
            c.fail(format!("{rel}: its thread failed; the file is not checked"));
            continue;
        };
        let size = shared.maps[&rel].file_size;
        let f = File::open(fs.path(&rel))?;
        let got =
            sys::pread(&f, 0, size as usize).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
        let alt = alt_seed(seed);
        let want = mix(
            &fs.seeded(&rel, 0, size, seed)?,
            &fs.seeded(&rel, 0, size, &alt)?,
            st,
        );
        let changed = st.iter().filter(|&&b| b).count();
        println!(
            "{rel}: {changed} of {size} bytes hold pattern B; fnv {:#018x} (expected {:#018x})",
            fnv(&got),
            fnv(&want)
        );
        c.check(
            changed > 0,
            format!("{rel}: the thread's writes changed bytes"),
        );
        c.bytes(format!("{rel}: whole file at the end"), 0, &got, &want);
        for (off, len, b) in runs(st) {
            ctx.verify(fs.ranges(&rel, off, len, Some(if b { &alt } else { seed }))?);
        }
    }
    drop(reads);
    fs.stop()?;
    Ok(c.outcome())
}

/// The second pattern of a write file.
fn alt_seed(seed: &str) -> String {
    format!("{seed}:B")
}

/// Byte `i` of `a` or, where `alt[i]`, of `b`.
fn mix(a: &[u8], b: &[u8], alt: &[bool]) -> Vec<u8> {
    a.iter()
        .zip(b)
        .zip(alt)
        .map(|((&x, &y), &z)| if z { y } else { x })
        .collect()
}

/// Runs of equal values: (offset, length, value).
fn runs(v: &[bool]) -> Vec<(u64, u64, bool)> {
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    for (i, &b) in v.iter().enumerate() {
        match out.last_mut() {
            Some(r) if r.2 == b => r.1 += 1,
            _ => out.push((i as u64, 1, b)),
        }
    }
    out
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A mapping shared between threads (read only; the pointer stays valid until it is dropped).
struct MapPtr(Mapping);
// SAFETY: the mapping is only read through shared references while it lives.
unsafe impl Sync for MapPtr {}
// SAFETY: as above; dropped by the thread that created it after the workers are joined.
unsafe impl Send for MapPtr {}

fn worker(
    t: usize,
    s: &Shared,
    reads: &[(String, File, MapPtr)],
    wpath: &std::path::Path,
    seed: &str,
) -> Result<Vec<bool>> {
    let mut r = Rng::new(0x5eed ^ t as u64);
    let wrel = format!("w/t{t}");
    let wmap = &s.maps[&wrel];
    let wsize = wmap.file_size;
    let wf = File::options().read(true).write(true).open(wpath)?;
    let mut wm =
        Mapping::shared(&wf, 0, wsize.div_ceil(4096) as usize * 4096, true).context("mmap")?;
    let alt = alt_seed(seed);
    // which pattern each byte holds (false: A, the seed; true: B)
    let mut st = vec![false; wsize as usize];
    while !s.stop.load(Ordering::Relaxed) {
        let op = r.below(5);
        let res: Result<()> = (|| {
            match op {
                0 | 1 => {
                    let (rel, f, m) = &reads[r.below(reads.len() as u64) as usize];
                    let map = &s.maps[rel];
                    let off = r.below(map.file_size);
                    let len = (1 + r.below(16384)).min(map.file_size - off);
                    let want = expect::expected_fill(map, &s.slots, off, len)?;
                    let got = if op == 0 {
                        m.0.read_at(off as usize, len as usize)
                    } else {
                        sys::pread(f, off, len as usize)
                            .map_err(|e| anyhow::anyhow!("pread {rel}: errno {e}"))?
                    };
                    if got != want {
                        let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                        bail!(
                            "{rel}: {} at {:#x} differs",
                            if op == 0 { "fault" } else { "pread" },
                            off + i as u64
                        );
                    }
                }
                2 | 3 => {
                    let off = r.below(wsize);
                    let len = (1 + r.below(16384)).min(wsize - off);
                    let (o, l) = (off as usize, len as usize);
                    let a = expect::expected_seed(wmap, &s.slots, off, len, seed)?;
                    let b = expect::expected_seed(wmap, &s.slots, off, len, &alt)?;
                    let flip: Vec<bool> = st[o..o + l].iter().map(|x| !x).collect();
                    let data = mix(&a, &b, &flip);
                    st[o..o + l].copy_from_slice(&flip);
                    if op == 2 {
                        wm.bytes_mut()[off as usize..(off + len) as usize].copy_from_slice(&data);
                    } else {
                        sys::pwrite_all(&wf, off, &data)?;
                    }
                }
                _ => {
                    let off = r.below(wsize);
                    let len = (1 + r.below(16384)).min(wsize - off);
                    let (o, l) = (off as usize, len as usize);
                    let want = mix(
                        &expect::expected_seed(wmap, &s.slots, off, len, seed)?,
                        &expect::expected_seed(wmap, &s.slots, off, len, &alt)?,
                        &st[o..o + l],
                    );
                    let got = sys::pread(&wf, off, len as usize)
                        .map_err(|e| anyhow::anyhow!("pread {wrel}: errno {e}"))?;
                    if got != want {
                        bail!("{wrel}: read back at {off:#x} differs");
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            s.error(format!("thread {t}: {e:#}"));
        }
        s.ops.fetch_add(1, Ordering::Relaxed);
    }
    wm.sync(libc::MS_SYNC)?;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::{mix, runs};

    #[test]
    fn mix_and_runs() {
        assert_eq!(
            mix(&[1, 2, 3, 4], &[5, 6, 7, 8], &[false, true, true, false]),
            vec![1, 6, 7, 4]
        );
        assert_eq!(
            runs(&[false, true, true, false]),
            vec![(0, 1, false), (1, 2, true), (3, 1, false)]
        );
        assert!(runs(&[]).is_empty());
    }
}
