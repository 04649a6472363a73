//! The famfs fmap: what a famfs FUSE server hands the kernel in a GET_FMAP reply.
//!
//! - [`model`]: the file map as Rust data ([`FileMap`], simple and interleaved extents).
//! - [`wire`]: the V10-compatible byte layout (zerocopy structs, native endian like the kernel's).
//! - [`encode()`] / [`decode()`]: model <-> blob. `decode` applies the spec's rules and errnos
//!   ([`FmapError::errno`]); [`validate`] applies the same semantic rules to a model.
//! - [`resolve()`]: file offset -> (device index, device offset, contiguous length), exactly the
//!   spec's formula; the BPF `famfs` ops and the native module must agree with it.
//!
//! **Invariant:** nothing here panics on input: every length and offset is checked arithmetic.

mod decode;
mod encode;
mod error;
pub mod model;
mod resolve;
mod validate;
pub mod wire;

pub use decode::decode;
pub use encode::encode;
pub use error::{Field, FmapError, Loc, EINVAL, ERANGE};
pub use model::{
    Extents, FileMap, FileType, InterleavedExtent, SimpleExtent, FMAP_ALIGN, MAX_DEVS, MAX_EXTENTS,
    MAX_STRIPS,
};
pub use resolve::{resolve, Mapping};
pub use validate::{strip_need, validate};
