//! Shared by the guest binary and the host runner: the case catalog, the
//! setup plan the host hands the guest, the device map the guest reports
//! back (and the translation from a dax offset to a byte of a CXL device's
//! backing file), and the deterministic test patterns.

pub mod catalog;
pub mod devices;
pub mod pattern;
pub mod plan;

/// Exit code of a case that was skipped (automake's convention); the last
/// stdout line then reads `SKIP: <reason>`.
pub const EXIT_SKIP: i32 = 77;
/// Exit code of a case that failed.
pub const EXIT_FAIL: i32 = 1;
/// Where the guest keeps the device map written by `setup`.
pub const DEVICES_JSON: &str = "/run/famfs-lab/devices.json";
