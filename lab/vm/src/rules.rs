//! What every topology check shares: the problem list (key path, message), the rule ids a
//! message ends with (`[rule-id]`), and the CXL numbers the input and decoder checks both use.
//! [`crate::topology_checks`] runs the checks; [`crate::region_checks`] and
//! [`crate::decoder_checks`] take their pieces from here, not from each other.

use crate::size::{ByteSize, KIB, MIB};
use crate::yaml_locate::KeyPath;

/// The problems of a topology: where (its key path) and what.
pub type Problems = Vec<(KeyPath, String)>;

/// CXL capacity and window granularity: 256 MiB.
pub const CXL_ALIGN: u64 = 256 * MIB;
/// Interleave ways CXL (and QEMU's cxl-fmw) accept.
pub const INTERLEAVE_WAYS: [usize; 8] = [1, 2, 3, 4, 6, 8, 12, 16];
/// A valid interleave granularity: a power of two from 256 bytes to 16 KiB.
pub fn granularity_ok(g: ByteSize) -> bool {
    g.0.is_power_of_two() && (256..=16 * KIB).contains(&g.0)
}

/// Every rule a refusal can name: its id (the `[id]` that ends the message) and why it holds.
pub const RULES: &[(&str, &str)] = &[
    (
        "passthrough-decoder",
        "a host bridge with one root port and no `hdm_for_passthrough: true` has one decoder: one region",
    ),
    (
        "bridge-decoders",
        "a host bridge with HDM decoders has 4: at most 4 regions go through it",
    ),
    (
        "device-decoders",
        "a type-3 device has 4 HDM decoders: at most 4 regions use it",
    ),
    (
        "hpa-order",
        "regions sharing a host bridge are created in address order: a later one may not use an earlier window",
    ),
    (
        "interleave-order",
        "the device at position p must sit under the window's target p mod N",
    ),
    (
        "region-ways",
        "a region interleaves N x (1, 2, 4 or 8) devices, N = the window's targets",
    ),
    (
        "window-granularity",
        "over a window that interleaves host bridges, the region's granularity is the window's",
    ),
    (
        "bridge-granularity",
        "granularity x the window's targets must be at most 16K",
    ),
    (
        "interleave-bits",
        "ways x granularity must be at most 32K (QEMU decodes interleave on address bits 8..14)",
    ),
    (
        "passthrough-key",
        "`hdm_for_passthrough` only means something on a host bridge with one root port",
    ),
    (
        "device-capacity",
        "a region needs its share free on each of its devices",
    ),
    (
        "window-capacity",
        "the regions of a window fit in its size",
    ),
    (
        "window-size",
        "a window is at least the capacity of the devices under its targets",
    ),
    (
        "window-targets",
        "a region's devices sit under its window's host bridges",
    ),
    (
        "bridge-balance",
        "a region has the same number of devices under each of its window's host bridges",
    ),
];

/// The rules of the decoder model itself (the others are the lab's own input checks): a
/// topology refused only by these is one QEMU boots and the guest fails to set up, which
/// `cargo xtask lab topo-fuzz --boot-refused` confirms.
pub const MODEL_RULES: &[&str] = &[
    "passthrough-decoder",
    "bridge-decoders",
    "device-decoders",
    "hpa-order",
    "interleave-order",
    "region-ways",
    "window-granularity",
    "bridge-granularity",
    "interleave-bits",
];

/// `message` ending with the rule's tag.
pub(crate) fn tagged(rule: &'static str, message: impl Into<String>) -> String {
    debug_assert!(
        RULES.iter().any(|(id, _)| *id == rule),
        "unknown rule {rule}"
    );
    format!("{} [{rule}]", message.into())
}

/// The rule a problem's message names, if any.
pub fn rule_of(message: &str) -> Option<&'static str> {
    let inner = message.strip_suffix(']')?;
    let id = &inner[inner.rfind(" [")? + 2..];
    RULES.iter().map(|(r, _)| *r).find(|r| *r == id)
}
