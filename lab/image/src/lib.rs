//! lab-image: reproducible, content-addressed initramfs images for the famfs-lab guest.
//!
//! A [`Recipe`] (`images/guest.yaml`) lists host files (with the Debian package each comes
//! from), symlinks, directories and device nodes.  [`build`] adds the caller's own guest
//! binaries and kernel modules, resolves every ELF's shared libraries (without executing
//! anything), hashes all of it, and writes an uncompressed, deterministic newc cpio archive to
//! `<cache>/images/<hash>/initramfs.cpio` (plus `manifest.txt`).  Identical inputs give the
//! same hash, and a cache hit writes nothing.

mod build;
mod cache;
mod collect;
pub mod cpio;
pub mod elfdeps;
mod hash;
mod image;
pub mod recipe;
mod tree;

use std::path::PathBuf;

pub use build::{build, plan, ImageInputs};
pub use cache::{default_cache_root, CPIO_NAME, MANIFEST_NAME};
pub use hash::FORMAT_VERSION;
pub use image::{BuiltImage, Plan};
pub use recipe::Recipe;

/// Everything that can go wrong while planning or building an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The recipe could not be read, parsed or validated. `message` carries the
    /// location (line/column or entry) of the problem.
    #[error("recipe {origin}: {message}")]
    Recipe { origin: String, message: String },

    /// A non-optional file of the recipe is missing on the host.
    #[error(
        "required host file {} (guest {guest}) is missing: install it with `apt-get install {package}`",
        host.display()
    )]
    MissingHostFile {
        host: PathBuf,
        guest: String,
        package: String,
    },

    /// A shared library needed by an ELF file was not found.
    #[error(
        "{binary} needs shared library {library}, which is not in {}; {hint}",
        searched.join(", ")
    )]
    MissingLibrary {
        binary: String,
        library: String,
        searched: Vec<String>,
        hint: String,
    },

    /// A malformed ELF file, or one this crate cannot handle.
    #[error("ELF {}: {message}", path.display())]
    Elf { path: PathBuf, message: String },

    /// Two inputs want the same guest path (or an ancestor of it) with different content.
    #[error("guest path {guest}: {message}")]
    Conflict { guest: String, message: String },

    /// A caller input (extra file, init, modules directory) is unusable.
    #[error("invalid input: {0}")]
    Input(String),

    /// A host tool run at build time failed (e.g. `busybox --list-full`).
    #[error("running {tool}: {message}")]
    Tool { tool: String, message: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.into();
    move |source| ImageError::Io { path, source }
}
