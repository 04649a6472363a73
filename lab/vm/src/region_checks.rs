//! Semantic checks of `regions`: devices, windows, interleave ways and capacity left.

use crate::rules::{granularity_ok, tagged, Problems, CXL_ALIGN, INTERLEAVE_WAYS};
use crate::size::ByteSize;
use crate::topology::{Region, Topology};
use crate::yaml_locate::{path, KeyPath};
use std::collections::{HashMap, HashSet};

pub(crate) fn check_regions(t: &Topology, p: &mut Problems) {
    let mut names = HashSet::new();
    let mut free: HashMap<&str, u64> = t
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.size.0))
        .collect();
    let mut window_used = vec![0u64; t.windows.len()];
    for (i, r) in t.regions.iter().enumerate() {
        let at = path("regions").index(i);
        let name_ok = !r.name.is_empty()
            && r.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !name_ok {
            p.push((
                at.key("name"),
                format!("name {:?} must be letters, digits, '-', '_'", r.name),
            ));
        } else if !names.insert(r.name.as_str()) {
            p.push((
                at.key("name"),
                format!("duplicate region name {:?}", r.name),
            ));
        }
        if let Some(g) = r.granularity.filter(|g| !granularity_ok(*g)) {
            p.push((
                at.key("granularity"),
                format!("{g} must be a power of two from 256 to 16K"),
            ));
        }
        let before = p.len();
        let resolved = check_region_devices(t, r, &at, p);
        if !resolved || p.len() > before {
            continue; // sizes make no sense over bad devices
        }
        let ways = r.devices.len() as u64;
        let per_device_free = r
            .devices
            .iter()
            .map(|d| free.get(d.as_str()).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let size = match r.size {
            Some(s) if s.0 == 0 || s.0 % (CXL_ALIGN * ways) != 0 => {
                p.push((
                    at.key("size"),
                    format!(
                        "size {s} must be a non-zero multiple of {} (256M per device)",
                        ByteSize(CXL_ALIGN * ways)
                    ),
                ));
                continue;
            }
            Some(s) => s.0,
            None => per_device_free / CXL_ALIGN * CXL_ALIGN * ways,
        };
        if size == 0 || size / ways > per_device_free {
            p.push((
                at.key("size"),
                tagged(
                    "device-capacity",
                    format!(
                        "needs {} on each of its devices but only {} is free on the fullest one",
                        ByteSize(size / ways),
                        ByteSize(per_device_free)
                    ),
                ),
            ));
            continue;
        }
        for d in &r.devices {
            free.entry(d.as_str()).and_modify(|f| *f -= size / ways);
        }
        window_used[r.window] += size;
        if window_used[r.window] > t.windows[r.window].size.0 {
            p.push((
                at.key("size"),
                tagged(
                    "window-capacity",
                    format!(
                        "regions in window {} exceed its size {}",
                        r.window, t.windows[r.window].size
                    ),
                ),
            ));
        }
    }
}

/// Checks the region's window and devices; false when sizes cannot be checked.
fn check_region_devices(t: &Topology, r: &Region, at: &KeyPath, p: &mut Problems) -> bool {
    let Some(window) = t.windows.get(r.window) else {
        p.push((
            at.key("window"),
            format!(
                "window {} does not exist ({} windows)",
                r.window,
                t.windows.len()
            ),
        ));
        return false;
    };
    if !INTERLEAVE_WAYS.contains(&r.devices.len()) {
        p.push((
            at.key("devices"),
            format!(
                "{} devices: a region interleaves 1, 2, 3, 4, 6, 8, 12 or 16",
                r.devices.len()
            ),
        ));
    }
    let mut per_bridge: HashMap<&str, usize> =
        window.targets.iter().map(|t| (t.as_str(), 0)).collect();
    let mut seen = HashSet::new();
    let mut unresolved = false;
    for (k, id) in r.devices.iter().enumerate() {
        let at = at.key("devices").index(k);
        let Some(dev) = t.device(id) else {
            p.push((at, format!("unknown device {id:?}")));
            continue;
        };
        if !seen.insert(id) {
            p.push((at, format!("device {id} listed twice")));
            continue;
        }
        let Some(hb) = t.host_bridge_of(dev) else {
            unresolved = true; // its bad root_port is reported under devices
            continue;
        };
        match per_bridge.get_mut(hb.id.as_str()) {
            Some(n) => *n += 1,
            None => p.push((
                at,
                tagged(
                    "window-targets",
                    format!(
                        "device {id} is under host bridge {} which window {} does not target",
                        hb.id, r.window
                    ),
                ),
            )),
        }
    }
    if unresolved {
        return false;
    }
    let counts: HashSet<usize> = per_bridge.values().copied().collect();
    if counts.len() > 1 || counts.contains(&0) {
        p.push((
            at.key("devices"),
            tagged(
                "bridge-balance",
                format!(
                    "window {} targets [{}]: the region needs the same number of devices under each",
                    r.window,
                    window.targets.join(", ")
                ),
            ),
        ));
    }
    true
}
