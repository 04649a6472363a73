//! The file map as data. Field names follow the wire format; see [`crate::wire`].

/// Offsets, lengths, nbytes and chunk sizes are multiples of this (2 MiB, one PMD).
pub const FMAP_ALIGN: u64 = 2 << 20;
/// Extents per file (simple or interleaved): 1..=32.
pub const MAX_EXTENTS: usize = 32;
/// Strips per interleaved extent: 1..=32.
pub const MAX_STRIPS: usize = 32;
/// Device slots per connection: devindex 0..24.
pub const MAX_DEVS: u32 = 24;

/// `file_type` in the blob header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileType {
    #[default]
    Regular,
    Superblock,
    Log,
}

impl FileType {
    pub fn to_wire(self) -> u8 {
        match self {
            FileType::Regular => 0,
            FileType::Superblock => 1,
            FileType::Log => 2,
        }
    }

    pub fn from_wire(v: u8) -> Option<FileType> {
        match v {
            0 => Some(FileType::Regular),
            1 => Some(FileType::Superblock),
            2 => Some(FileType::Log),
            _ => None,
        }
    }
}

/// A contiguous run of a dax device: also the shape of one strip of an interleaved extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleExtent {
    pub dev_index: u32,
    pub offset: u64,
    pub len: u64,
}

/// `nbytes` of file data spread RAID0-style over `strips` in `chunk_size` chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterleavedExtent {
    pub chunk_size: u32,
    pub nbytes: u64,
    pub strips: Vec<SimpleExtent>,
}

/// All extents of a file are of one kind (the header's `ext_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extents {
    Simple(Vec<SimpleExtent>),
    Interleaved(Vec<InterleavedExtent>),
}

impl Extents {
    pub fn len(&self) -> usize {
        match self {
            Extents::Simple(v) => v.len(),
            Extents::Interleaved(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// File bytes of extent `i` (simple: `len`, interleaved: `nbytes`).
    pub fn file_len(&self, i: usize) -> Option<u64> {
        match self {
            Extents::Simple(v) => v.get(i).map(|e| e.len),
            Extents::Interleaved(v) => v.get(i).map(|e| e.nbytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMap {
    pub file_type: FileType,
    pub file_size: u64,
    pub extents: Extents,
}

impl FileMap {
    /// File bytes the extents hold (saturating; a valid map never saturates).
    pub fn mapped_size(&self) -> u64 {
        (0..self.extents.len())
            .filter_map(|i| self.extents.file_len(i))
            .fold(0u64, u64::saturating_add)
    }

    /// Every device range the map uses, in blob order: `(extent, strip, range)`. For an
    /// interleaved extent each whole strip is one range.
    pub fn device_ranges(&self) -> Vec<(usize, Option<usize>, SimpleExtent)> {
        match &self.extents {
            Extents::Simple(v) => v.iter().enumerate().map(|(i, e)| (i, None, *e)).collect(),
            Extents::Interleaved(v) => v
                .iter()
                .enumerate()
                .flat_map(|(i, e)| {
                    e.strips
                        .iter()
                        .enumerate()
                        .map(move |(s, r)| (i, Some(s), *r))
                })
                .collect(),
        }
    }

    /// Total number of strips over all interleaved extents (0 for a simple map).
    pub fn total_strips(&self) -> usize {
        match &self.extents {
            Extents::Simple(_) => 0,
            Extents::Interleaved(v) => v.iter().map(|e| e.strips.len()).sum(),
        }
    }
}
