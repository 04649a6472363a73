//! The guest's system helpers: errno-level file operations, probes and the kernel log
//! ([`sys`]), sysfs and device files ([`sysfs`]), and mappings ([`mapping`]). No case logic.

pub mod loopdev;
pub mod mapping;
pub mod sys;
pub mod sysfs;
