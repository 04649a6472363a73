//! The guest's system helpers: errno-level file operations, probes and the kernel log
//! ([`sys`]), sysfs and device files ([`sysfs`]), mappings ([`mapping`]), and calls to the host mid-run ([`host`]). No case logic.

pub mod host;
pub mod loopdev;
pub mod mapping;
pub mod sys;
pub mod sysfs;
