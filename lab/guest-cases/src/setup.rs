//! In-guest setup: find the CXL memdevs by serial number, create the
//! planned RAM regions, and record where every dax device's bytes live.

use crate::sysfs;
use anyhow::{Context, Result};
use famfs_lab_cases::devices::{DaxDevice, DeviceMap, Memdev, Target};
use famfs_lab_cases::plan::{PlannedRegion, SetupPlan};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const CXL: &str = "/sys/bus/cxl/devices";
const DAX: &str = "/sys/bus/dax/devices";

/// Runs the plan and returns the device map.
pub fn run(plan: &SetupPlan) -> Result<DeviceMap> {
    let by_serial = wait_for_memdevs(plan)?;
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
    let mut dax = Vec::new();
    for region in &plan.regions {
        let kernel_region = create_region(region, &memdevs)?;
        dax.extend(describe_region(region, &kernel_region, &memdevs)?);
    }
    Ok(DeviceMap { memdevs, dax })
}

/// Waits until every planned serial number is a memdev (probing is async).
fn wait_for_memdevs(plan: &SetupPlan) -> Result<BTreeMap<u64, String>> {
    let want: Vec<u64> = plan.memdevs.iter().map(|m| m.serial).collect();
    let found = sysfs::wait_for("the CXL memdevs", Duration::from_secs(20), || {
        let map: BTreeMap<u64, String> = sysfs::list(CXL, "mem")
            .into_iter()
            .filter_map(|n| Some((sysfs::read_u64(format!("{CXL}/{n}/serial")).ok()?, n)))
            .collect();
        want.iter().all(|s| map.contains_key(s)).then_some(map)
    });
    found.with_context(|| {
        let have = sysfs::list(CXL, "mem").join(" ");
        format!("planned serials {want:x?}; present memdevs: [{have}]")
    })
}

fn create_region(region: &PlannedRegion, memdevs: &[Memdev]) -> Result<String> {
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
    sysfs::wait_for(&decoder, Duration::from_secs(10), || {
        Path::new(CXL).join(&decoder).exists().then_some(())
    })?;
    let per_device = match region.size {
        Some(size) => size / names.len() as u64,
        None => memdevs
            .iter()
            .filter(|m| region.devices.contains(&m.id))
            .map(|m| m.ram_size)
            .min()
            .unwrap_or(0),
    };
    crate::region::create(&crate::region::RegionRequest {
        root: &decoder,
        memdevs: &names,
        per_device,
        granularity: region.granularity,
    })
    .with_context(|| format!("region {}", region.name))
}

fn describe_region(
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
        let memdev_name = crate::region::memdev_of_decoder(&decoder)?;
        let id = memdevs
            .iter()
            .find(|m| m.name == memdev_name)
            .map(|m| m.id.clone())
            .unwrap_or_else(|| memdev_name.to_string());
        targets.push(Target { memdev: id, dpa });
    }
    let dax_region = format!("dax_{kernel_region}");
    let names = sysfs::wait_for(
        &format!("a dax device in {kernel_region}"),
        Duration::from_secs(10),
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
    match sysfs::driver_of(&dev).as_deref() {
        Some("fsdev_dax") => return Ok(()),
        Some(other) => sysfs::write(format!("/sys/bus/dax/drivers/{other}/unbind"), dax)?,
        None => {}
    }
    // fsdev_dax binds through new_id; a plain `bind` silently does nothing.
    sysfs::write("/sys/bus/dax/drivers/fsdev_dax/new_id", dax)?;
    sysfs::wait_for(
        &format!("{dax} bound to fsdev_dax"),
        Duration::from_secs(5),
        || (sysfs::driver_of(&dev).as_deref() == Some("fsdev_dax")).then_some(()),
    )
}

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
    sysfs::wait_for(
        &format!("{dax} bound to device_dax"),
        Duration::from_secs(5),
        || (sysfs::driver_of(&dev).as_deref() == Some("device_dax")).then_some(()),
    )
}
