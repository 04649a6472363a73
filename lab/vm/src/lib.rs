//! lab-vm: topology files, QEMU command lines and QEMU process lifecycle for the famfs lab.
pub mod error;
pub mod size;
pub mod yaml_locate;
pub use error::{Error, Result};
pub mod topology;
pub mod topology_checks;
pub mod accel;
pub mod qemu_args;
pub mod backing;
pub mod qmp;
pub mod process_cleanup;
pub mod serial_log;
pub mod vm;
