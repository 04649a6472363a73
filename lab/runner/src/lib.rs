//! The host side of the suites, as a pipeline ([`run::run`]): plan a run ([`plan`]), stage the
//! host's bytes before boot ([`stage`], [`host_bytes`]), boot and bring up one or N guests
//! ([`session`], each guest's steps in [`guest`], the boot through [`kvm_guard`]), run each case
//! through the agent with its timeout and splat window ([`case`]; the steps of shared cases in
//! [`shared`]), scan the rest of the serial log for splats ([`whole_log`]) and assemble the
//! report ([`assemble`]). [`bringup`] stops the same pipeline before the first case, for
//! `lab shell` and `lab exec` ([`shell`]).

pub mod assemble;
pub mod bpf_selftests;
pub mod bringup;
pub mod case;
pub mod guest;
pub mod host_bytes;
pub mod kvm_guard;
pub mod leaks;
pub mod markers;
pub mod plan;
pub mod request;
pub mod run;
pub mod session;
pub mod shared;
pub mod shell;
pub mod stage;
pub mod user_tree;
pub mod whole_log;

pub use request::{Console, RunRequest};
