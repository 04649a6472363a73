//! famfs shadow trees: what famfs-fused serves.
//!
//! A shadow tree is a directory holding `daxdevs.yaml` (device index -> dax device path,
//! [`daxdevs`]) and `root/`, the file system's directories with one famfs shadow YAML per file
//! ([`yaml`]). [`load`] reads and validates a whole tree (every file's map, device indexes and
//! sizes, no overlapping device bytes unless both files are shared) and reports every problem
//! with its file and line. [`generate`] makes synthetic trees; [`write`] stores them.
//!
//! **Invariant:** loading never trusts the YAML: every map passes [`famfs_fmap::validate`], the
//! same rules the kernel-side parsers apply, before the server can serve it.

mod alloc;
pub mod daxdevs;
mod error;
mod generate;
mod model;
mod overlap;
mod resize;
mod tree;
mod write;
pub mod yaml;

pub use alloc::{align_up, Allocator};
pub use daxdevs::{DaxDev, DaxDevs, DAXDEVS_FILE};
pub use error::{ShadowError, ShadowErrors};
pub use generate::{generate, GenerateParams, Layout};
pub use model::{normalize, ShadowDir, ShadowFile, ShadowTree, ROOT_DIR};
pub use resize::resize;
pub use tree::load;
pub use write::{file_yaml, write};
pub use yaml::{FileAttrs, FLAG_SHARED};
