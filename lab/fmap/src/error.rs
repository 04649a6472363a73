//! Why a blob or a model is not a valid famfs fmap, and the errno the kernel side returns for it.

use std::fmt;

/// Linux errno values (the kernel's parse returns their negatives).
pub const EINVAL: i32 = 22;
pub const ERANGE: i32 = 34;

/// Where in the map: extent index and, inside an interleaved extent, the strip index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub extent: usize,
    pub strip: Option<usize>,
}

impl Loc {
    pub fn ext(extent: usize) -> Loc {
        Loc {
            extent,
            strip: None,
        }
    }

    pub fn strip(extent: usize, strip: usize) -> Loc {
        Loc {
            extent,
            strip: Some(strip),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.strip {
            None => write!(f, "extent {}", self.extent),
            Some(s) => write!(f, "extent {} strip {}", self.extent, s),
        }
    }
}

/// A numeric field of an extent or strip (named as in the shadow YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Offset,
    Length,
    ChunkSize,
    Nbytes,
}

impl Field {
    pub fn yaml_key(self) -> &'static str {
        match self {
            Field::Offset => "offset",
            Field::Length => "length",
            Field::ChunkSize => "chunk_size",
            Field::Nbytes => "nbytes",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.yaml_key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FmapError {
    #[error("blob is {got} bytes, {need} needed for {what}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("{extra} bytes after the last extent")]
    Trailing { extra: usize },
    #[error("fmap_version {0}, expected 1")]
    Version(u16),
    #[error("file_type {0} is not 0, 1 or 2")]
    FileType(u8),
    #[error("ext_type {0} is not 0 (simple) or 1 (interleaved)")]
    ExtType(u32),
    #[error("{0} extents, must be 1..=32")]
    ExtentCount(usize),
    #[error("extent {extent}: {nstrips} strips, must be 1..=32")]
    StripCount { extent: usize, nstrips: usize },
    #[error("{at}: {field} {value:#x} is not a multiple of 2 MiB")]
    Misaligned { at: Loc, field: Field, value: u64 },
    #[error("{at}: {field} is 0")]
    Zero { at: Loc, field: Field },
    #[error("{at}: devindex {index} is not in 0..24")]
    DevIndex { at: Loc, index: u32 },
    #[error("{at}: offset + length overflows")]
    Overflow { at: Loc },
    #[error("{at}: strip holds {len:#x} bytes, the extent's nbytes need {need:#x}")]
    StripTooShort { at: Loc, len: u64, need: u64 },
    #[error("extents hold {covered:#x} bytes, less than file_size {file_size:#x}")]
    Uncovered { covered: u64, file_size: u64 },
}

impl FmapError {
    /// The positive errno: ERANGE for an extent count outside 1..=32, EINVAL for the rest.
    pub fn errno(&self) -> i32 {
        match self {
            FmapError::ExtentCount(_) => ERANGE,
            _ => EINVAL,
        }
    }

    /// The extent/strip the error is about, if it is about one.
    pub fn loc(&self) -> Option<Loc> {
        match self {
            FmapError::StripCount { extent, .. } => Some(Loc::ext(*extent)),
            FmapError::Misaligned { at, .. }
            | FmapError::Zero { at, .. }
            | FmapError::DevIndex { at, .. }
            | FmapError::Overflow { at }
            | FmapError::StripTooShort { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// The field the error is about, if it is about one.
    pub fn field(&self) -> Option<Field> {
        match self {
            FmapError::Misaligned { field, .. } | FmapError::Zero { field, .. } => Some(*field),
            FmapError::StripTooShort { .. } | FmapError::Overflow { .. } => Some(Field::Length),
            _ => None,
        }
    }
}
