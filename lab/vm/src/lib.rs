//! lab-vm: everything about the QEMU side of the famfs lab.
//!
//! - [`topology`]: the lab topology YAML (guest size, CXL host bridges, root ports, type-3
//!   devices, fixed memory windows, regions), checked by [`topology_checks`]/[`region_checks`]
//!   with line numbers from [`yaml_locate`]; [`decoder_checks`] models the HDM decoders QEMU
//!   and Linux give each port, so an accepted topology is one the guest can set up;
//!   [`topology_gen`] makes random topologies for the topology fuzzer.
//! - [`qemu_args`]: the QEMU argv as a pure function, and its shell rendering.
//! - [`backing`]: sparse CXL backing files and host-side byte access to them.
//! - [`accel`]: KVM or TCG, from a real QEMU probe or `FAMFS_LAB_ACCEL`.
//! - [`clock`]: the host's clock or QEMU's instruction counter (`-icount`) as guest time.
//! - [`qmp`]: QMP client with timeouts; [`fault_inject`]: CXL faults through QMP (poison, RAS
//!   errors, media events, device_del), each checked against the running QEMU's commands.
//! - [`vm`]: the QEMU process ([`Vm`]), killed on drop; [`serial_log`] tails its console;
//!   [`process_cleanup`] kills QEMU when the lab gets SIGINT/SIGTERM/SIGHUP.

pub mod accel;
pub mod backing;
pub mod clock;
pub mod decoder_checks;
pub mod error;
pub mod fault_inject;
pub mod host_tsc;
pub mod process_cleanup;
pub mod qemu_args;
pub mod qmp;
pub mod region_checks;
pub mod rules;
pub mod serial_log;
pub mod size;
pub mod topology;
pub mod topology_checks;
pub mod topology_gen;
pub mod vm;
pub mod vm_spec;
pub use lab_yaml_locate as yaml_locate;

pub use accel::{choose_accel, Accel, AccelChoice};
pub use clock::Clock;
pub use error::{Error, Result, TopologyProblem};
pub use qemu_args::{KernelBoot, QemuOptions, SerialOutput};
pub use size::ByteSize;
pub use topology::Topology;
pub use vm::{FirstOutput, ShutdownOutcome, Vm, VmExit, VmSpec};
