//! The host side of the suites: plan a run, boot the guest, set up its
//! devices, run each case through the agent with its timeout and splat
//! window, do the host's checks, scan the rest of the serial log for splats
//! (boot, setup, between cases, power off), and assemble the report.

pub mod bpf_selftests;
pub mod bringup;
pub mod host_bytes;
pub mod host_calls;
pub mod kvm_guard;
pub mod leaks;
pub mod markers;
pub mod multi;
pub mod plan;
pub mod run;
pub mod shell;
pub mod user_tree;
pub mod whole_log;
