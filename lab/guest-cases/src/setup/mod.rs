//! In-guest setup: find the CXL memdevs by serial number, create the
//! planned RAM regions, and record where every dax device's bytes live.

pub mod region;

use crate::system::sysfs;
use anyhow::{Context, Result};
use lab_suite::devices::{DaxDevice, DeviceMap, Memdev, Target};
use lab_suite::plan::{PlannedRegion, SetupPlan};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const CXL: &str = "/sys/bus/cxl/devices";
const DAX: &str = "/sys/bus/dax/devices";
/// How often the setup polls sysfs for what the kernel probes asynchronously.
pub(crate) const SETUP_POLL: Duration = Duration::from_millis(5);

/// Runs the plan and returns the device map. Each step ends with a line in the kernel log
/// ([`mark`]), which `lab bench boot` cuts its stages at.
pub fn run(plan: &SetupPlan) -> Result<DeviceMap> {
    let by_serial = wait_for_memdevs(plan)?;
    mark("memdevs");
    let mut memdevs = Vec::new();
    for pm in &plan.memdevs {
        let name = by_serial
            .get(&pm.serial)
            .cloned()
            .context("memdev vanished")?;
        let ram_size = sysfs::read_u64(format!("{CXL}/{name}/ram/size"))?;
        memdevs.push(Memdev {
            name,
            id: pm.id.clone(),
            serial: pm.serial,
            ram_size,
            backing: pm.backing.clone(),
        });
    }
    // DPA each memdev has given to the regions created so far (allocated from 0, in order).
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    let mut created = Vec::new();
    for region in &plan.regions {
        created.push(create_region(region, &memdevs, &mut used)?);
    }
    mark("regions");
    // Every region is committed before the first dax device is waited for: their probes overlap.
    let mut dax = Vec::new();
    for (region, kernel_region) in plan.regions.iter().zip(&created) {
        dax.extend(describe_region(region, kernel_region, &memdevs)?);
    }
    mark("dax");
    Ok(DeviceMap { memdevs, dax })
}

/// `famfs-lab: setup: <step>` in the kernel log (notice level: on the console). Best effort:
/// the setup does not depend on it.
fn mark(step: &str) {
    use std::io::Write;
    if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = kmsg.write_all(format!("<5>famfs-lab: setup: {step}\n").as_bytes());
    }
}

/// Waits until every planned serial number is a memdev (probing is async).
fn wait_for_memdevs(plan: &SetupPlan) -> Result<BTreeMap<u64, String>> {
    let want: Vec<u64> = plan.memdevs.iter().map(|m| m.serial).collect();
    let found = sysfs::wait_for_every(
        "the CXL memdevs",
        Duration::from_secs(20),
        SETUP_POLL,
        || {
            let map: BTreeMap<u64, String> = sysfs::list(CXL, "mem")
                .into_iter()
                .filter_map(|n| Some((sysfs::read_u64(format!("{CXL}/{n}/serial")).ok()?, n)))
                .collect();
            want.iter().all(|s| map.contains_key(s)).then_some(map)
        },
    );
    found.with_context(|| {
        let have = sysfs::list(CXL, "mem").join(" ");
        format!("planned serials {want:x?}; present memdevs: [{have}]")
    })
}

/// Creates `region`; a region without a size takes what its devices have left after the
/// regions before it (`used`, which this updates).
fn create_region(
    region: &PlannedRegion,
    memdevs: &[Memdev],
    used: &mut BTreeMap<String, u64>,
) -> Result<String> {
    let names: Vec<String> = region
        .devices
        .iter()
        .map(|id| {
            memdevs
                .iter()
                .find(|m| &m.id == id)
                .map(|m| m.name.clone())
                .with_context(|| format!("region {}: no memdev {id}", region.name))
        })
        .collect::<Result<_>>()?;
    let decoder = format!("decoder0.{}", region.window);
    sysfs::wait_for_every(&decoder, Duration::from_secs(10), SETUP_POLL, || {
        Path::new(CXL).join(&decoder).exists().then_some(())
    })?;
    let per_device = match region.size {
        Some(size) => size / names.len() as u64,
        None => free_share(memdevs, &region.devices, used),
    };
    for id in &region.devices {
        *used.entry(id.clone()).or_insert(0) += per_device;
    }
    crate::setup::region::create(&crate::setup::region::RegionRequest {
        root: &decoder,
        memdevs: &names,
        per_device,
        granularity: region.granularity,
    })
    .with_context(|| format!("region {}", region.name))
}

/// The largest share every one of `devices` still has free, in whole 256 MiB units (the
/// region size must be a multiple of 256 MiB x ways).
fn free_share(memdevs: &[Memdev], devices: &[String], used: &BTreeMap<String, u64>) -> u64 {
    const UNIT: u64 = 256 << 20;
    memdevs
        .iter()
        .filter(|m| devices.contains(&m.id))
        .map(|m| {
            m.ram_size
                .saturating_sub(used.get(&m.id).copied().unwrap_or(0))
        })
        .min()
        .unwrap_or(0)
        / UNIT
        * UNIT
}

pub(crate) fn describe_region(
    region: &PlannedRegion,
    kernel_region: &str,
    memdevs: &[Memdev],
) -> Result<Vec<DaxDevice>> {
    let rdir = Path::new(CXL).join(kernel_region);
    let ways = sysfs::read_u64(rdir.join("interleave_ways"))?;
    let granularity = sysfs::read_u64(rdir.join("interleave_granularity"))?;
    let region_hpa = sysfs::read_u64(rdir.join("resource"))?;
    let mut targets = Vec::new();
    for pos in 0..ways {
        let decoder = sysfs::read(rdir.join(format!("target{pos}")))?;
        let ddir = sysfs::real(Path::new(CXL).join(&decoder))?;
        let dpa = sysfs::read_u64(ddir.join("dpa_resource"))?;
        let memdev_name = crate::setup::region::memdev_of_decoder(&decoder)?;
        let id = memdevs
            .iter()
            .find(|m| m.name == memdev_name)
            .map(|m| m.id.clone())
            .unwrap_or_else(|| memdev_name.to_string());
        targets.push(Target { memdev: id, dpa });
    }
    let dax_region = format!("dax_{kernel_region}");
    let names = sysfs::wait_for_every(
        &format!("a dax device in {kernel_region}"),
        Duration::from_secs(10),
        SETUP_POLL,
        || {
            let names: Vec<String> = sysfs::list(rdir.join(&dax_region), "dax")
                .into_iter()
                .filter(|n| {
                    sysfs::read_u64(format!("{DAX}/{n}/size"))
                        .map(|s| s > 0)
                        .unwrap_or(false)
                })
                .collect();
            (!names.is_empty()).then_some(names)
        },
    )?;
    names
        .into_iter()
        .map(|name| {
            let size = sysfs::read_u64(format!("{DAX}/{name}/size"))?;
            let hpa = sysfs::read_u64(format!("{DAX}/{name}/resource")).unwrap_or(region_hpa);
            Ok(DaxDevice {
                name,
                region: region.name.clone(),
                kernel_region: kernel_region.to_string(),
                size,
                hpa,
                region_hpa,
                ways,
                granularity,
                targets: targets.clone(),
            })
        })
        .collect()
}

/// Rebinds `dax` (e.g. `dax0.0`) from device_dax to fsdev_dax.
pub fn bind_fsdev(dax: &str) -> Result<()> {
    let dev = Path::new(DAX).join(dax);
    // fsdev_dax binds through new_id (its driver_attach); a plain `bind` silently does nothing.
    // A new dax device's own probe by device_dax can still be on its way when we look: it may
    // win the device after our new_id (seen after a region was rebuilt: 1 run in 10 stuck
    // until the timeout), so whoever holds it is unbound and new_id asked again.
    let mut last_ask: Option<Instant> = None;
    let mut failure = None;
    let bound = sysfs::wait_for_every(
        &format!("{dax} bound to fsdev_dax"),
        Duration::from_secs(30),
        SETUP_POLL,
        || {
            let step = match sysfs::driver_of(&dev).as_deref() {
                Some("fsdev_dax") => return Some(()),
                Some(other) => {
                    if last_ask.is_some() {
                        // In the kernel log, where the run's serial log keeps it.
                        let _ = std::fs::write(
                            "/dev/kmsg",
                            format!("famfs-lab: {dax} went to {other} after new_id: asking fsdev_dax again\n"),
                        );
                    }
                    sysfs::write(format!("/sys/bus/dax/drivers/{other}/unbind"), dax).map(|_| true)
                }
                None => Ok(last_ask.is_none_or(|t| t.elapsed() >= REASK)),
            };
            match step.and_then(|ask| {
                if ask {
                    last_ask = Some(Instant::now());
                    sysfs::write("/sys/bus/dax/drivers/fsdev_dax/new_id", dax)?;
                }
                Ok(())
            }) {
                Ok(()) => None,
                Err(e) => {
                    failure = Some(e);
                    Some(())
                }
            }
        },
    );
    match failure {
        Some(e) => Err(e),
        None => bound,
    }
}

/// How long [`bind_fsdev`] waits for an unbound device to be bound before it asks again.
const REASK: Duration = Duration::from_millis(200);

/// Rebinds `dax` from fsdev_dax back to device_dax (raw mmap).
pub fn bind_devdax(dax: &str) -> Result<()> {
    let dev = Path::new(DAX).join(dax);
    match sysfs::driver_of(&dev).as_deref() {
        Some("device_dax") => return Ok(()),
        Some(other) => {
            sysfs::write(format!("/sys/bus/dax/drivers/{other}/unbind"), dax)?;
            let _ = sysfs::write(format!("/sys/bus/dax/drivers/{other}/remove_id"), dax);
        }
        None => {}
    }
    sysfs::write("/sys/bus/dax/drivers/device_dax/bind", dax)?;
    sysfs::wait_for_every(
        &format!("{dax} bound to device_dax"),
        Duration::from_secs(5),
        SETUP_POLL,
        || (sysfs::driver_of(&dev).as_deref() == Some("device_dax")).then_some(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memdev(id: &str, ram_size: u64) -> Memdev {
        Memdev {
            name: id.into(),
            id: id.into(),
            serial: 0,
            ram_size,
            backing: String::new(),
        }
    }

    #[test]
    fn a_region_without_a_size_takes_what_its_devices_have_left() {
        const M: u64 = 1 << 20;
        let devs = [memdev("mem0", 1024 * M), memdev("mem1", 768 * M)];
        let mut used = BTreeMap::new();
        let both = ["mem0".to_string(), "mem1".to_string()];
        assert_eq!(free_share(&devs, &both, &used), 768 * M);
        used.insert("mem0".to_string(), 512 * M);
        assert_eq!(free_share(&devs, &both, &used), 512 * M);
        assert_eq!(free_share(&devs, &both[..1], &used), 512 * M);
        // Whole 256 MiB units only.
        used.insert("mem1".to_string(), 600 * M);
        assert_eq!(free_share(&devs, &both, &used), 0);
    }
}
