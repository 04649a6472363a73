//! Creating a CXL RAM region through the kernel's sysfs ABI (the steps
//! `cxl create-region -t ram` takes; bookworm's ndctl 76 refuses ram
//! regions): name it on the root decoder, set interleave, allocate DPA on
//! one free endpoint decoder per device, size it, attach the targets in
//! order, commit, and bind the region driver.

use crate::system::sysfs;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CXL: &str = "/sys/bus/cxl/devices";

/// What to create.
pub struct RegionRequest<'a> {
    /// Root decoder, e.g. `decoder0.0`.
    pub root: &'a str,
    /// Kernel memdev names in interleave order.
    pub memdevs: &'a [String],
    /// Bytes per device.
    pub per_device: u64,
    pub granularity: Option<u64>,
}

/// Creates the region; returns its name (`regionN`).
pub fn create(req: &RegionRequest) -> Result<String> {
    let root = Path::new(CXL).join(req.root);
    let name = sysfs::read(root.join("create_ram_region"))?;
    sysfs::write(root.join("create_ram_region"), &name).with_context(|| {
        format!(
            "{}: cannot create a ram region (is the window's type volatile?)",
            req.root
        )
    })?;
    let region = Path::new(CXL).join(&name);
    let result = fill(req, &region);
    if let Err(e) = result {
        let _ = sysfs::write(root.join("delete_region"), &name);
        return Err(e.context(format!("creating {name} on {}", req.root)));
    }
    Ok(name)
}

fn fill(req: &RegionRequest, region: &Path) -> Result<()> {
    let ways = req.memdevs.len() as u64;
    let granularity = match req.granularity {
        Some(g) => g,
        None => sysfs::read_u64(Path::new(CXL).join(req.root).join("interleave_granularity"))?,
    };
    sysfs::write(
        region.join("interleave_granularity"),
        &granularity.to_string(),
    )?;
    sysfs::write(region.join("interleave_ways"), &ways.to_string())?;
    let mut endpoints = Vec::new();
    for memdev in req.memdevs {
        let decoder = free_endpoint_decoder(memdev)?;
        sysfs::write(decoder.join("mode"), "ram")?;
        sysfs::write(decoder.join("dpa_size"), &req.per_device.to_string())
            .with_context(|| format!("{memdev}: allocating {} bytes of DPA", req.per_device))?;
        endpoints.push(decoder);
    }
    sysfs::write(region.join("size"), &(req.per_device * ways).to_string())?;
    for (pos, decoder) in endpoints.iter().enumerate() {
        let name = decoder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        sysfs::write(region.join(format!("target{pos}")), name)?;
    }
    sysfs::write(region.join("commit"), "1")?;
    let region_name = region
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if sysfs::driver_of(region).is_none() {
        sysfs::write("/sys/bus/cxl/drivers/cxl_region/bind", region_name)?;
    }
    sysfs::wait_for_every(
        &format!("{region_name} bound to cxl_region"),
        Duration::from_secs(10),
        super::SETUP_POLL,
        || sysfs::driver_of(region).is_some().then_some(()),
    )
}

/// The endpoint port of a memdev (the port whose `uport` is the memdev).
pub fn endpoint_of(memdev: &str) -> Result<PathBuf> {
    sysfs::list(CXL, "endpoint")
        .into_iter()
        .map(|e| Path::new(CXL).join(e))
        .find(|e| {
            std::fs::read_link(e.join("uport"))
                .ok()
                .and_then(|t| t.file_name().map(|n| n == memdev))
                .unwrap_or(false)
        })
        .with_context(|| format!("no CXL endpoint port for {memdev}"))
}

/// The memdev of an endpoint decoder (`decoderX.Y` under `endpointX`).
pub fn memdev_of_decoder(decoder: &str) -> Result<String> {
    let port = decoder
        .strip_prefix("decoder")
        .and_then(|r| r.split('.').next())
        .with_context(|| format!("{decoder} is not a decoder name"))?;
    let uport = std::fs::read_link(Path::new(CXL).join(format!("endpoint{port}")).join("uport"))
        .with_context(|| format!("{decoder}: no endpoint{port}/uport"))?;
    uport
        .file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .with_context(|| format!("{decoder}: bad uport link"))
}

/// The first endpoint decoder of `memdev` with no DPA allocated (the
/// kernel requires them to be used in order).
fn free_endpoint_decoder(memdev: &str) -> Result<PathBuf> {
    let endpoint = endpoint_of(memdev)?;
    let port = endpoint
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("endpoint"))
        .context("endpoint name")?
        .to_string();
    for d in sysfs::list(&endpoint, &format!("decoder{port}.")) {
        let dir = endpoint.join(&d);
        if sysfs::read_u64(dir.join("dpa_size")).unwrap_or(1) == 0 {
            return Ok(Path::new(CXL).join(d));
        }
    }
    bail!(
        "{memdev}: every endpoint decoder of {} is in use",
        endpoint.display()
    )
}
