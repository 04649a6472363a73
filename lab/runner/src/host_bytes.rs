//! The host's part of a case: bytes written into a CXL backing file before
//! boot, and bytes checked in the backing files after the guest wrote them
//! through a dax device. For the fmap suites: the fill pattern written into
//! every backing file before boot ([`fill_plan`], [`fill`]) and the ranges a
//! case lists in its verify file checked after it ([`verify_file`]).

use anyhow::{bail, Context, Result};
use lab_suite::catalog::HostPart;
use lab_suite::devices::DeviceMap;
use lab_suite::expect::{fill_seed, FILL_TAIL};
use lab_suite::pattern;
use lab_suite::verify::{self, FillPlan, FillRange, VerifyRange};
use lab_vm::topology::Topology;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Backing files by topology device id.
pub type Backings = BTreeMap<String, PathBuf>;

/// Opens `memdev`'s backing file (read-write when `write`).
pub(crate) fn open(backings: &Backings, memdev: &str, write: bool) -> Result<std::fs::File> {
    let path = backings
        .get(memdev)
        .with_context(|| format!("no backing file for device {memdev}"))?;
    std::fs::File::options()
        .read(true)
        .write(write)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Does the before-boot part of `host`, if it has one.
pub fn before_boot(host: &HostPart, backings: &Backings) -> Result<()> {
    if let HostPart::WriteBeforeBoot {
        memdev,
        offset,
        len,
        seed,
    } = *host
    {
        let f = open(backings, memdev, true)?;
        f.write_all_at(&pattern::fill(seed, offset, len as usize), offset)
            .with_context(|| {
                format!("writing the {seed:?} pattern into {memdev}'s backing file")
            })?;
    }
    Ok(())
}

/// Does the after-case part of `host`: reads every byte of the dax range
/// from the backing files (following the interleave) and compares.
pub fn verify_after(
    host: &HostPart,
    map: &DeviceMap,
    backings: &Backings,
) -> Result<Option<String>> {
    let HostPart::VerifyAfter {
        dax,
        offset,
        len,
        seed,
    } = *host
    else {
        return Ok(None);
    };
    let dev = map
        .dax(dax)
        .with_context(|| format!("the guest reported no {dax}"))?;
    let mut pos = offset;
    while pos < offset + len {
        let b = dev
            .backing_of(pos)
            .with_context(|| format!("{dax}+{pos:#x} is outside the device"))?;
        let run = b.run.min(offset + len - pos);
        let mut buf = vec![0u8; run as usize];
        open(backings, &b.memdev, false)?.read_exact_at(&mut buf, b.offset)?;
        if let Some((p, want, got)) = pattern::first_mismatch(seed, pos, &buf) {
            bail!(
                "host check: {dax}+{p:#x} (backing {}+{:#x}) holds {got:#04x}, the guest wrote {want:#04x}",
                b.memdev,
                b.offset + (p - pos)
            );
        }
        pos += run;
    }
    Ok(Some(format!(
        "host check: {len} bytes of {dax}+{offset:#x} match in the backing files"
    )))
}

/// The backing ranges of the fmap suites' fill: for every region, on each of its devices, the
/// first `head` ([`lab_suite::expect::FILL_HEAD`], or more for the stress suite) and the last [`FILL_TAIL`] bytes
/// of the device's share. Shares are allocated in region order from device physical address 0,
/// as the kernel allocates DPA; a region without a size takes what its devices have left.
pub fn fill_plan(topology: &Topology, head: u64) -> FillPlan {
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ranges = Vec::new();
    for r in &topology.regions {
        let ways = r.devices.len().max(1) as u64;
        let share = match r.size {
            Some(s) => s.0 / ways,
            None => r
                .devices
                .iter()
                .map(|d| {
                    let size = topology.device(d).map(|t| t.size.0).unwrap_or(0);
                    size.saturating_sub(*next.get(d.as_str()).unwrap_or(&0))
                })
                .min()
                .unwrap_or(0),
        };
        for d in &r.devices {
            let base = *next.get(d.as_str()).unwrap_or(&0);
            let head = share.min(head);
            ranges.push(FillRange {
                memdev: d.clone(),
                offset: base,
                len: head,
            });
            let tail = (base + share - FILL_TAIL.min(share)).max(base + head);
            if tail < base + share {
                ranges.push(FillRange {
                    memdev: d.clone(),
                    offset: tail,
                    len: base + share - tail,
                });
            }
            next.insert(d.as_str(), base + share);
        }
    }
    ranges.retain(|r| r.len > 0);
    FillPlan { ranges }
}

/// Writes the fill pattern (seed = memdev id, position = backing offset) over `plan`.
pub fn fill(plan: &FillPlan, backings: &Backings) -> Result<()> {
    const STEP: u64 = 1 << 20;
    let mut buf = vec![0u8; STEP as usize];
    for r in &plan.ranges {
        let f = open(backings, &r.memdev, true)?;
        let mut pos = r.offset;
        while pos < r.offset + r.len {
            let n = STEP.min(r.offset + r.len - pos) as usize;
            pattern::fill_into(fill_seed(&r.memdev), pos, &mut buf[..n]);
            f.write_all_at(&buf[..n], pos)
                .with_context(|| format!("filling {}'s backing file at {pos:#x}", r.memdev))?;
            pos += n as u64;
        }
    }
    Ok(())
}

/// Checks one backing range against its pattern; the first difference, described.
fn check_range(r: &VerifyRange, backings: &Backings) -> Result<()> {
    const STEP: u64 = 1 << 20;
    let f = open(backings, &r.memdev, false)?;
    let mut buf = vec![0u8; STEP.min(r.len) as usize];
    let mut pos = r.offset;
    while pos < r.offset + r.len {
        let n = STEP.min(r.offset + r.len - pos) as usize;
        f.read_exact_at(&mut buf[..n], pos)
            .with_context(|| format!("reading {}'s backing file at {pos:#x}", r.memdev))?;
        if let Some((p, want, got)) = pattern::first_mismatch(&r.seed, pos, &buf[..n]) {
            bail!(
                "host check: {}+{p:#x} holds {got:#04x}, expected {want:#04x} (pattern {:?}, range {:#x}+{:#x})",
                r.memdev,
                r.seed,
                r.offset,
                r.len
            );
        }
        pos += n as u64;
    }
    Ok(())
}

/// Checks the ranges `RESULTS/<case_id>.verify.json` lists, if the case wrote one.
pub fn verify_file(results: &Path, case_id: &str, backings: &Backings) -> Result<Option<String>> {
    let path = verify::verify_path(results, case_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let f = verify::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if f.case != case_id {
        bail!("{}: written by case {:?}", path.display(), f.case);
    }
    for r in &f.ranges {
        check_range(r, backings)?;
    }
    let bytes: u64 = f.ranges.iter().map(|r| r.len).sum();
    Ok(Some(format!(
        "host check: {} ranges ({bytes} bytes) of {} hold the patterns the case listed",
        f.ranges.len(),
        path.display()
    )))
}

/// After a run: the backing files the lab created in `run_dir` go away when every case passed
/// (a run keeps ~100 MiB to 1 GiB of device bytes otherwise); after a failure they stay, for a
/// look at the bytes. A backing file the topology put elsewhere is never touched.
pub fn discard_after(run_dir: &Path, backings: &Backings, failed: bool) {
    if failed {
        return;
    }
    for path in backings.values().filter(|p| p.starts_with(run_dir)) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::devices::{DaxDevice, Target};
    use lab_suite::expect::FILL_HEAD;

    #[test]
    fn backing_files_go_after_a_passing_run_and_stay_after_a_failure() {
        let run = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mine = run.path().join("mem0.raw");
        let theirs = outside.path().join("mem1.raw");
        let backings: Backings = [("mem0", &mine), ("mem1", &theirs)]
            .into_iter()
            .map(|(k, p)| {
                std::fs::write(p, b"x").unwrap();
                (k.to_string(), p.clone())
            })
            .collect();
        discard_after(run.path(), &backings, true);
        assert!(mine.exists() && theirs.exists());
        discard_after(run.path(), &backings, false);
        assert!(
            !mine.exists(),
            "the run's own backing file stays after a pass"
        );
        assert!(
            theirs.exists(),
            "a backing file outside the run directory was removed"
        );
    }

    fn map() -> DeviceMap {
        DeviceMap {
            memdevs: vec![],
            dax: vec![DaxDevice {
                name: "dax0.0".into(),
                region: "r".into(),
                kernel_region: "region0".into(),
                size: 1 << 20,
                hpa: 0,
                region_hpa: 0,
                ways: 2,
                granularity: 4096,
                targets: vec![
                    Target {
                        memdev: "a".into(),
                        dpa: 0,
                    },
                    Target {
                        memdev: "b".into(),
                        dpa: 0,
                    },
                ],
            }],
        }
    }

    #[test]
    fn verifies_across_interleaved_backings_and_catches_a_flipped_byte() {
        let d = tempfile::tempdir().unwrap();
        let mut backings = Backings::new();
        for id in ["a", "b"] {
            let p = d.path().join(id);
            std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
            backings.insert(id.into(), p);
        }
        let m = map();
        let (offset, len, seed) = (1000u64, 10_000u64, "s");
        // Write like the guest would: through the interleave.
        for pos in offset..offset + len {
            let b = m.dax[0].backing_of(pos).unwrap();
            open(&backings, &b.memdev, true)
                .unwrap()
                .write_all_at(&[pattern::byte(seed, pos)], b.offset)
                .unwrap();
        }
        let host = HostPart::VerifyAfter {
            dax: "dax0.0",
            offset,
            len,
            seed,
        };
        assert!(verify_after(&host, &m, &backings).unwrap().is_some());
        let b = m.dax[0].backing_of(offset + 5000).unwrap();
        open(&backings, &b.memdev, true)
            .unwrap()
            .write_all_at(&[!pattern::byte(seed, offset + 5000)], b.offset)
            .unwrap();
        let msg = verify_after(&host, &m, &backings).unwrap_err().to_string();
        assert!(msg.contains(&format!("{:#x}", offset + 5000)), "{msg}");
    }

    #[test]
    fn before_boot_writes_the_pattern() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::File::create(&p).unwrap().set_len(1 << 20).unwrap();
        let backings = Backings::from([("m".to_string(), p.clone())]);
        before_boot(
            &HostPart::WriteBeforeBoot {
                memdev: "m",
                offset: 4096,
                len: 16,
                seed: "q",
            },
            &backings,
        )
        .unwrap();
        let mut buf = [0u8; 16];
        std::fs::File::open(&p)
            .unwrap()
            .read_exact_at(&mut buf, 4096)
            .unwrap();
        assert_eq!(buf.to_vec(), pattern::fill("q", 4096, 16));
    }

    #[test]
    fn fill_plan_follows_region_order_and_interleave() {
        let topo = Topology::load_named("two-devices").unwrap();
        let plan = fill_plan(&topo, FILL_HEAD);
        let m = 1u64 << 20;
        let of = |d: &str| -> Vec<(u64, u64)> {
            plan.ranges
                .iter()
                .filter(|r| r.memdev == d)
                .map(|r| (r.offset, r.len))
                .collect()
        };
        // r0 (mem0, 512M), r2 (mem0+mem1, 1G: 512M each after r0/r1)
        assert_eq!(
            of("mem0"),
            [
                (0, FILL_HEAD),
                (512 * m - FILL_TAIL, FILL_TAIL),
                (512 * m, FILL_HEAD),
                (1024 * m - FILL_TAIL, FILL_TAIL)
            ]
        );
        assert_eq!(of("mem1"), of("mem0"));
        let one = fill_plan(&Topology::load_named("default").unwrap(), FILL_HEAD);
        assert_eq!(one.ranges.len(), 2);
        assert!(one.covers("mem0", 16 * m, 64 * m));
        assert!(!one.covers("mem0", 16 * m, FILL_HEAD));
        let big = fill_plan(&Topology::load_named("default").unwrap(), 240 * m);
        assert!(big.covers("mem0", 0, 240 * m));
    }

    #[test]
    fn fill_then_verify_file_catches_a_changed_byte() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m0");
        std::fs::File::create(&p).unwrap().set_len(8 << 20).unwrap();
        let backings = Backings::from([("mem0".to_string(), p.clone())]);
        let plan = FillPlan {
            ranges: vec![FillRange {
                memdev: "mem0".into(),
                offset: 4096,
                len: 3 << 20,
            }],
        };
        fill(&plan, &backings).unwrap();
        let results = d.path().join("results");
        std::fs::create_dir(&results).unwrap();
        assert!(verify_file(&results, "fault.x", &backings)
            .unwrap()
            .is_none());
        let vf = verify::VerifyFile {
            case: "fault.x".into(),
            ranges: vec![VerifyRange {
                memdev: "mem0".into(),
                offset: 8192,
                len: (2 << 20) + 5,
                seed: "mem0".into(),
            }],
        };
        let path = verify::verify_path(&results, "fault.x");
        std::fs::write(&path, serde_json::to_string(&vf).unwrap()).unwrap();
        assert!(verify_file(&results, "fault.x", &backings)
            .unwrap()
            .is_some());
        let at = 8192 + (1 << 20) + 3;
        open(&backings, "mem0", true)
            .unwrap()
            .write_all_at(&[!pattern::byte("mem0", at)], at)
            .unwrap();
        let msg = verify_file(&results, "fault.x", &backings)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&format!("mem0+{at:#x}")), "{msg}");
        assert!(verify_file(&results, "fault.y", &backings).is_ok());
        std::fs::write(verify::verify_path(&results, "fault.z"), "{").unwrap();
        assert!(verify_file(&results, "fault.z", &backings).is_err());
    }
}
