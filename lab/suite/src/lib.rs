//! The suite model the host and the guest share: the case catalog, the
//! setup plan the host hands the guest, the device map the guest reports
//! back (and the translation from a dax offset to a byte of a CXL device's
//! backing file), the deterministic test patterns, the expected bytes of fmap
//! files ([`expect`]), the files guest and host exchange ([`verify`]), what a
//! user's shadow tree must read ([`user_tree`]), the bench sample format
//! ([`benchdata`]) and the `bpf_selftests` manifest and verdicts ([`bpf_selftests`]).
//!
//! Plain data and pure functions: nothing here runs only in the guest (no
//! syscalls, no libbpf), so host crates depend on this and never on the guest
//! binary `famfs-lab-cases`.

/// The fmap ops a case may mount with (`FAMFS_LAB_OPS`, `cargo xtask lab up --ops`): every
/// variant famfs-fused knows. `famfs_slow` is `famfs` with a busy loop in iomap_begin (the
/// benchmark's known slowdown): same results, slower.
pub const KNOWN_OPS: &[&str] = &[
    "famfs",
    "famfs_maplookup",
    "famfs_native",
    "famfs_slow",
    "famfs_direct",
    "famfs_kfunc",
    "famfs_trivial",
    "evil_oob",
    "reject_all",
];

pub mod benchdata;
pub mod bpf_selftests;
pub mod catalog;
pub mod devices;
pub mod expect;
pub mod pattern;
pub mod plan;
pub mod rng;
pub mod user_tree;
pub mod verify;

/// Exit code of a case that was skipped (automake's convention); the last
/// stdout line then reads `SKIP: <reason>`.
pub const EXIT_SKIP: i32 = 77;
/// Exit code of a case that failed.
pub const EXIT_FAIL: i32 = 1;
/// Where the guest keeps the device map written by `setup`.
pub const DEVICES_JSON: &str = "/run/famfs-lab/devices.json";
