//! What the host asks the guest to set up (derived from the topology).

use serde::{Deserialize, Serialize};

/// The guest's setup instructions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetupPlan {
    /// Every CXL type-3 device, identified by the serial number the host
    /// gave it (QEMU's `sn=`).
    pub memdevs: Vec<PlannedMemdev>,
    /// Regions to create, in order.
    pub regions: Vec<PlannedRegion>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedMemdev {
    /// The topology's id of the device (e.g. `mem0`).
    pub id: String,
    pub serial: u64,
    pub size: u64,
    /// The host file backing the device's volatile memory (file offset =
    /// device physical address).
    pub backing: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedRegion {
    pub name: String,
    /// Root decoder index: the N-th CXL fixed memory window.
    pub window: usize,
    /// Topology ids of the devices, in interleave order.
    pub devices: Vec<String>,
    /// Bytes; None = all free capacity.
    pub size: Option<u64>,
    /// Interleave granularity in bytes (None: the window's).
    pub granularity: Option<u64>,
}
