//! The fuzz suite: `FAMFS_LAB_FUZZ_N` (default 10,000) generated blobs (valid, mutated and
//! random; `crate::harness::blobs::fuzz_blob`, seed `FAMFS_LAB_FUZZ_SEED`) served through
//! famfs-fused `--blob-dir` to the kernel's parse. Each open must fail with the errno the model
//! gives, or open a file the model accepts; an open file's bytes must read as the model says
//! where they are inside the devices, and fail with EIO where they are not. Files are used in
//! rounds of 64; between rounds their inodes are dropped so that every open fetches the fmap.

use crate::harness::blobs::{expected_open, fuzz_blob, ranges_outcome, FuzzEnv, OpenOutcome};
use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, FileSpec, Spec};
use crate::system::sys;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use famfs_fmap::{resolve, FileMap};
use lab_suite::expect::{self, simple_map, AreaAlloc, MIB, READ_AREA};
use std::collections::BTreeMap;
use std::time::Instant;

const FILES: u64 = 64;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "parse_blobs" => parse_blobs(ctx),
        _ => bail!("no fuzz case {name:?}"),
    }
}

fn parse_blobs(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let n: u64 = std::env::var("FAMFS_LAB_FUZZ_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("FAMFS_LAB_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xfa3f5);
    let slots = ctx.slots(2)?;
    let file_size = 4 * MIB;
    let mut a = AreaAlloc::new(READ_AREA);
    let shadow = simple_map(&mut a, &[(0, file_size)], file_size).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, slots.clone());
    for k in 0..FILES {
        let mut f = FileSpec::new(&format!("fz/f{k:02}"), shadow.clone());
        f.shared = true;
        spec.files.push(f);
    }
    spec.blob_dir = true;
    let mut fs = Famfs::start(ctx, spec)?;
    let env = FuzzEnv {
        file_size,
        slots: slots.keys().copied().collect(),
        area: READ_AREA,
        dev_size: fs.slots.0.values().map(|d| d.size).min().unwrap_or(0),
    };
    let present: Vec<u32> = env.slots.clone();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut wrong = Vec::new();
    let started = Instant::now();
    let mut fetched = fs.stats()?.fmap_total()?;
    for round in 0..n.div_ceil(FILES) {
        // Declared ranges of the files opened this round (their inodes hold them until the
        // caches are dropped at its end): the same bytes again are EBUSY, within a file EINVAL.
        let mut live = Vec::new();
        for k in 0..FILES {
            let i = round * FILES + k;
            if i >= n {
                break;
            }
            let rel = format!("fz/f{k:02}");
            let (kind, blob) = fuzz_blob(seed, i, &env);
            fs.write_blob(&rel, &blob)?;
            let mut want = expected_open(&blob, file_size, &|s| present.contains(&s));
            if let OpenOutcome::Opens(map) = &want {
                match ranges_outcome(map, &live) {
                    Ok(mine) => live.extend(mine),
                    Err(e) => want = OpenOutcome::Fails(e),
                }
            }
            let got = sys::open(&fs.path(&rel), false);
            let label = |w: &OpenOutcome| match w {
                OpenOutcome::Opens(_) => "opens".to_string(),
                OpenOutcome::Fails(e) => sys::errno_name(*e),
            };
            *tally
                .entry(format!("{kind:?} {}", label(&want)))
                .or_default() += 1;
            match (&want, got) {
                (OpenOutcome::Fails(e), Err(g)) if *e == g => {}
                (OpenOutcome::Opens(map), Ok(f)) => {
                    fs.set_map(&rel, map.clone());
                    if let Err(why) = check_open_file(&fs, &rel, map, &f) {
                        wrong.push(format!("blob {i} ({kind:?}): {why}"));
                    }
                }
                (w, g) => wrong.push(format!(
                    "blob {i} ({kind:?}, {} bytes): open {}, the model says {}",
                    blob.len(),
                    match g {
                        Ok(_) => "succeeded".to_string(),
                        Err(e) => sys::errno_name(e),
                    },
                    label(w)
                )),
            }
        }
        // Every attempt of the round must have fetched the fmap once.
        let now = fs.stats()?.fmap_total()?;
        let attempts = FILES.min(n - round * FILES);
        if now - fetched != attempts {
            wrong.push(format!(
                "round {round}: {attempts} opens sent {} GET_FMAP (an inode kept its meta?)",
                now - fetched
            ));
        }
        fetched = now;
        fs.settle_and_drop_caches()?;
        if wrong.len() > 50 {
            c.note("more than 50 wrong results: stopping early");
            break;
        }
        if round % 16 == 15 {
            println!(
                "{} blobs in {:.1} s",
                (round + 1) * FILES,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for (k, v) in &tally {
        println!("{v:6} {k}");
    }
    c.check(
        wrong.is_empty(),
        format!(
            "{n} blobs (seed {seed:#x}) in {:.1} s: every open as the model says{}",
            started.elapsed().as_secs_f64(),
            if wrong.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    wrong
                        .iter()
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ),
    );
    for w in wrong.iter().skip(10) {
        println!("also: {w}");
    }
    fs.stop()?;
    Ok(c.outcome())
}

/// Reads one byte at the start of every extent and chunk and at EOF-1: inside the device it
/// must succeed (with the fill where the host filled), outside it must be EIO.
fn check_open_file(
    fs: &Famfs,
    rel: &str,
    map: &FileMap,
    f: &std::fs::File,
) -> std::result::Result<(), String> {
    let plan = crate::harness::famfs::fill_plan().map_err(|e| format!("{e:#}"))?;
    let mut offs = expect::boundaries(map);
    if map.file_size > 0 {
        offs.push(map.file_size - 1);
    }
    for o in offs {
        let Some(m) = resolve(map, o) else { continue };
        let dev = fs
            .slots
            .get(m.dev_index)
            .ok_or_else(|| format!("slot {} has no device", m.dev_index))?;
        let inside = m.dev_offset < dev.size;
        match (inside, sys::pread(f, o, 1)) {
            (true, Ok(b)) if b.len() == 1 => {
                let p = expect::pieces(map, &fs.slots, o, 1).map_err(|e| e.to_string())?;
                // Only the read area is sure to hold the fill: other cases write elsewhere.
                if READ_AREA.contains(&p[0].dax_off)
                    && plan.covers(&p[0].memdev, p[0].backing_off, 1)
                {
                    let want =
                        expect::expected_fill(map, &fs.slots, o, 1).map_err(|e| e.to_string())?;
                    if b != want {
                        return Err(format!(
                            "{rel}+{o:#x}: {:#04x}, expected {:#04x}",
                            b[0], want[0]
                        ));
                    }
                }
            }
            (false, Err(libc::EIO)) => {}
            (inside, r) => {
                return Err(format!(
                    "{rel}+{o:#x} (slot {} +{:#x}, {} the device): pread gave {}",
                    m.dev_index,
                    m.dev_offset,
                    if inside { "inside" } else { "outside" },
                    match r {
                        Ok(b) => format!("{} bytes", b.len()),
                        Err(e) => sys::errno_name(e),
                    }
                ))
            }
        }
    }
    Ok(())
}
