//! Random topologies within the lab's limits, for the topology fuzzer
//! (`cargo xtask lab topo-fuzz`): 1-4 host bridges with 1-4 root ports each, 1-8 devices of
//! 256M-2G, 1-3 windows over 1, 2 or 4 host bridges, and 1-6 regions (more than the 4
//! decoders a port has) with 1-, 2- or 4-way interleave at several granularities and sizes. The same seed gives the same topology on every machine.
//!
//! The generator makes what a user might write, not only what works: regions sometimes list
//! their devices out of interleave order, pick a granularity the window does not use, or share
//! a single-root-port bridge, so that the checks refuse a good part of them.

use crate::size::{ByteSize, KIB, MIB};
use crate::topology::{HostBridge, MemoryWindow, Region, RootPort, Topology, Type3Device};
use lab_suite::rng::Rng;

/// Lab limits the generator stays within.
pub const MAX_BRIDGES: usize = 4;
pub const MAX_ROOT_PORTS: usize = 4;
pub const MAX_DEVICES: usize = 8;
pub const MAX_WINDOWS: usize = 3;
pub const MAX_REGIONS: usize = 6;
/// Granularities regions and windows pick from.
pub const GRANULARITIES: [u64; 7] = [256, 512, KIB, 2 * KIB, 4 * KIB, 8 * KIB, 16 * KIB];

/// The topology of `seed`, named `fuzz-<seed>`.
pub fn random_topology(seed: u64) -> Topology {
    let mut rng = Rng::new(seed);
    let bridges = bridges(&mut rng);
    let devices = devices(&mut rng, &bridges);
    let mut t = Topology {
        name: format!("fuzz-{seed}"),
        memory: ByteSize(1024 * MIB),
        cpus: 1,
        hosts: 1,
        host_bridges: bridges,
        devices,
        windows: Vec::new(),
        regions: Vec::new(),
    };
    t.windows = windows(&mut rng, &t);
    t.regions = regions(&mut rng, &t);
    t
}

fn bridges(rng: &mut Rng) -> Vec<HostBridge> {
    let mut slot = 2u8;
    (0..rng.range(1, MAX_BRIDGES))
        .map(|b| {
            let root_ports: Vec<RootPort> = (0..rng.range(1, MAX_ROOT_PORTS))
                .map(|k| {
                    slot += 1;
                    RootPort {
                        id: format!("rp{b}{k}"),
                        port: k as u8,
                        slot,
                    }
                })
                .collect();
            let single = root_ports.len() == 1;
            HostBridge {
                id: format!("cxl.{}", b + 1),
                // Room for MAX_ROOT_PORTS buses after each bridge's own.
                bus_nr: 12 + (b * (MAX_ROOT_PORTS + 4)) as u8,
                hdm_for_passthrough: single && rng.chance(50),
                root_ports,
            }
        })
        .collect()
}

fn devices(rng: &mut Rng, bridges: &[HostBridge]) -> Vec<Type3Device> {
    let mut ports: Vec<&str> = bridges
        .iter()
        .flat_map(|hb| hb.root_ports.iter().map(|rp| rp.id.as_str()))
        .collect();
    rng.shuffle(&mut ports);
    let n = rng.range(1, ports.len().min(MAX_DEVICES));
    let mut chosen: Vec<&str> = ports[..n].to_vec();
    // File order by root port, as a person would write them.
    chosen.sort_unstable();
    chosen
        .iter()
        .enumerate()
        .map(|(i, rp)| Type3Device {
            id: format!("mem{i}"),
            root_port: rp.to_string(),
            size: ByteSize(256 * MIB * rng.range(1, 8) as u64),
            backing: None,
        })
        .collect()
}

fn windows(rng: &mut Rng, t: &Topology) -> Vec<MemoryWindow> {
    let ids: Vec<&str> = t.host_bridges.iter().map(|hb| hb.id.as_str()).collect();
    (0..rng.range(1, MAX_WINDOWS))
        .map(|_| {
            let ways: Vec<usize> = [1, 2, 4].into_iter().filter(|&w| w <= ids.len()).collect();
            let n = *rng.pick(&ways);
            // Bridges with devices first (in random order), so that most windows can hold a
            // region; then the others.
            let mut targets: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            rng.shuffle(&mut targets);
            targets.sort_by_key(|id| {
                !t.devices
                    .iter()
                    .any(|d| t.host_bridge_of(d).is_some_and(|hb| &hb.id == id))
            });
            targets.truncate(n);
            rng.shuffle(&mut targets);
            let below: u64 = t
                .devices
                .iter()
                .filter(|d| {
                    t.host_bridge_of(d)
                        .is_some_and(|hb| targets.contains(&hb.id))
                })
                .map(|d| d.size.0)
                .sum();
            let unit = 256 * MIB * n as u64;
            let size = below.div_ceil(unit).max(1) * unit;
            let interleave_granularity = if rng.chance(25) {
                None
            } else {
                Some(ByteSize(*rng.pick(&GRANULARITIES)))
            };
            MemoryWindow {
                targets,
                size: ByteSize(size),
                interleave_granularity,
            }
        })
        .collect()
}

fn regions(rng: &mut Rng, t: &Topology) -> Vec<Region> {
    // Capacity left per device, so that most regions fit (a few are made too big on purpose).
    let mut free: Vec<(String, u64)> = t.devices.iter().map(|d| (d.id.clone(), d.size.0)).collect();
    let free_of = |free: &[(String, u64)], id: &str| {
        free.iter().find(|(d, _)| d == id).map_or(0, |(_, f)| *f)
    };
    let mut out = Vec::new();
    for i in 0..rng.range(1, MAX_REGIONS) {
        // Mostly a window with a device under each of its targets.
        let usable: Vec<usize> = (0..t.windows.len())
            .filter(|&k| {
                t.windows[k].targets.iter().all(|target| {
                    t.devices.iter().any(|d| {
                        free_of(&free, &d.id) > 0
                            && t.host_bridge_of(d).is_some_and(|hb| &hb.id == target)
                    })
                })
            })
            .collect();
        if usable.is_empty() && !out.is_empty() && rng.chance(80) {
            continue; // the devices are full: most users would stop here
        }
        let window = if usable.is_empty() || rng.chance(10) {
            rng.range(0, t.windows.len() - 1)
        } else {
            *rng.pick(&usable)
        };
        let w = &t.windows[window];
        let n = w.targets.len();
        // Devices with free capacity under each target, each bridge's in random order.
        let mut columns: Vec<Vec<String>> = w
            .targets
            .iter()
            .map(|target| {
                let mut under: Vec<String> = t
                    .devices
                    .iter()
                    .filter(|d| t.host_bridge_of(d).is_some_and(|hb| &hb.id == target))
                    .filter(|d| free_of(&free, &d.id) > 0)
                    .map(|d| d.id.clone())
                    .collect();
                rng.shuffle(&mut under);
                under
            })
            .collect();
        let fewest = columns.iter().map(Vec::len).min().unwrap_or(0);
        let mut ways: Vec<usize> = [1, 2, 4]
            .into_iter()
            .filter(|&x| x % n == 0 && x / n <= fewest)
            .collect();
        if ways.is_empty() || rng.chance(5) {
            // Now and then a region the bridges cannot balance.
            ways = [1, 2, 4].into_iter().filter(|&x| x % n == 0).collect();
        }
        let per_bridge = rng.pick(&ways) / n;
        for c in columns.iter_mut() {
            c.truncate(per_bridge);
        }
        // Interleave order: position p under target p mod n.
        let mut devices = Vec::new();
        while columns.iter().any(|c| !c.is_empty()) {
            for c in columns.iter_mut().filter(|c| !c.is_empty()) {
                devices.push(c.remove(0));
            }
        }
        if devices.is_empty() {
            continue;
        }
        if devices.len() > 1 && rng.chance(10) {
            rng.shuffle(&mut devices);
        }
        let share_free = devices.iter().map(|d| free_of(&free, d)).min().unwrap_or(0) / (256 * MIB);
        let size = if rng.chance(25) {
            None
        } else if share_free == 0 || rng.chance(5) {
            Some(ByteSize(
                256 * MIB * devices.len() as u64 * (share_free + 1),
            ))
        } else {
            let units = rng.range(1, (share_free as usize).min(2)) as u64;
            Some(ByteSize(256 * MIB * devices.len() as u64 * units))
        };
        let share = size.map_or(share_free * 256 * MIB, |s| s.0 / devices.len() as u64);
        for (id, f) in free.iter_mut() {
            if devices.contains(id) {
                *f = f.saturating_sub(share);
            }
        }
        let granularity = match rng.range(0, 9) {
            0..=3 => None,
            4..=6 => w.interleave_granularity,
            _ => Some(ByteSize(*rng.pick(&GRANULARITIES))),
        };
        out.push(Region {
            name: format!("r{i}"),
            devices,
            size,
            granularity,
            window,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_topology_other_seed_other() {
        assert_eq!(random_topology(7), random_topology(7));
        assert_ne!(random_topology(7), random_topology(8));
    }

    #[test]
    fn topologies_stay_within_the_lab_limits() {
        for seed in 0..500 {
            let t = random_topology(seed);
            assert!((1..=MAX_BRIDGES).contains(&t.host_bridges.len()), "{seed}");
            for hb in &t.host_bridges {
                assert!(
                    (1..=MAX_ROOT_PORTS).contains(&hb.root_ports.len()),
                    "{seed}"
                );
                assert!(
                    !hb.hdm_for_passthrough || hb.root_ports.len() == 1,
                    "{seed}"
                );
            }
            assert!((1..=MAX_DEVICES).contains(&t.devices.len()), "{seed}");
            assert!((1..=MAX_WINDOWS).contains(&t.windows.len()), "{seed}");
            assert!((1..=MAX_REGIONS).contains(&t.regions.len()), "{seed}");
            for r in &t.regions {
                // 1, 2 or 4; 3 when a bridge had too few devices (refused as unbalanced).
                assert!((1..=4).contains(&r.devices.len()), "{seed}: {r:?}");
            }
        }
    }
}
