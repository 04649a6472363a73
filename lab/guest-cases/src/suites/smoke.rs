//! The smoke suite: the CXL/DAX plumbing every other suite stands on.

use crate::system::mapping::{aligned_window, open_dax, Mapping};
use crate::system::sysfs;
use crate::{setup, Outcome};
use anyhow::{bail, Context, Result};
use lab_suite::catalog::{HostPart, SMOKE_GUEST_WRITE, SMOKE_HOST_WRITE};
use lab_suite::devices::DeviceMap;
use lab_suite::pattern;
use lab_suite::plan::SetupPlan;

pub fn run(name: &str, plan: &SetupPlan, map: &DeviceMap) -> Result<Outcome> {
    match name {
        "memdevs" => memdevs(plan, map),
        "regions" => regions(plan, map),
        "devdax_guest_write" => guest_write(map),
        "devdax_host_write" => host_write(map),
        "region_bytes" => crate::suites::region_bytes::run(plan, map),
        "fsdev_bind" => fsdev_bind(plan, map),
        "hang_times_out" => crate::suites::selftest::hang(),
        _ => bail!("no smoke case {name:?}"),
    }
}

fn memdevs(plan: &SetupPlan, map: &DeviceMap) -> Result<Outcome> {
    for pm in &plan.memdevs {
        let m = map
            .memdev(&pm.id)
            .with_context(|| format!("memdev {} (serial {:#x}) missing", pm.id, pm.serial))?;
        if m.ram_size != pm.size {
            bail!(
                "{} ({}): ram size {:#x}, planned {:#x}",
                pm.id,
                m.name,
                m.ram_size,
                pm.size
            );
        }
        println!(
            "{} is {} with {} MiB of volatile memory",
            pm.id,
            m.name,
            m.ram_size >> 20
        );
    }
    Ok(Outcome::Pass)
}

fn regions(plan: &SetupPlan, map: &DeviceMap) -> Result<Outcome> {
    for r in &plan.regions {
        let dax: Vec<_> = map.dax.iter().filter(|d| d.region == r.name).collect();
        let Some(first) = dax.first() else {
            bail!("region {}: no dax device", r.name)
        };
        if first.ways != r.devices.len() as u64 {
            bail!(
                "region {}: {} ways, planned {}",
                r.name,
                first.ways,
                r.devices.len()
            );
        }
        if let Some(size) = r.size {
            let total: u64 = dax.iter().map(|d| d.size).sum();
            if total != size {
                bail!(
                    "region {}: dax devices hold {total:#x} bytes, planned {size:#x}",
                    r.name
                );
            }
        }
        for d in &dax {
            println!(
                "{} = {} ({} MiB, {}-way, granularity {})",
                r.name,
                d.name,
                d.size >> 20,
                d.ways,
                d.granularity
            );
        }
    }
    Ok(Outcome::Pass)
}

fn guest_write(map: &DeviceMap) -> Result<Outcome> {
    let HostPart::VerifyAfter {
        dax,
        offset,
        len,
        seed,
    } = SMOKE_GUEST_WRITE
    else {
        unreachable!()
    };
    if map.dax(dax).is_none() {
        return Ok(Outcome::Skip(format!("no {dax} in this topology")));
    }
    setup::bind_devdax(dax)?;
    let file = open_dax(dax)?;
    let (start, wlen) = aligned_window(offset, len)?;
    let mut m = Mapping::shared(&file, start, wlen, true).with_context(|| format!("mmap {dax}"))?;
    let at = (offset - start) as usize;
    m.bytes_mut()[at..at + len as usize].copy_from_slice(&pattern::fill(
        seed,
        offset,
        len as usize,
    ));
    if let Some((pos, want, got)) =
        pattern::first_mismatch(seed, offset, &m.bytes()[at..at + len as usize])
    {
        bail!("{dax}: read back {got:#04x} at {pos:#x}, wrote {want:#04x}");
    }
    println!("wrote {len} bytes of pattern {seed:?} at {dax}+{offset:#x}; the host checks its backing file");
    Ok(Outcome::Pass)
}

fn host_write(map: &DeviceMap) -> Result<Outcome> {
    let HostPart::WriteBeforeBoot {
        memdev,
        offset,
        len,
        seed,
    } = SMOKE_HOST_WRITE
    else {
        unreachable!()
    };
    let Some((dax, dax_off)) = map
        .dax
        .iter()
        .find_map(|d| Some((d, d.offset_of(memdev, offset)?)))
    else {
        return Ok(Outcome::Skip(format!(
            "no dax device maps {memdev}+{offset:#x}"
        )));
    };
    setup::bind_devdax(&dax.name)?;
    let file = open_dax(&dax.name)?;
    // The host's contiguous bytes, piece by piece where the interleave puts them: each
    // granularity chunk of the backing file is contiguous in the dax device.
    let pieces = dax
        .pieces_of(memdev, offset, len)
        .with_context(|| format!("{memdev}+{offset:#x}+{len:#x} is not all in {}", dax.name))?;
    let lo = pieces.iter().map(|p| p.0).min().unwrap_or(dax_off);
    let hi = pieces
        .iter()
        .map(|p| p.0 + p.2)
        .max()
        .unwrap_or(dax_off + len);
    let (start, wlen) = aligned_window(lo, hi - lo)?;
    let m =
        Mapping::shared(&file, start, wlen, false).with_context(|| format!("mmap {}", dax.name))?;
    for (at_dax, at_backing, n) in &pieces {
        let at = (at_dax - start) as usize;
        if let Some((pos, want, got)) =
            pattern::first_mismatch(seed, *at_backing, &m.bytes()[at..at + *n as usize])
        {
            bail!("{}+{at_dax:#x}: backing byte {pos:#x} of {memdev} reads {got:#04x}, the host wrote {want:#04x}", dax.name);
        }
    }
    println!(
        "{} ({}-way) holds the {len} bytes the host wrote at {memdev}+{offset:#x}, in {} pieces from {}+{dax_off:#x}",
        dax.name,
        dax.ways,
        pieces.len(),
        dax.name
    );
    Ok(Outcome::Pass)
}

fn fsdev_bind(plan: &SetupPlan, map: &DeviceMap) -> Result<Outcome> {
    if plan.regions.is_empty() {
        return Ok(Outcome::Skip("the topology plans no regions".into()));
    }
    if map.dax.is_empty() {
        bail!("no dax devices");
    }
    for d in &map.dax {
        setup::bind_fsdev(&d.name)?;
        let file = open_dax(&d.name)?;
        match Mapping::shared(&file, 0, 2 << 20, false) {
            Ok(_) => bail!(
                "{}: mmap succeeded while bound to fsdev_dax (it has no mmap)",
                d.name
            ),
            Err(e) => println!("{}: bound to fsdev_dax; mmap refused: {e}", d.name),
        }
        let driver = sysfs::driver_of(&std::path::Path::new("/sys/bus/dax/devices").join(&d.name));
        if driver.as_deref() != Some("fsdev_dax") {
            bail!("{}: driver is {driver:?}", d.name);
        }
    }
    Ok(Outcome::Pass)
}
