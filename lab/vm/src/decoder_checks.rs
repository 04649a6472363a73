//! The HDM decoder model: what QEMU 10's CXL emulation and Linux 7.3's region code can set up,
//! checked on the host, so that a topology the lab accepts is one the guest can build.
//!
//! Every region takes one HDM decoder at each port on its path: one on each host bridge it
//! goes through and one on each of its type-3 devices (Linux `cxl_port_attach_region`). The
//! facts behind the rules:
//!
//! - QEMU gives every port that has HDM decoders 4 of them (`CXL_HDM_DECODER_COUNT`,
//!   hw/cxl/cxl-component-utils.c): a device or a decoding host bridge serves at most 4 regions.
//! - A `pxb-cxl` with exactly one root port publishes no HDM decoder capability unless
//!   `hdm_for_passthrough=on` (hw/pci-bridge/pci_expander_bridge.c); Linux then adds a single
//!   passthrough decoder for it (`devm_cxl_add_passthrough_decoder`, drivers/cxl/core/hdm.c):
//!   one region through that bridge.
//! - A port's decoders are committed in address order: a region whose HPA lies below a region
//!   already on the port fails with EBUSY ("HPA order violation", `alloc_region_ref`). Linux
//!   allocates a region's HPA bottom up in its window (`alloc_free_mem_region`), and QEMU
//!   places windows in index order (`cxl_fmws_set_memmap`), so a later region sharing a host
//!   bridge with an earlier one must use the same window or a later one.
//! - The device at interleave position `p` must sit under the window's target `p mod N`
//!   (`cxl_region_attach_position`).
//! - Region ways are the window's N times a power of two (`set_interleave_ways`); a host
//!   bridge decoder interleaves a power of two of root ports, at most 8
//!   (`cxl_port_setup_targets`; QEMU's bridge target count is 8).
//! - Over an interleaving window (N > 1) the region granularity must be the window's
//!   (`set_interleave_granularity`; QEMU's default window granularity is 256); the host bridge
//!   then decodes at granularity x N, which must stay a valid granularity (<= 16K).
//! - QEMU's decoders route interleave on address bits 8..14 only (capability bits 256B and 4K;
//!   Linux `check_interleave_cap`): ways x granularity <= 32K, where 3-, 6- and 12-way count
//!   as 1, 2 and 4 (the factor 3 is routed apart). (3-target windows are modelled from the
//!   source only: the random topologies use 1, 2 or 4 targets.)

use crate::rules::{tagged, Problems};
use crate::size::{ByteSize, KIB};
use crate::topology::{HostBridge, Topology};
use crate::yaml_locate::path;
use std::collections::HashMap;

/// HDM decoders of a QEMU type-3 device and of a decoding host bridge.
pub const PORT_DECODERS: usize = 4;
/// Decoders Linux gives a host bridge that passes everything to its one root port.
pub const PASSTHROUGH_DECODERS: usize = 1;
/// Root ports one host bridge decoder interleaves at most.
pub const BRIDGE_MAX_WAYS: usize = 8;
/// QEMU's window granularity when `interleave_granularity` is left out.
pub const DEFAULT_WINDOW_GRANULARITY: u64 = 256;
/// The largest granularity an HDM decoder encodes.
pub const MAX_GRANULARITY: u64 = 16 * KIB;
/// ways x granularity a QEMU decoder can route (address bits 8..14).
pub const MAX_WAYS_X_GRANULARITY: u64 = 32 * KIB;

/// How many regions a host bridge can decode, and the rule that limits it.
pub fn bridge_decoders(hb: &HostBridge) -> (usize, &'static str) {
    if hb.root_ports.len() == 1 && !hb.hdm_for_passthrough {
        (PASSTHROUGH_DECODERS, "passthrough-decoder")
    } else {
        (PORT_DECODERS, "bridge-decoders")
    }
}

/// The region granularity the guest uses: the region's, else its window's, else QEMU's default.
pub fn region_granularity(t: &Topology, region: usize) -> u64 {
    let r = &t.regions[region];
    let window = t.windows.get(r.window);
    r.granularity
        .map(|g| g.0)
        .or_else(|| window.and_then(|w| w.interleave_granularity).map(|g| g.0))
        .unwrap_or(DEFAULT_WINDOW_GRANULARITY)
}

/// Checks every region against the decoder model. Call it only on a topology without other
/// problems: it assumes known devices, windows and balanced bridges.
pub(crate) fn check_decoders(t: &Topology, p: &mut Problems) {
    // Regions (by index) that use each host bridge and each device, in creation order.
    let mut bridge_regions: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut device_regions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in t.regions.iter().enumerate() {
        let at = path("regions").index(i);
        let Some(w) = t.windows.get(r.window) else {
            continue;
        };
        let n = w.targets.len().max(1);
        let ways = r.devices.len();
        let bridges: Vec<Option<&HostBridge>> = r
            .devices
            .iter()
            .map(|d| t.device(d).and_then(|d| t.host_bridge_of(d)))
            .collect();

        let per_bridge = ways / n;
        if !per_bridge.is_power_of_two() || per_bridge > BRIDGE_MAX_WAYS {
            p.push((
                at.key("devices"),
                tagged(
                    "region-ways",
                    format!(
                        "{ways} devices over window {} ({n} host bridges) puts {per_bridge} under each; \
                         a host bridge interleaves 1, 2, 4 or 8 root ports",
                        r.window
                    ),
                ),
            ));
        }

        if let Some(pos) = (0..ways)
            .find(|&pos| bridges[pos].map(|hb| hb.id.as_str()) != Some(w.targets[pos % n].as_str()))
        {
            p.push((
                at.key("devices").index(pos),
                tagged(
                    "interleave-order",
                    format!(
                        "position {pos} is {} under {}, but window {} sends position {pos} to its \
                         target {} ({}; position p goes to target p mod {n}): list the devices as [{}]",
                        r.devices[pos],
                        bridges[pos].map_or("?", |hb| hb.id.as_str()),
                        r.window,
                        pos % n,
                        w.targets[pos % n],
                        interleave_order(t, i).join(", ")
                    ),
                ),
            ));
        }

        let window_g = w
            .interleave_granularity
            .map_or(DEFAULT_WINDOW_GRANULARITY, |g| g.0);
        let g = region_granularity(t, i);
        if n > 1 && g != window_g {
            p.push((
                at.key("granularity"),
                tagged(
                    "window-granularity",
                    format!(
                        "granularity {} over window {}, which interleaves {n} host bridges at {}: \
                         the region must use the window's granularity (or leave it out)",
                        ByteSize(g),
                        r.window,
                        ByteSize(window_g)
                    ),
                ),
            ));
        } else if n > 1 && g * power_of_two_part(n) > MAX_GRANULARITY {
            p.push((
                at.key("granularity"),
                tagged(
                    "bridge-granularity",
                    format!(
                        "granularity {} over {n} host bridges: each bridge decodes at {} x {} = {}, \
                         over the 16K an HDM decoder encodes; use a window granularity of at most {}",
                        ByteSize(g),
                        ByteSize(g),
                        power_of_two_part(n),
                        ByteSize(g * power_of_two_part(n)),
                        ByteSize(MAX_GRANULARITY / power_of_two_part(n))
                    ),
                ),
            ));
        }
        let routed = power_of_two_part(ways);
        if routed > 1 && g * routed > MAX_WAYS_X_GRANULARITY {
            p.push((
                at.key("granularity"),
                tagged(
                    "interleave-bits",
                    format!(
                        "{ways}-way at granularity {} spans {} per stripe, over the 32K QEMU's \
                         decoders route (address bits 8..14): use a granularity of at most {}",
                        ByteSize(g),
                        ByteSize(g * routed),
                        ByteSize(MAX_WAYS_X_GRANULARITY / routed)
                    ),
                ),
            ));
        }

        let mut seen_bridges: Vec<&str> = Vec::new();
        for (k, hb) in bridges.iter().enumerate() {
            let Some(hb) = hb else { continue };
            if seen_bridges.contains(&hb.id.as_str()) {
                continue;
            }
            seen_bridges.push(&hb.id);
            let users = bridge_regions.entry(&hb.id).or_default();
            if let Some(&j) = users.iter().find(|&&j| t.regions[j].window > r.window) {
                let other = &t.regions[j];
                p.push((
                    at.key("window"),
                    tagged(
                        "hpa-order",
                        format!(
                            "region {} (window {}) comes after region {} (window {}) and both go \
                             through host bridge {}: Linux commits a bridge's decoders in address \
                             order and window {} lies above window {}; list {} first or move it \
                             to window {} or later",
                            r.name,
                            r.window,
                            other.name,
                            other.window,
                            hb.id,
                            other.window,
                            r.window,
                            r.name,
                            other.window
                        ),
                    ),
                ));
            }
            users.push(i);
            let (limit, rule) = bridge_decoders(hb);
            if users.len() == limit + 1 {
                let names = region_names(t, users);
                let how = if rule == "passthrough-decoder" {
                    format!(
                        "host bridge {} has one root port, so it passes addresses through with a \
                         single decoder and can decode one region, but {names} go through it; set \
                         `hdm_for_passthrough: true` on it (QEMU then gives it {PORT_DECODERS} HDM \
                         decoders), or give it a second root port, or drop a region",
                        hb.id
                    )
                } else {
                    format!(
                        "host bridge {} has {PORT_DECODERS} HDM decoders, one per region, but {names} \
                         go through it; spread the regions over more host bridges",
                        hb.id
                    )
                };
                p.push((at.key("devices").index(k), tagged(rule, how)));
            }
        }

        for (k, d) in r.devices.iter().enumerate() {
            let users = device_regions.entry(d).or_default();
            users.push(i);
            if users.len() == PORT_DECODERS + 1 {
                p.push((
                    at.key("devices").index(k),
                    tagged(
                        "device-decoders",
                        format!(
                            "device {d} has {PORT_DECODERS} HDM decoders, one per region, but {} use it",
                            region_names(t, users)
                        ),
                    ),
                ));
            }
        }
    }
}

/// The power-of-two factor of an interleave (3, 6 and 12 ways route the factor 3 apart; Linux
/// `check_interleave_cap` and `cxl_port_setup_targets`): 6 -> 2, 4 -> 4, 3 -> 1.
fn power_of_two_part(ways: usize) -> u64 {
    let w = if ways.is_multiple_of(3) {
        ways / 3
    } else {
        ways
    };
    w as u64
}

fn region_names(t: &Topology, idx: &[usize]) -> String {
    idx.iter()
        .map(|&i| t.regions[i].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The region's devices in an order its window accepts: position p under target p mod N,
/// each bridge's devices in the order the region lists them.
pub fn interleave_order(t: &Topology, region: usize) -> Vec<String> {
    let r = &t.regions[region];
    let Some(w) = t.windows.get(r.window) else {
        return r.devices.clone();
    };
    let mut per_target: Vec<Vec<&String>> = w
        .targets
        .iter()
        .map(|target| {
            r.devices
                .iter()
                .filter(|d| {
                    t.device(d)
                        .and_then(|d| t.host_bridge_of(d))
                        .is_some_and(|hb| &hb.id == target)
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    'fill: loop {
        for list in per_target.iter_mut() {
            if list.is_empty() {
                break 'fill;
            }
            out.push(list.remove(0).clone());
        }
    }
    out
}
