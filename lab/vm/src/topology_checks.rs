//! Semantic checks of a parsed [`Topology`]: each problem names its key path, which
//! [`crate::yaml_locate::line_of`] turns into a line.

use crate::decoder_checks::check_decoders;
use crate::region_checks::check_regions;
use crate::rules::{granularity_ok, tagged, Problems, CXL_ALIGN, INTERLEAVE_WAYS};
use crate::size::{ByteSize, MIB};
use crate::topology::Topology;
use crate::yaml_locate::{path, KeyPath};
use std::collections::{HashMap, HashSet};

/// Ids the QEMU command line uses itself.
pub const RESERVED_IDS: [&str; 7] = [
    "pcie.0", "qmp", "serial0", "agent", "vser0", "results", "rng0",
];

/// Guests one multi-host run boots at most (each is a QEMU process with its own memory).
pub const MAX_HOSTS: u32 = 4;

impl Topology {
    /// All semantic problems, in file order of the sections; empty when the topology is usable.
    pub fn validate(&self) -> Problems {
        let mut p = Problems::new();
        check_machine(self, &mut p);
        check_bridges(self, &mut p);
        check_devices(self, &mut p);
        check_windows(self, &mut p);
        check_regions(self, &mut p);
        // The decoder model reasons about well-formed regions only.
        if p.is_empty() {
            check_decoders(self, &mut p);
        }
        p
    }
}

fn qemu_id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn check_id(id: &str, at: KeyPath, seen: &mut HashSet<String>, p: &mut Problems) {
    if !qemu_id_ok(id) {
        p.push((
            at,
            format!(
                "id {id:?} must start with a letter and hold only letters, digits, '-', '.', '_'"
            ),
        ));
    } else if RESERVED_IDS.contains(&id) || id.starts_with("vmem-") {
        p.push((
            at,
            format!("id {id:?} is reserved by the lab's QEMU command line"),
        ));
    } else if !seen.insert(id.to_string()) {
        p.push((
            at,
            format!(
                "duplicate id {id:?} (host bridge, root port and device ids share one namespace)"
            ),
        ));
    }
}

fn check_machine(t: &Topology, p: &mut Problems) {
    let name_ok = !t.name.is_empty()
        && t.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !name_ok {
        p.push((
            path("name"),
            format!(
                "name {:?} must be non-empty letters, digits, '-', '_', '.'",
                t.name
            ),
        ));
    }
    if t.memory.0 < 64 * MIB || !t.memory.0.is_multiple_of(MIB) {
        p.push((
            path("memory"),
            format!(
                "memory {} must be at least 64M and a whole number of MiB",
                t.memory
            ),
        ));
    }
    if !(1..=64).contains(&t.cpus) {
        p.push((path("cpus"), format!("cpus {} must be in 1..=64", t.cpus)));
    }
    if !(1..=MAX_HOSTS).contains(&t.hosts) {
        p.push((
            path("hosts"),
            format!("hosts {} must be in 1..={MAX_HOSTS}", t.hosts),
        ));
    } else if t.hosts > 1 && t.devices.is_empty() {
        p.push((
            path("hosts"),
            format!(
                "hosts {} share CXL memory, but the topology has no devices",
                t.hosts
            ),
        ));
    }
}

fn check_bridges(t: &Topology, p: &mut Problems) {
    let mut ids = HashSet::new();
    let mut slots = HashMap::new();
    let mut buses: Vec<(usize, u32, u32)> = Vec::new();
    for (i, hb) in t.host_bridges.iter().enumerate() {
        let at = path("host_bridges").index(i);
        check_id(&hb.id, at.key("id"), &mut ids, p);
        if hb.root_ports.is_empty() {
            p.push((
                at.key("root_ports"),
                "a host bridge needs at least one root port".into(),
            ));
        }
        if hb.hdm_for_passthrough && hb.root_ports.len() != 1 {
            p.push((
                at.key("hdm_for_passthrough"),
                tagged(
                    "passthrough-key",
                    format!(
                        "host bridge {} has {} root ports: QEMU gives it HDM decoders anyway; `hdm_for_passthrough` only changes a bridge with one root port",
                        hb.id,
                        hb.root_ports.len()
                    ),
                ),
            ));
        }
        // The bridge takes bus_nr, each root port the next bus numbers.
        let first = u32::from(hb.bus_nr);
        let last = first + hb.root_ports.len() as u32;
        if first == 0 || last > 255 {
            p.push((at.key("bus_nr"), format!("bus_nr {first} with {} root ports must leave buses {first}..={last} inside 1..=255", hb.root_ports.len())));
        } else if let Some((j, _, _)) = buses.iter().find(|(_, a, b)| first <= *b && *a <= last) {
            p.push((
                at.key("bus_nr"),
                format!("buses {first}..={last} overlap those of host_bridges[{j}]"),
            ));
        }
        buses.push((i, first, last));
        let mut ports = HashSet::new();
        for (k, rp) in hb.root_ports.iter().enumerate() {
            let at = at.key("root_ports").index(k);
            check_id(&rp.id, at.key("id"), &mut ids, p);
            if !ports.insert(rp.port) {
                p.push((
                    at.key("port"),
                    format!("port {} used twice on host bridge {}", rp.port, hb.id),
                ));
            }
            if let Some(other) = slots.insert(rp.slot, rp.id.clone()) {
                p.push((
                    at.key("slot"),
                    format!(
                        "slot {} already used by root port {other} (chassis 0)",
                        rp.slot
                    ),
                ));
            }
        }
    }
    let mut ids_with_devices = ids;
    for (i, d) in t.devices.iter().enumerate() {
        check_id(
            &d.id,
            path("devices").index(i).key("id"),
            &mut ids_with_devices,
            p,
        );
    }
}

fn check_devices(t: &Topology, p: &mut Problems) {
    let mut used_ports = HashMap::new();
    for (i, d) in t.devices.iter().enumerate() {
        let at = path("devices").index(i);
        if t.root_port(&d.root_port).is_none() {
            p.push((
                at.key("root_port"),
                format!(
                    "unknown root port {:?} (not under any host bridge)",
                    d.root_port
                ),
            ));
        } else if let Some(other) = used_ports.insert(d.root_port.clone(), d.id.clone()) {
            p.push((
                at.key("root_port"),
                format!("root port {} already holds device {other}", d.root_port),
            ));
        }
        if d.size.0 == 0 || d.size.0 % CXL_ALIGN != 0 {
            p.push((
                at.key("size"),
                format!(
                    "size {} must be a non-zero multiple of 256M (CXL capacity unit)",
                    d.size
                ),
            ));
        }
        if d.backing.as_ref().is_some_and(|b| b.as_os_str().is_empty()) {
            p.push((at.key("backing"), "backing path is empty".into()));
        }
    }
}

fn check_windows(t: &Topology, p: &mut Problems) {
    for (i, w) in t.windows.iter().enumerate() {
        let at = path("windows").index(i);
        let mut seen = HashSet::new();
        for (k, target) in w.targets.iter().enumerate() {
            if !t.host_bridges.iter().any(|hb| &hb.id == target) {
                p.push((
                    at.key("targets").index(k),
                    format!("unknown host bridge {target:?}"),
                ));
            } else if !seen.insert(target) {
                p.push((
                    at.key("targets").index(k),
                    format!("host bridge {target} listed twice"),
                ));
            }
        }
        let ways = w.targets.len();
        if !INTERLEAVE_WAYS.contains(&ways) {
            p.push((
                at.key("targets"),
                format!(
                    "{ways} targets: a window interleaves 1, 2, 3, 4, 6, 8, 12 or 16 host bridges"
                ),
            ));
        }
        let unit = CXL_ALIGN * ways.max(1) as u64;
        if w.size.0 == 0 || w.size.0 % unit != 0 {
            p.push((
                at.key("size"),
                format!(
                    "size {} must be a non-zero multiple of {} (256M per target)",
                    w.size,
                    ByteSize(unit)
                ),
            ));
        }
        let below: u64 = t
            .devices
            .iter()
            .filter(|d| {
                t.host_bridge_of(d)
                    .is_some_and(|hb| w.targets.contains(&hb.id))
            })
            .map(|d| d.size.0)
            .sum();
        if w.size.0 < below {
            p.push((
                at.key("size"),
                tagged(
                    "window-size",
                    format!(
                        "size {} is too small for the {} of devices under its targets",
                        w.size,
                        ByteSize(below)
                    ),
                ),
            ));
        }
        if let Some(g) = w.interleave_granularity.filter(|g| !granularity_ok(*g)) {
            p.push((
                at.key("interleave_granularity"),
                format!("{g} must be a power of two from 256 to 16K"),
            ));
        }
    }
}
