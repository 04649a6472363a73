//! The lab topology file: guest size and the emulated CXL layout (host bridges, root ports,
//! type-3 volatile devices, fixed memory windows) plus the regions the guest creates on it.
//!
//! Parsing (serde, unknown keys refused) and semantic validation ([`crate::topology_checks`]) are
//! separate steps; both report the line of the offending item.

use crate::error::{Error, Result, TopologyProblem};
use crate::size::ByteSize;
use crate::yaml_locate::line_of;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable overriding the directory searched by [`Topology::load_named`].
pub const TOPOLOGIES_DIR_ENV: &str = "FAMFS_LAB_TOPOLOGIES";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: String,
    /// Guest RAM (`-m`).
    pub memory: ByteSize,
    pub cpus: u32,
    /// Guests booted with this machine, all on the same backing files (`share=on`): 1 is the
    /// usual single-host lab, 2.. the multi-host famfs lab.
    #[serde(default = "one_host", skip_serializing_if = "is_one_host")]
    pub hosts: u32,
    #[serde(default)]
    pub host_bridges: Vec<HostBridge>,
    #[serde(default)]
    pub devices: Vec<Type3Device>,
    #[serde(default)]
    pub windows: Vec<MemoryWindow>,
    #[serde(default)]
    pub regions: Vec<Region>,
}

/// A CXL host bridge (`pxb-cxl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostBridge {
    pub id: String,
    /// First PCI bus number of the bridge; its root ports take the following numbers.
    pub bus_nr: u8,
    pub root_ports: Vec<RootPort>,
    /// QEMU's `hdm_for_passthrough=on`: a bridge with one root port gets HDM decoders of its
    /// own (4, so up to 4 regions through it) instead of passing every address through to its
    /// one root port (which Linux models as a single decoder: one region).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hdm_for_passthrough: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A CXL root port (`cxl-rp`) under a host bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootPort {
    pub id: String,
    pub port: u8,
    /// PCIe slot number, unique across the machine (all root ports sit in chassis 0).
    pub slot: u8,
}

/// A CXL type-3 device with volatile memory (`cxl-type3,volatile-memdev=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Type3Device {
    pub id: String,
    pub root_port: String,
    pub size: ByteSize,
    /// Backing file; default `RUN/<id>.raw`. A relative path is taken from the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing: Option<PathBuf>,
}

/// A CXL fixed memory window (`-M cxl-fmw.N...`): the guest sees it as root decoder `decoder0.N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryWindow {
    /// Host bridge ids interleaved by this window.
    pub targets: Vec<String>,
    pub size: ByteSize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interleave_granularity: Option<ByteSize>,
}

/// A RAM region the guest creates with `cxl create-region -t ram`, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    /// Device ids in interleave order; their count is the interleave ways (`-w`).
    pub devices: Vec<String>,
    /// Region size; `None` takes all free capacity left on its devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
    /// Interleave granularity (`-g`); `None` lets `cxl create-region` choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granularity: Option<ByteSize>,
    /// Index of the window (root decoder) the region is carved from.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub window: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Region {
    /// The guest's root decoder for this region's window (`decoder0.<window>`): cxl_acpi names
    /// root decoders in CFMWS order, which is the order of `windows`.
    pub fn root_decoder(&self) -> String {
        format!("decoder0.{}", self.window)
    }
}

impl Topology {
    /// Parses and validates a topology; `origin` names the source in errors (usually the file).
    pub fn from_yaml(src: &str, origin: &str) -> Result<Topology> {
        let topology = Self::parse(src, origin)?;
        let problems = topology.validate();
        if problems.is_empty() {
            return Ok(topology);
        }
        Err(Error::TopologyInvalid {
            file: origin.to_string(),
            problems: problems
                .into_iter()
                .map(|(key, message)| TopologyProblem {
                    line: line_of(src, &key),
                    key: key.to_string(),
                    message,
                })
                .collect(),
        })
    }

    /// Parses without semantic validation.
    pub fn parse(src: &str, origin: &str) -> Result<Topology> {
        serde_norway::from_str(src).map_err(|e| {
            let loc = e.location();
            Error::TopologyParse {
                file: origin.to_string(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: strip_location(e.to_string()),
            }
        })
    }

    pub fn load(path: &Path) -> Result<Topology> {
        let src = std::fs::read_to_string(path).map_err(|source| Error::TopologyRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&src, &path.display().to_string())
    }

    /// Loads `<topologies_dir>/<name>.yaml`.
    pub fn load_named(name: &str) -> Result<Topology> {
        let path = topologies_dir().join(format!("{name}.yaml"));
        let well_formed = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed || !path.is_file() {
            return Err(Error::TopologyNotFound {
                name: name.to_string(),
                path,
            });
        }
        Self::load(&path)
    }

    /// The host bridge and root port with the given root port id.
    pub fn root_port(&self, id: &str) -> Option<(&HostBridge, &RootPort)> {
        self.host_bridges.iter().find_map(|hb| {
            hb.root_ports
                .iter()
                .find(|rp| rp.id == id)
                .map(|rp| (hb, rp))
        })
    }

    pub fn device(&self, id: &str) -> Option<&Type3Device> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// The host bridge a device sits under.
    pub fn host_bridge_of(&self, device: &Type3Device) -> Option<&HostBridge> {
        self.root_port(&device.root_port).map(|(hb, _)| hb)
    }

    /// The topology each guest of a multi-host run boots with: every device's backing made
    /// absolute in `run_dir`, so that the guests, whose own files live in their own
    /// directories, map the same files.
    pub fn for_host(&self, run_dir: &Path) -> Topology {
        let mut t = self.clone();
        for d in &mut t.devices {
            d.backing = Some(self.backing_path(d, run_dir));
        }
        t
    }

    /// Where a device's backing file lives for a run in `run_dir`.
    pub fn backing_path(&self, device: &Type3Device, run_dir: &Path) -> PathBuf {
        match &device.backing {
            Some(p) => run_dir.join(p),
            None => run_dir.join(format!("{}.raw", device.id)),
        }
    }
}

fn one_host() -> u32 {
    1
}

fn is_one_host(n: &u32) -> bool {
    *n == 1
}

/// serde_norway appends " at line L column C", which the error already shows as `file:L:C`.
fn strip_location(message: String) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_string(),
        _ => message,
    }
}

/// Directory of named topologies: `$FAMFS_LAB_TOPOLOGIES`, else `lab/topologies` of this source tree.
pub fn topologies_dir() -> PathBuf {
    match std::env::var_os(TOPOLOGIES_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies"),
    }
}
