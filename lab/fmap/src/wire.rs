//! The blob's byte layout, wire-compatible with famfs V10's GET_FMAP reply. Native endian (the
//! kernel reads these as plain C structs). Sizes are pinned by `const` asserts below.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `fmap_version` this crate writes and accepts.
pub const FMAP_VERSION: u16 = 1;
/// `ext_type` values.
pub const EXT_TYPE_SIMPLE: u32 = 0;
pub const EXT_TYPE_INTERLEAVED: u32 = 1;

/// The 32-byte blob header.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct FmapHeader {
    pub file_type: u8,
    pub reserved0: u8,
    pub fmap_version: u16,
    pub ext_type: u32,
    pub nextents: u32,
    pub reserved1: u32,
    pub file_size: u64,
    pub reserved2: u64,
}

/// A simple extent, also one strip of an interleaved extent (24 bytes).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct SimpleExtWire {
    pub devindex: u32,
    pub reserved: u32,
    pub offset: u64,
    pub len: u64,
}

/// An interleaved extent header (24 bytes), followed by `nstrips` [`SimpleExtWire`]s.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct InterleavedExtWire {
    pub nstrips: u32,
    pub chunk_size: u32,
    pub nbytes: u64,
    pub reserved: u64,
}

pub const HEADER_SIZE: usize = 32;
pub const EXT_SIZE: usize = 24;

const _: () = assert!(size_of::<FmapHeader>() == HEADER_SIZE);
const _: () = assert!(size_of::<SimpleExtWire>() == EXT_SIZE);
const _: () = assert!(size_of::<InterleavedExtWire>() == EXT_SIZE);
