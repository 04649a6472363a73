//! The kernel pipeline: a `kernels/<name>/kernel.yaml` -> a source tree
//! (Debian's source package, a local git ref, or a user's tree) -> the
//! patch series applied -> a config made of fragments, checked -> an
//! incremental build -> artifacts in a content-addressed cache.

pub mod bpf_selftests;
pub mod build;
pub mod cache;
pub mod config;
pub mod mutant;
pub mod seed;
pub mod series;
pub mod source;
pub mod spec;
pub mod verify;

pub use build::{build, BuildRequest, BuiltKernel};
pub use spec::KernelSpec;
