//! `smoke.region_bytes`: host and guest agree on every region's bytes. For each planned
//! region the guest checks that its dax devices list the region's devices in the planned
//! interleave order, reads the host's fill pattern at both ends of every dax device (the host
//! wrote it before boot at the backing offsets the topology gives each region), and writes its
//! own pattern into the smoke area of every dax device, listing where those bytes must land in
//! the backing files for the host to check after the case.

use crate::harness::check::Checks;
use crate::system::mapping::{aligned_window, open_dax, Mapping};
use crate::{setup, Outcome};
use anyhow::{Context, Result};
use lab_suite::devices::{DaxDevice, DeviceMap};
use lab_suite::expect::{dax_ranges, range_bytes};
use lab_suite::plan::SetupPlan;
use lab_suite::verify::{self, VerifyFile, VerifyRange};
use std::path::Path;

const CASE: &str = "smoke.region_bytes";
/// Bytes read at each end of a dax device: more than one full stripe at 16K x 4 ways, and
/// inside the host's fill (1 MiB of each device's share at the head, 2 MiB at the tail).
const CHECK_LEN: u64 = 256 << 10;
/// Where the guest writes, inside the smoke suite's area `[0, 16 MiB)` of every dax device
/// (the other smoke cases use 4 and 6 MiB).
const WRITE_AT: u64 = 8 << 20;
const WRITE_LEN: u64 = 256 << 10;
const SEED: &str = "smoke-region-bytes";

pub fn run(plan: &SetupPlan, map: &DeviceMap) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut verify_ranges = Vec::new();
    for r in &plan.regions {
        let dax: Vec<&DaxDevice> = map.dax.iter().filter(|d| d.region == r.name).collect();
        let Some(first) = dax.first() else {
            c.fail(format!("region {}: no dax device", r.name));
            continue;
        };
        let order: Vec<&str> = first.targets.iter().map(|t| t.memdev.as_str()).collect();
        let planned: Vec<&str> = r.devices.iter().map(String::as_str).collect();
        c.eq(
            format!("region {}: devices in interleave order", r.name),
            order,
            planned,
        );
        for d in dax {
            verify_ranges.extend(check_device(&mut c, d)?);
        }
    }
    let f = VerifyFile {
        case: CASE.into(),
        ranges: verify::coalesce(verify_ranges),
    };
    let path = verify::verify_path(Path::new(verify::GUEST_RESULTS), CASE);
    std::fs::write(&path, serde_json::to_string(&f)?)
        .with_context(|| format!("writing {} (is the results share mounted?)", path.display()))?;
    println!(
        "{} backing ranges for the host to check in {}",
        f.ranges.len(),
        path.display()
    );
    Ok(c.outcome())
}

/// Reads the fill at both ends of `d`, writes the guest's pattern; returns what the host checks.
fn check_device(c: &mut Checks, d: &DaxDevice) -> Result<Vec<VerifyRange>> {
    setup::bind_devdax(&d.name)?;
    let file = open_dax(&d.name)?;
    let len = CHECK_LEN.min(d.size);
    for off in [0, d.size - len] {
        let want = range_bytes(&dax_ranges(d, off, len, None)?);
        let (start, wlen) = aligned_window(off, len)?;
        let m = Mapping::shared(&file, start, wlen, false)
            .with_context(|| format!("mmap {} at {start:#x}", d.name))?;
        let at = (off - start) as usize;
        c.bytes(
            format!(
                "{} +{off:#x}: the host's fill ({}-way, granularity {})",
                d.name, d.ways, d.granularity
            ),
            off,
            &m.bytes()[at..at + len as usize],
            &want,
        );
    }
    if d.size < WRITE_AT + WRITE_LEN {
        c.note(format!(
            "{}: {} bytes, too small for the write at {WRITE_AT:#x}",
            d.name, d.size
        ));
        return Ok(Vec::new());
    }
    let ranges = dax_ranges(d, WRITE_AT, WRITE_LEN, Some(SEED))?;
    let bytes = range_bytes(&ranges);
    let (start, wlen) = aligned_window(WRITE_AT, WRITE_LEN)?;
    let mut m = Mapping::shared(&file, start, wlen, true)
        .with_context(|| format!("mmap {} at {start:#x} for writing", d.name))?;
    let at = (WRITE_AT - start) as usize;
    m.bytes_mut()[at..at + bytes.len()].copy_from_slice(&bytes);
    c.bytes(
        format!("{} +{WRITE_AT:#x}: the guest's pattern reads back", d.name),
        WRITE_AT,
        &m.bytes()[at..at + bytes.len()],
        &bytes,
    );
    Ok(ranges)
}
